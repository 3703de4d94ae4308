"""Known answers for the vocoder quality metrics: identical, noisy at known SNR, pitch-shifted."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from metrics_signals import SR, add_noise

from accelerando.metrics import (
    MCD_CONSTANT,
    VOCODER_METRICS,
    evaluate_vocoder,
    mcd,
    mel_cepstrum,
    mel_l1,
    mstft_distance,
    periodicity_rmse,
    pesq_wb,
    pitch_metrics,
    pitch_rmse_cents,
    si_snr,
    snr,
    stoi,
    vuv_f1,
)


@pytest.fixture(scope="module")
def noisy(clean):
    return {db: add_noise(clean, db) for db in (30.0, 10.0)}


def test_identical_signals_score_perfectly(clean):
    scores = evaluate_vocoder(clean, torch.tensor(clean), SR)
    assert set(scores) == set(VOCODER_METRICS)
    assert scores["mstft"] == pytest.approx(0.0, abs=1e-6)
    assert scores["mel_l1"] == pytest.approx(0.0, abs=1e-6)
    assert scores["mcd"] == pytest.approx(0.0, abs=1e-6)
    assert scores["snr"] == math.inf
    assert scores["pesq_wb"] > 4.4  # P.862.2's ceiling is 4.64
    assert scores["stoi"] == pytest.approx(1.0, abs=1e-4)
    assert scores["periodicity_rmse"] == pytest.approx(0.0, abs=1e-6)
    assert scores["vuv_f1"] == 1.0
    assert scores["pitch_rmse_cents"] == pytest.approx(0.0, abs=1e-6)


def test_snr_matches_the_noise_level_it_was_made_with(clean, noisy):
    for db, wav in noisy.items():
        assert snr(wav, clean) == pytest.approx(db, abs=1e-6)
        assert si_snr(wav, clean) == pytest.approx(db, abs=0.1)


def test_scale_invariant_snr_ignores_gain(clean):
    assert snr(0.5 * clean, clean) == pytest.approx(20 * math.log10(2), abs=1e-6)
    assert si_snr(0.5 * clean, clean) > 100


def test_more_noise_scores_worse_on_every_spectral_and_perceptual_metric(clean, noisy):
    good, bad = noisy[30.0], noisy[10.0]
    assert pesq_wb(bad, clean, SR) < pesq_wb(good, clean, SR) < 4.64
    assert stoi(bad, clean, SR) < stoi(good, clean, SR) < 1.0
    assert mstft_distance(clean, clean) < mstft_distance(good, clean) < mstft_distance(bad, clean)
    assert 0 < mel_l1(good, clean) < mel_l1(bad, clean)
    assert 0 < mcd(good, clean) < mcd(bad, clean)


def test_too_short_audio_gets_a_clear_error(clean):
    short = clean[: SR // 10]
    with pytest.raises(ValueError, match="PESQ needs at least"):
        pesq_wb(short, short, SR)
    with pytest.raises(ValueError, match="STOI needs at least"):
        stoi(short, short, SR)
    scores = evaluate_vocoder(short, short, SR, strict=False)
    assert math.isnan(scores["pesq_wb"]) and math.isnan(scores["stoi"])


def test_mcd_of_a_single_cepstral_offset_follows_its_formula():
    # log-mel + 2 * delta * cos(pi (m + 1/2) / M) moves c1 alone by delta: MCD = 10/ln10 sqrt(2) delta.
    log_mel = torch.randn(80, 10, dtype=torch.float64)
    m = torch.arange(80, dtype=torch.float64)
    shifted = log_mel + 2 * 0.3 * torch.cos(math.pi * (m + 0.5) / 80)[:, None]
    diff = mel_cepstrum(shifted) - mel_cepstrum(log_mel)  # (24, frames)
    assert diff[0].allclose(torch.full((10,), 0.3, dtype=torch.float64))
    assert diff[1:].abs().max() < 1e-10
    per_frame = MCD_CONSTANT * diff.pow(2).sum(0).sqrt()
    assert per_frame.allclose(torch.full((10,), MCD_CONSTANT * 0.3, dtype=torch.float64))
    with pytest.raises(ValueError, match="n_coeffs"):
        mel_cepstrum(log_mel, n_coeffs=80)


def _sine(freq: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return 0.5 * np.sin(2 * np.pi * freq * t)


def test_a_semitone_shift_is_a_hundred_cents():
    ref, pred = _sine(220.0), _sine(233.08)  # 220 * 2**(1/12)
    scores = pitch_metrics(pred, ref, SR)
    assert scores["pitch_rmse_cents"] == pytest.approx(100.0, abs=8.0)
    assert scores["vuv_f1"] > 0.95
    assert scores["periodicity_rmse"] < 0.2


def test_pitch_metric_definitions_on_hand_made_tracks():
    ref_f0 = np.array([100.0, 200.0, 0.0, 300.0])
    ref_v = np.array([True, True, False, True])
    pred_f0 = np.array([200.0, 200.0, 150.0, 0.0])
    pred_v = np.array([True, True, True, False])
    # Voiced in both: frames 0 (1200 cents) and 1 (0 cents).
    assert pitch_rmse_cents(pred_f0, ref_f0, pred_v, ref_v) == pytest.approx(math.sqrt(1200**2 / 2))
    assert vuv_f1(pred_v, ref_v) == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))  # tp 2, fp 1, fn 1
    assert vuv_f1(np.zeros(4, bool), np.zeros(4, bool)) == 1.0
    assert math.isnan(pitch_rmse_cents(pred_f0, ref_f0, np.zeros(4, bool), ref_v))
    assert periodicity_rmse(np.array([0.0, 1.0]), np.array([0.0, 0.0])) == pytest.approx(math.sqrt(0.5))


def test_bad_input_shapes_are_rejected(clean):
    with pytest.raises(ValueError, match="mono waveform"):
        snr(np.zeros((2, 100)), np.zeros(100))
