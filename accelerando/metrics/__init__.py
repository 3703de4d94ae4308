"""Metrics: vocoder quality, speed, and distribution distances for toy problems.

- spectral: :func:`mstft_distance` (M-STFT), :func:`mel_l1`, :func:`mcd`
- perceptual: :func:`pesq_wb`, :func:`stoi`
- pitch (CARGAN-style, pYIN-based): :func:`pitch_metrics`, :func:`periodicity_rmse`, :func:`vuv_f1`,
  :func:`pitch_rmse_cents`
- signal: :func:`snr`, :func:`si_snr`
- timing: :func:`measure_rtf`, :class:`LatencyTimer`, :func:`compare_speed`, :class:`TimingResult`
- distributions: :func:`sliced_wasserstein2`, :func:`mmd2`
- frechet: :func:`frechet_distance` (our own Fréchet distance in the note classifier's embedding; not FAD)
- intelligibility: :func:`transcribe` (offline PocketSphinx en-us), :func:`word_error_rate` (jiwer);
  pocketsphinx and jiwer are imported on first call
- :func:`evaluate_vocoder`: the suite every vocoder benchmark reports.
- report / vocoder_bench (import them from the sub-modules): results files and figures; the corpus loop
  that scores a vocoder on a split (shared by ``accelerando bench`` and ``benchmarks/``).
"""

from __future__ import annotations

import math
from typing import Any

from accelerando.metrics.distributions import (
    MMD_BANDWIDTH_SCALES,
    mmd2,
    rbf_mixture_kernel,
    sliced_wasserstein2,
)
from accelerando.metrics.frechet import frechet_distance, gaussian_stats
from accelerando.metrics.intelligibility import normalize_words, transcribe, word_error_rate
from accelerando.metrics.perceptual import pesq_wb, stoi
from accelerando.metrics.pitch import periodicity_rmse, pitch_metrics, pitch_rmse_cents, pitch_track, vuv_f1
from accelerando.metrics.signal import ArrayLike, align_lengths, as_numpy_1d, resample_mono, si_snr, snr
from accelerando.metrics.spectral import MCD_CONSTANT, log_mel, mcd, mel_cepstrum, mel_l1, mstft_distance
from accelerando.metrics.timing import LatencyTimer, TimingResult, compare_speed, cpu_model, measure_rtf

# Name of each figure in evaluate_vocoder's result, and whether higher is better.
VOCODER_METRICS: dict[str, bool] = {
    "mstft": False,
    "pesq_wb": True,
    "stoi": True,
    "periodicity_rmse": False,
    "vuv_f1": True,
    "pitch_rmse_cents": False,
    "mel_l1": False,
    "mcd": False,
    "snr": True,
}


def evaluate_vocoder(
    pred_wav: ArrayLike, ref_wav: ArrayLike, sr: int, strict: bool = True
) -> dict[str, float]:
    """The vocoder quality suite for one utterance: keys of :data:`VOCODER_METRICS`.

    ``pred_wav`` and ``ref_wav`` are mono waveforms ``(T,)`` at ``sr`` (trimmed to the shorter).
    Mel L1 and MCD use the default :class:`accelerando.audio.MelConfig`, resampling to its rate when
    ``sr`` differs; PESQ-wb is computed at 16 kHz. With ``strict=False`` a metric that cannot be
    computed for this pair (audio too short for PESQ/STOI) is ``nan`` instead of raising.
    SNR compares waveforms sample by sample, so it only means something for phase-faithful output;
    a vocoder that invents its phase (Griffin-Lim, GANs) scores about -3 dB however good it sounds.
    """
    from accelerando.audio import MelConfig

    pred, ref = align_lengths(as_numpy_1d(pred_wav, "pred_wav"), as_numpy_1d(ref_wav, "ref_wav"))
    cfg = MelConfig()
    mel_pred = resample_mono(pred, sr, cfg.sample_rate)
    mel_ref = resample_mono(ref, sr, cfg.sample_rate)

    def guarded(fn, *args) -> Any:
        try:
            return fn(*args)
        except ValueError:
            if strict:
                raise
            return math.nan

    out: dict[str, float] = {
        "mstft": mstft_distance(pred, ref),
        "pesq_wb": guarded(pesq_wb, pred, ref, sr),
        "stoi": guarded(stoi, pred, ref, sr),
    }
    out.update(pitch_metrics(pred, ref, sr))
    out["mel_l1"] = mel_l1(mel_pred, mel_ref, cfg)
    out["mcd"] = mcd(mel_pred, mel_ref, cfg)
    out["snr"] = snr(pred, ref)
    return {name: float(out[name]) for name in VOCODER_METRICS}


__all__ = [
    "MCD_CONSTANT",
    "MMD_BANDWIDTH_SCALES",
    "VOCODER_METRICS",
    "LatencyTimer",
    "TimingResult",
    "align_lengths",
    "as_numpy_1d",
    "compare_speed",
    "cpu_model",
    "evaluate_vocoder",
    "frechet_distance",
    "gaussian_stats",
    "log_mel",
    "mcd",
    "measure_rtf",
    "mel_cepstrum",
    "mel_l1",
    "mmd2",
    "mstft_distance",
    "normalize_words",
    "periodicity_rmse",
    "pesq_wb",
    "pitch_metrics",
    "pitch_rmse_cents",
    "pitch_track",
    "rbf_mixture_kernel",
    "resample_mono",
    "si_snr",
    "sliced_wasserstein2",
    "snr",
    "stoi",
    "transcribe",
    "vuv_f1",
    "word_error_rate",
]
