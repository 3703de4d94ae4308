"""Tiny random checkpoints for the demo-app tests, saved with ``save_pretrained`` like real ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

FASTPITCH_TINY = dict(
    d_model=32, d_head=16, n_heads=2, conv_filter=64, enc_layers=1, dec_layers=2, predictor_filters=32,
    aligner_channels=16, dropout=0.0, attn_dropout=0.0, predictor_dropout=0.0, n_speakers=2,
    speakers=["ana", "bob"],
)  # fmt: skip
MELDIT_TINY = dict(
    n_mels=16, num_frames=16, patch_size=(4, 4), hidden_size=32, num_layers=2, num_attention_heads=2,
    num_programs=8, trained_programs=[0, 1, 4],
)  # fmt: skip
NEWT_TINY = dict(
    sample_rate=8000, control_hop=32, n_harmonics=12, n_waveshapers=6, control_hidden=16, n_noise_bands=17,
    noise_ir_length=32, reverb_length=300,
)  # fmt: skip


def _randomize(model: torch.nn.Module, seed: int, std: float = 0.1) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return model


def build_checkpoints(root: Path) -> dict:
    """Save one tiny random model per role under ``root``; returns ``create_app``'s checkpoints dict."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from accelerando.generation import MelDiT, MelDiTPipeline
    from accelerando.tts import IncrementalFastPitch
    from accelerando.vocoders import NEWT, FreGrad, PeriodWave, PeriodWaveTurbo

    torch.manual_seed(0)
    fastpitch = IncrementalFastPitch.from_preset("small", **FASTPITCH_TINY).eval()
    with torch.no_grad():  # fixed durations: an untrained predictor says ~0 frames per phoneme
        fastpitch.duration_predictor.proj.weight.zero_()
        fastpitch.duration_predictor.proj.bias.fill_(float(np.log1p(6.0)))
    fastpitch.save_pretrained(root / "fastpitch-speech")
    FreGrad.from_preset("small", residual_layers=2).save_pretrained(root / "fregrad-speech")
    periodwave = PeriodWave.from_preset("tiny")
    periodwave.save_pretrained(root / "periodwave-speech")
    PeriodWaveTurbo.from_periodwave(periodwave, num_steps=2).save_pretrained(root / "periodwave-turbo-speech")
    transformer = _randomize(MelDiT(**MELDIT_TINY), seed=0)
    MelDiTPipeline(transformer, FlowMatchEulerDiscreteScheduler(shift=3.0)).save_pretrained(
        root / "meldit-notes"
    )
    _randomize(MelDiT(**MELDIT_TINY), seed=1).save_pretrained(root / "meldit-sim-notes")
    NEWT(**NEWT_TINY).save_pretrained(root / "newt-violin")
    return {
        "fastpitch": root / "fastpitch-speech",
        "fregrad": root / "fregrad-speech",
        "periodwave": root / "periodwave-speech",
        "periodwave_turbo": root / "periodwave-turbo-speech",
        "meldit": root / "meldit-notes",
        "meldit_sim": root / "meldit-sim-notes",
        "newt": {"violin": root / "newt-violin"},
    }


def write_tone(path: Path, seconds: float = 0.8, sr: int = 22050, freq: float = 220.0) -> Path:
    """A harmonic tone with a vibrato and an envelope (pYIN finds its pitch)."""
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(freq * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))) / sr
    wav = (
        sum(0.3 / k * np.sin(k * phase) for k in range(1, 5))
        * np.minimum(1, 10 * t)
        * np.minimum(1, 10 * (seconds - t))
    )
    sf.write(path, wav.astype(np.float32), sr)
    return path
