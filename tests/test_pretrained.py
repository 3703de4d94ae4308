"""The bundled-checkpoint index."""

from __future__ import annotations

import pytest

from accelerando.pretrained import PRETRAINED_DIR, list_pretrained, pretrained_path


def test_every_listed_checkpoint_has_config_and_safetensors_and_card():
    for name in list_pretrained():
        folder = PRETRAINED_DIR / name
        assert (folder / "config.json").is_file() or (folder / "model_index.json").is_file()
        assert list(folder.rglob("*.safetensors")), f"{name} has no safetensors weights"
        assert (folder / "README.md").is_file(), f"{name} has no model card"
        pickles = [p for ext in ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl") for p in folder.rglob(ext)]
        assert not pickles, f"{name} ships pickles: {pickles}"


def test_bundled_checkpoints_stay_within_the_size_budget():
    total = sum(p.stat().st_size for p in PRETRAINED_DIR.rglob("*") if p.is_file())
    assert total < 60 * 2**20, f"accelerando/pretrained holds {total / 2**20:.1f} MiB; the budget is 60 MiB"


def test_unknown_checkpoint_error_names_it_and_lists_available():
    with pytest.raises(FileNotFoundError, match=r"no bundled checkpoint named 'nope'; available: "):
        pretrained_path("nope")


def test_half_precision_stored_turbo_loads_as_float32():
    import torch

    from accelerando.vocoders import PeriodWaveTurbo

    if "periodwave-turbo-s-speech" not in list_pretrained():
        pytest.fail("periodwave-turbo-s-speech is no longer bundled; update this test")
    turbo = PeriodWaveTurbo.from_pretrained(pretrained_path("periodwave-turbo-s-speech")).eval()
    assert {p.dtype for p in turbo.parameters()} == {torch.float32}  # stored as float16 to halve the size
    mel = torch.randn(1, 80, 8) - 5
    wav = turbo.synthesize(mel, generator=torch.Generator().manual_seed(0))
    assert wav.shape == (1, 8 * 256) and torch.isfinite(wav).all()


def test_bundled_sim_meldit_is_a_float32_one_step_generator_the_demo_finds():
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler

    from accelerando.demos.checkpoints import discover_checkpoints
    from accelerando.generation import MelDiT, MelDiTPipeline

    assert discover_checkpoints()["meldit_sim"] == pretrained_path("meldit-sim-notes")
    generator = MelDiT.from_pretrained(pretrained_path("meldit-sim-notes")).eval()
    assert {p.dtype for p in generator.parameters()} == {torch.float32}  # stored as float16
    assert generator.config.class_dropout_prob == 0.0
    pipe = MelDiTPipeline(generator, FlowMatchEulerDiscreteScheduler())
    pipe.set_progress_bar_config(disable=True)
    out = pipe(instrument="Violin", pitch=67, num_inference_steps=1, output_type="pt",
               generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert out.mels.shape[-2:] == (80, 128) and torch.isfinite(out.mels).all()


def test_bundled_fregrad_turns_silence_into_near_silence_without_a_quarter_rate_line():
    """The two faults the first bundled FreGrad had: a -21 dB noise floor and a steady tone at fs/4."""
    import math

    import numpy as np
    import torch
    from scipy.signal import welch

    from accelerando.pretrained.loading import load

    model = load("fregrad-speech")
    silent = torch.full((1, 80, 172), math.log(1e-5))  # 2 s of digital silence's mel
    wav = model.synthesize(silent, generator=torch.Generator().manual_seed(0))[0].numpy()
    assert 20 * np.log10(np.sqrt(np.mean(wav**2)) + 1e-12) < -50  # reference pauses: about -58 dBFS
    f, p = welch(wav, fs=22050, nperseg=2048)
    i = int(np.abs(f - 22050 / 4).argmin())
    assert p[i - 1 : i + 2].max() / np.median(p[i - 40 : i + 40]) < 5
