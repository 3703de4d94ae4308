"""Waveform-domain distances: signal-to-noise ratio, plain and scale-invariant."""

from __future__ import annotations

import math

import numpy as np
import torch

ArrayLike = torch.Tensor | np.ndarray


def as_numpy_1d(wav: ArrayLike, name: str = "wav") -> np.ndarray:
    """A mono waveform as a float64 NumPy vector; accepts ``(T,)``, ``(1, T)`` or ``(1, 1, T)``."""
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().cpu().double().numpy()
    arr = np.asarray(wav, dtype=np.float64)
    if arr.ndim > 1 and all(size == 1 for size in arr.shape[:-1]):
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one mono waveform of shape (T,) or (1, T); got shape {arr.shape}")
    return arr


def align_lengths(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Trims both waveforms to the shorter length (vocoder outputs may differ by a few samples)."""
    n = min(len(pred), len(ref))
    return pred[:n], ref[:n]


def resample_mono(wav: ArrayLike, orig_sr: int, target_sr: int) -> np.ndarray:
    """A mono waveform resampled with :func:`accelerando.audio.resample` (soxr), as float64 NumPy."""
    arr = as_numpy_1d(wav)
    if orig_sr == target_sr:
        return arr
    from accelerando.audio import resample

    return as_numpy_1d(resample(torch.from_numpy(arr), orig_sr, target_sr), "resampled")


def snr(pred: ArrayLike, ref: ArrayLike, scale_invariant: bool = False, eps: float = 1e-12) -> float:
    """Signal-to-noise ratio of ``pred`` against ``ref`` in dB (higher is better).

    ``SNR = 10 log10(||ref||^2 / ||ref - pred||^2)``; ``inf`` when the two are identical.

    With ``scale_invariant=True`` this is SI-SDR (Le Roux et al., 2019, "SDR -- half-baked or well
    done?"): ``ref`` is first scaled by ``alpha = <pred, ref> / ||ref||^2`` so a gain change is not
    counted as noise. Both inputs are mono waveforms ``(T,)``; the longer one is trimmed.
    """
    p, r = align_lengths(as_numpy_1d(pred, "pred"), as_numpy_1d(ref, "ref"))
    if scale_invariant:
        alpha = float(np.dot(p, r) / (np.dot(r, r) + eps))
        r = alpha * r
    noise = float(np.sum((r - p) ** 2))
    signal = float(np.sum(r**2))
    if noise == 0.0:
        return math.inf
    return 10.0 * math.log10((signal + eps) / noise)


def si_snr(pred: ArrayLike, ref: ArrayLike) -> float:
    """Scale-invariant SNR (SI-SDR) in dB; see :func:`snr`."""
    return snr(pred, ref, scale_invariant=True)
