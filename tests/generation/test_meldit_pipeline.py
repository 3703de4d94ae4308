"""MelDiTPipeline: determinism, shapes, instrument names, CFG, schedulers, vocoder, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, FlowMatchHeunDiscreteScheduler
from meldit_tiny import TINY, TinyVocoder

from accelerando.generation import (
    MelDiT,
    MelDiTPipeline,
    MelDiTPipelineOutput,
    flow_model_wrapper,
    get_sigmas_uniform,
    sample_euler,
)


class FakeVocoder:
    """Stands in for a mel vocoder: ``synthesize((B, n_mels, frames)) -> (B, frames * hop)``."""

    hop = 4

    def synthesize(self, mel: torch.Tensor) -> torch.Tensor:
        return mel.mean(dim=1).repeat_interleave(self.hop, dim=-1)


@pytest.fixture
def pipe(random_model: MelDiT) -> MelDiTPipeline:
    pipe = MelDiTPipeline(random_model, FlowMatchEulerDiscreteScheduler(shift=2.0))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _run(pipe: MelDiTPipeline, seed: int = 0, **kwargs) -> MelDiTPipelineOutput:
    kwargs = {"instrument": [1, 2], "pitch": [60, 64], "velocity": 90, "num_inference_steps": 4, **kwargs}
    return pipe(generator=torch.Generator().manual_seed(seed), **kwargs)


def test_deterministic_with_generator_and_shapes(pipe):
    a, b = _run(pipe), _run(pipe)
    assert isinstance(a.mels, np.ndarray) and a.mels.shape == (2, 16, 16) and a.mels.dtype == np.float32
    assert a.audios is None
    np.testing.assert_array_equal(a.mels, b.mels)
    assert not np.array_equal(a.mels, _run(pipe, seed=1).mels)


def test_output_types_and_frames(pipe):
    pt = _run(pipe, output_type="pt", num_frames=32)
    assert isinstance(pt.mels, torch.Tensor) and pt.mels.shape == (2, 16, 32)
    latent = _run(pipe, output_type="latent")
    assert latent.mels.shape == (2, 1, 16, 16)
    torch.testing.assert_close(
        pipe.transformer.denormalize_mel(latent.mels)[:, 0], _run(pipe, output_type="pt").mels
    )
    mels, audios = _run(pipe, return_dict=False)
    assert mels.shape == (2, 16, 16) and audios is None
    with pytest.raises(ValueError, match="output_type 'pil'"):
        _run(pipe, output_type="pil")


def test_untrained_model_returns_the_noise_mel(tiny_model):
    """Zero velocity everywhere: sampling leaves the starting noise unchanged."""
    pipe = MelDiTPipeline(tiny_model)
    pipe.set_progress_bar_config(disable=True)
    latents = torch.randn(1, 1, 16, 16)
    out = pipe(instrument=0, pitch=60, latents=latents, num_inference_steps=3, output_type="latent")
    torch.testing.assert_close(out.mels, latents)


def test_cfg_scale_one_equals_conditional_and_scale_changes_output(pipe):
    calls = []
    handle = pipe.transformer.register_forward_pre_hook(lambda mod, args: calls.append(args[0].shape[0]))
    cond = _run(pipe, guidance_scale=1.0).mels
    assert set(calls) == {2}  # no unconditional rows at scale 1
    calls.clear()
    guided = _run(pipe, guidance_scale=3.0).mels
    assert set(calls) == {4}  # conditional + unconditional rows in one forward
    handle.remove()
    assert not np.allclose(cond, guided)


def test_cfg_zero_equals_unconditional(pipe):
    """Scale 0 keeps only the null-label branch: the output no longer depends on the labels."""
    a = _run(pipe, guidance_scale=0.0, instrument=[1, 1], pitch=[60, 60]).mels
    b = _run(pipe, guidance_scale=0.0, instrument=[5, 5], pitch=[30, 30]).mels
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_instrument_names():
    pipe = MelDiTPipeline(MelDiT(**{**TINY, "num_programs": 128}))
    program, pitch, velocity = pipe.prepare_labels(
        ["Acoustic Grand Piano", "violin", 7], 60, [80, 90, 100], "cpu"
    )
    assert (
        program.tolist() == [0, 40, 7] and pitch.tolist() == [60] * 3 and velocity.tolist() == [80, 90, 100]
    )
    with pytest.raises(ValueError, match=r"Unknown instrument 'violn'.*'Violin'"):
        pipe.prepare_labels("violn", 60, 100, "cpu")


def test_string_instrument_runs(pipe):
    out = pipe(
        instrument="Electric Piano 1",
        pitch=60,
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
    )
    assert out.mels.shape == (1, 16, 16)  # program 4 < tiny num_programs 8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"instrument": 8}, r"program 8 is out of range: accepted values are 0..7"),
        ({"instrument": "Gunshot"}, r"program 127 is out of range"),
        ({"pitch": 128}, r"pitch 128 is out of range: accepted values are integers 0..127"),
        ({"velocity": -1}, r"velocity -1 is out of range"),
        ({"pitch": [60, 61, 62]}, r"instrument has 2 values but the batch has 3 notes"),
        ({"num_frames": 18}, r"num_frames 18 must be a multiple of the patch width 4"),
    ],
)
def test_bad_arguments_raise(pipe, kwargs, message):
    with pytest.raises(ValueError, match=message):
        _run(pipe, **kwargs)


def test_vocoder_component(random_model):
    pipe = MelDiTPipeline(random_model, vocoder=FakeVocoder())
    pipe.set_progress_bar_config(disable=True)
    out = _run(pipe)
    assert out.audios.shape == (2, 16 * FakeVocoder.hop)
    np.testing.assert_allclose(out.audios, FakeVocoder().synthesize(torch.from_numpy(out.mels)).numpy())


def test_pipeline_euler_matches_sampler(pipe):
    """The diffusers scheduler loop and sample_euler on the same sigmas give the same latents."""
    pipe.scheduler = FlowMatchEulerDiscreteScheduler()
    latents = torch.randn(2, 1, 16, 16)
    out = pipe(instrument=[1, 2], pitch=[60, 64], velocity=90, latents=latents, num_inference_steps=5,
               guidance_scale=2.0, output_type="latent")  # fmt: skip
    fn = flow_model_wrapper(pipe.transformer, [1, 2], [60, 64], [90, 90], guidance_scale=2.0)
    sigmas = torch.cat([pipe.scheduler.sigmas[:-1], torch.zeros(1)])
    ref = sample_euler(fn, latents, sigmas, disable=True)
    torch.testing.assert_close(out.mels, ref, rtol=1e-4, atol=1e-5)
    assert torch.allclose(sigmas, get_sigmas_uniform(5, sigma_max=1.0, sigma_min=1e-3))


def test_drop_in_heun_scheduler(pipe):
    pipe.scheduler = FlowMatchHeunDiscreteScheduler()
    out = _run(pipe, num_inference_steps=3)
    assert out.mels.shape == (2, 16, 16) and np.isfinite(out.mels).all()


def test_callback_on_step_end(pipe):
    seen = []

    def callback(p, step, timestep, tensors):
        seen.append((step, float(timestep)))
        return {"latents": tensors["latents"] * 0}

    out = _run(pipe, callback_on_step_end=callback, output_type="latent", num_inference_steps=3)
    assert [s for s, _ in seen] == [0, 1, 2] and seen[0][1] == pytest.approx(1000.0)
    assert torch.count_nonzero(out.mels) == 0


def test_save_load_round_trip(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "pipe")
    loaded = MelDiTPipeline.from_pretrained(tmp_path / "pipe")
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.transformer, MelDiT) and loaded.vocoder is None
    assert loaded.scheduler.config.shift == 2.0
    np.testing.assert_array_equal(_run(loaded, guidance_scale=2.0).mels, _run(pipe, guidance_scale=2.0).mels)


def test_save_load_round_trip_with_vocoder(random_model, tmp_path):
    torch.manual_seed(0)
    pipe = MelDiTPipeline(random_model, FlowMatchEulerDiscreteScheduler(), vocoder=TinyVocoder())
    pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(tmp_path / "pipe")
    loaded = MelDiTPipeline.from_pretrained(tmp_path / "pipe")
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.vocoder, TinyVocoder)
    a, b = _run(pipe), _run(loaded)
    assert a.audios.shape == (2, 16 * 4)
    np.testing.assert_array_equal(a.audios, b.audios)
    with pytest.raises(ValueError, match="safetensors weights only"):
        MelDiTPipeline.from_pretrained(tmp_path / "pipe", use_safetensors=False)
