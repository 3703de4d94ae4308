"""Every mel vocoder implements the mel-vocoder contract (accelerando.vocoders.contract)."""

from __future__ import annotations

import inspect

import pytest
import torch

from accelerando.vocoders import FreGrad, GriffinLim, MelNEWT, PeriodWave, PeriodWaveTurbo
from accelerando.vocoders.contract import MelVocoder
from accelerando.vocoders.fregrad.baseline import PriorGradBaseline


def _tiny_vocoders() -> dict[str, object]:
    torch.manual_seed(0)
    return {
        "FreGrad": FreGrad(residual_layers=2, residual_channels=4, dilation_cycle_length=2, diffusion_hidden_dim=8),
        "PeriodWave": PeriodWave.from_preset("tiny"),
        "PeriodWaveTurbo": PeriodWaveTurbo.from_preset("tiny", num_steps=2),
        "MelNEWT": MelNEWT(hidden=8, mlp_depth=2, n_harmonics=4, n_waveshapers=1, shaper_width=2,
                           n_noise_bands=5, noise_ir_length=16, n_pitch_bins=16),
        "PriorGradBaseline": PriorGradBaseline(),
        "GriffinLim": GriffinLim(n_iter=2),
    }  # fmt: skip


VOCODERS = _tiny_vocoders()


@pytest.mark.parametrize("name", list(VOCODERS))
def test_vocoder_implements_the_contract(name):
    vocoder = VOCODERS[name]
    assert isinstance(vocoder, MelVocoder)
    assert (vocoder.sample_rate, vocoder.hop_length) == (22050, 256)
    params = inspect.signature(vocoder.synthesize).parameters
    assert list(params)[:3] == ["mel", "num_steps", "generator"]
    assert params["num_steps"].default is None and params["generator"].default is None
    assert params["progress"].kind is inspect.Parameter.KEYWORD_ONLY and params["progress"].default is False


@pytest.mark.parametrize("name", list(VOCODERS))
def test_synthesize_by_the_contract_gives_frames_times_hop(name):
    vocoder = VOCODERS[name]
    if hasattr(vocoder, "eval"):
        vocoder.eval()
    mel = torch.randn(1, 80, 6) - 5.0
    with torch.inference_mode():
        wav = vocoder.synthesize(mel, None, torch.Generator().manual_seed(0), progress=False)
    assert wav.shape == (1, 6 * vocoder.hop_length) and torch.isfinite(wav).all()
