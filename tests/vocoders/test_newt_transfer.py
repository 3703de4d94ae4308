"""Timbre transfer: octave shift, loudness remap, control extraction and the end-to-end call."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from accelerando.commands.synth import INSTRUMENTS
from accelerando.vocoders import NEWT
from accelerando.vocoders.newt.transfer import (
    INSTRUMENT_RANGES,
    LOUDNESS_STATS,
    extract_controls,
    loudness_targets,
    remap_loudness,
    shift_octaves,
    timbre_transfer,
)

TINY = dict(
    n_harmonics=8, n_waveshapers=4, control_hidden=8, mlp_depth=2, shaper_width=4, shaper_depth=2,
    n_noise_bands=9, noise_ir_length=16, reverb_length=64,
)  # fmt: skip


def _midi(f0: torch.Tensor) -> torch.Tensor:
    return 69.0 + 12.0 * torch.log2(f0 / 440.0)


def test_tables_cover_the_cli_instruments():
    assert tuple(INSTRUMENT_RANGES) == INSTRUMENTS
    assert set(LOUDNESS_STATS) == set(INSTRUMENTS)
    for low, high in INSTRUMENT_RANGES.values():
        assert high - low >= 12  # an octave shift can always land inside


@pytest.mark.parametrize("instrument", INSTRUMENTS)
@pytest.mark.parametrize("base_hz", [55.0, 110.0, 196.0, 880.0, 3000.0])
def test_octave_shift_lands_in_range_and_keeps_pitch_class(instrument, base_hz):
    f0 = torch.tensor([0.0, base_hz, base_hz * 1.26, base_hz * 1.5, 0.0, base_hz * 0.89])
    shifted, octaves = shift_octaves(f0, instrument)
    voiced = f0 > 0
    low, high = INSTRUMENT_RANGES[instrument]
    median = float(_midi(shifted[voiced].double()).median())
    assert low <= median <= high
    semis = _midi(shifted[voiced].double()) - _midi(f0[voiced].double())
    torch.testing.assert_close(semis, torch.full_like(semis, 12.0 * octaves))  # whole octaves only
    assert torch.all(shifted[~voiced] == 0)


def test_forced_octave_shift():
    shifted, octaves = shift_octaves(torch.tensor([220.0, 0.0]), "cello", octaves=-1)
    assert octaves == -1 and shifted.tolist() == [110.0, 0.0]


def test_unknown_instrument_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown instrument 'kazoo'.*violin, flute, trumpet, cello"):
        shift_octaves(torch.tensor([220.0]), "kazoo")


def test_remap_loudness_matches_statistics_on_voiced_frames():
    g = torch.Generator().manual_seed(0)
    loudness = 0.3 + 0.2 * torch.rand(400, generator=g)
    voiced = torch.rand(400, generator=g) > 0.3
    out = remap_loudness(loudness, 0.9, 0.05, voiced)
    assert out[voiced].mean().item() == pytest.approx(0.9, abs=1e-4)
    assert out[voiced].std(unbiased=False).item() == pytest.approx(0.05, rel=1e-3)
    assert torch.all(out[~voiced] == 0)
    # order preserved within the voiced frames (an increasing affine map)
    assert torch.equal(torch.argsort(out[voiced]), torch.argsort(loudness[voiced]))


def test_remap_constant_loudness_moves_only_the_mean():
    out = remap_loudness(torch.full((10,), 0.4), 0.95, 0.06)
    torch.testing.assert_close(out, torch.full((10,), 0.95))


def test_loudness_targets_prefer_the_model_config():
    model = NEWT(**TINY)
    assert loudness_targets("flute", model) == LOUDNESS_STATS["flute"]
    model.register_to_config(loudness_mean=0.7, loudness_std=0.1)
    assert loudness_targets("flute", model) == (0.7, 0.1)


@pytest.mark.parametrize("sr", [16000, 22050])
def test_extract_controls_on_a_sine(sr):
    seconds, hz = 0.8, 330.0
    t = np.arange(int(seconds * sr)) / sr
    wav = (0.4 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    f0, loudness, voiced = extract_controls(wav, sr)
    samples_16k = int(round(len(wav) * 16000 / sr))
    assert f0.shape == loudness.shape == voiced.shape == (samples_16k // 128,)
    inner = voiced.clone()
    inner[:5] = inner[-5:] = False  # pYIN's edges
    assert inner.sum() > 0.8 * len(inner)
    assert torch.all((f0[inner] - hz).abs() < 0.01 * hz)
    assert torch.all(loudness[voiced] > 0.5) and torch.all(loudness[~voiced] == 0)
    assert torch.all(f0 > 0)  # unvoiced frames hold a voiced pitch


def test_extract_controls_of_silence_is_all_floor():
    f0, loudness, voiced = extract_controls(np.zeros(8000, dtype=np.float32), 16000)
    assert not voiced.any() and torch.all(f0 == 0) and torch.all(loudness == 0)


def test_timbre_transfer_end_to_end():
    torch.manual_seed(0)
    model = NEWT(**TINY).eval()
    sr = 22050
    t = np.arange(int(0.5 * sr)) / sr
    wav = (0.3 * np.sin(2 * np.pi * 110.0 * t)).astype(np.float32)  # A2: two octaves below the flute
    audio, info = timbre_transfer(model, wav, sr, "flute", seed=0)
    assert audio.shape == (int(round(len(wav) * 16000 / sr)) // 128 * 128,)
    assert torch.isfinite(audio).all()
    assert info["octave_shift"] == 3 and info["median_f0_out_hz"] == pytest.approx(880.0, rel=0.01)
    again, _ = timbre_transfer(model.to_fast().eval(), wav, sr, "flute", seed=0)
    assert again.shape == audio.shape
