"""Pitch metrics after CARGAN (Morrison et al., ICLR 2022): periodicity RMSE, V/UV F1, pitch RMSE.

CARGAN computes these with torchcrepe. No model weights can be downloaded here, so accelerando uses
pYIN instead (Mauch & Dixon 2014, through :func:`accelerando.audio.extract_f0`, i.e.
``librosa.pyin``): *periodicity* is pYIN's per-frame voiced probability and the voiced/unvoiced
decision is pYIN's Viterbi-decoded voicing flag. Figures are therefore comparable with each other
but not digit-for-digit with papers that use CREPE.
"""

from __future__ import annotations

import math

import numpy as np

from accelerando.metrics.signal import ArrayLike, align_lengths, as_numpy_1d

DEFAULT_FMIN = 65.0
DEFAULT_FMAX = 2093.0


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(a), len(b))
    return np.asarray(a)[:n], np.asarray(b)[:n]


def periodicity_rmse(pred_periodicity: np.ndarray, ref_periodicity: np.ndarray) -> float:
    """RMSE between two per-frame periodicity (voiced probability) tracks in [0, 1]; lower is better."""
    p, r = _pair(pred_periodicity, ref_periodicity)
    return float(np.sqrt(np.mean((np.nan_to_num(p) - np.nan_to_num(r)) ** 2))) if len(r) else math.nan


def vuv_f1(pred_voiced: np.ndarray, ref_voiced: np.ndarray) -> float:
    """F1 of the voiced decision, the reference's voiced frames being the positives; higher is better.

    When neither track has a voiced frame the two agree everywhere and the F1 is defined as 1.0.
    """
    p, r = _pair(np.asarray(pred_voiced, dtype=bool), np.asarray(ref_voiced, dtype=bool))
    tp = int(np.sum(p & r))
    fp = int(np.sum(p & ~r))
    fn = int(np.sum(~p & r))
    if tp + fp + fn == 0:
        return 1.0
    return 2.0 * tp / (2.0 * tp + fp + fn)


def pitch_rmse_cents(
    pred_f0: np.ndarray, ref_f0: np.ndarray, pred_voiced: np.ndarray, ref_voiced: np.ndarray
) -> float:
    """RMSE of ``1200 log2(f0_pred / f0_ref)`` in cents over frames voiced in both; lower is better.

    ``nan`` when no frame is voiced in both tracks.
    """
    pf, rf = _pair(pred_f0, ref_f0)
    pv, rv = _pair(np.asarray(pred_voiced, dtype=bool), np.asarray(ref_voiced, dtype=bool))
    both = pv & rv & (pf > 0) & (rf > 0) & np.isfinite(pf) & np.isfinite(rf)
    if not np.any(both):
        return math.nan
    cents = 1200.0 * np.log2(pf[both] / rf[both])
    return float(np.sqrt(np.mean(cents**2)))


def pitch_track(
    wav: ArrayLike, sr: int, hop_length: int = 256, fmin: float = DEFAULT_FMIN, fmax: float = DEFAULT_FMAX
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(f0_hz, voiced_flag, voiced_prob)`` per frame from pYIN (``accelerando.audio.extract_f0``)."""
    import torch

    from accelerando.audio import extract_f0

    tensor = torch.from_numpy(as_numpy_1d(wav, "wav")).float()
    f0, voiced, prob = extract_f0(tensor, sr, hop_length=hop_length, fmin=fmin, fmax=fmax)
    return (
        np.asarray(f0, dtype=np.float64),
        np.asarray(voiced, dtype=bool),
        np.asarray(prob, dtype=np.float64),
    )


def pitch_metrics(
    pred: ArrayLike,
    ref: ArrayLike,
    sr: int,
    hop_length: int = 256,
    fmin: float = DEFAULT_FMIN,
    fmax: float = DEFAULT_FMAX,
) -> dict[str, float]:
    """CARGAN's pitch figures for one pair of mono waveforms (pYIN-based; see the module docstring).

    Returns ``{"periodicity_rmse", "vuv_f1", "pitch_rmse_cents"}``.
    """
    p, r = align_lengths(as_numpy_1d(pred, "pred"), as_numpy_1d(ref, "ref"))
    pf, pv, pp = pitch_track(p, sr, hop_length, fmin, fmax)
    rf, rv, rp = pitch_track(r, sr, hop_length, fmin, fmax)
    return {
        "periodicity_rmse": periodicity_rmse(pp, rp),
        "vuv_f1": vuv_f1(pv, rv),
        "pitch_rmse_cents": pitch_rmse_cents(pf, rf, pv, rv),
    }
