"""FreGrad's frequency-wise prior: one noise standard deviation per sub-band and mel frame.

PriorGrad (Lee et al., ICLR 2022) draws the diffusion noise from ``N(0, diag(sigma^2))`` where
``sigma`` follows the frame energy of the mel; FreGrad (Nguyen et al., ICASSP 2024, Sec. 3.2)
gives each wavelet sub-band its own track: ``sigma_low`` from mel bins ``[0, n_mels/2)`` and
``sigma_high`` from ``[n_mels/2, n_mels)``, each ``sqrt(sum(exp(mel)))`` min-max normalised with
training-set energy statistics and floored at ``std_min``.

The frame energy and its statistics live in :mod:`accelerando.vocoders.energy` (shared with
PeriodWave); they are re-exported here.

Details follow the reference code (kaistmm/fregrad, ``dataset.py``):

- the statistics are the min and max of the *full-band* frame energy over the training set, and
  the max is overridden with 4.0 (PriorGrad's ``max_energy_override``, which clips outliers);
- the low-band energy is clamped at ``energy_max`` before normalising, the high band is not;
- with ``filter_track=True`` each normalised track is run through a high-pass (15 Hz) and then a
  low-pass (5.5 kHz) RBJ biquad (Q = 0.707) at a nominal rate of 11025 Hz, each output clamped to
  ``[-1, 1]`` (torchaudio's ``lfilter`` default), then floored at ``std_min`` again. The filters
  run on the frame-rate track; their effect is mainly a slow decay of the track's start, which the
  reference applies to every training crop and every utterance at inference, and so do we.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor
from torch.nn import functional as F

from accelerando.vocoders.energy import (
    DEFAULT_ENERGY_MAX,
    DEFAULT_ENERGY_MIN,
    compute_energy_stats,
    frame_energy,
)

__all__ = [
    "DEFAULT_ENERGY_MAX",
    "DEFAULT_ENERGY_MIN",
    "compute_band_std",
    "compute_energy_stats",
    "frame_energy",
]

_FILTER_RATE = 11025.0
_FILTER_Q = 0.707


def _biquad_coefficients(kind: str, cutoff: float) -> tuple[list[float], list[float]]:
    """RBJ cookbook biquad ``(b, a)``, normalised so that ``a[0] = 1`` (torchaudio's formulas)."""
    w0 = 2 * math.pi * cutoff / _FILTER_RATE
    alpha = math.sin(w0) / (2 * _FILTER_Q)
    cos_w0 = math.cos(w0)
    if kind == "highpass":
        b = [(1 + cos_w0) / 2, -(1 + cos_w0), (1 + cos_w0) / 2]
    else:
        b = [(1 - cos_w0) / 2, 1 - cos_w0, (1 - cos_w0) / 2]
    a0 = 1 + alpha
    return [x / a0 for x in b], [1.0, -2 * cos_w0 / a0, (1 - alpha) / a0]


@functools.lru_cache(maxsize=64)
def _impulse_response(kind: str, cutoff: float, length: int) -> Tensor:
    """The first ``length`` samples of the biquad's impulse response, float64."""
    b, a = _biquad_coefficients(kind, cutoff)
    h = [0.0] * length
    y1 = y2 = 0.0  # y[n-1], y[n-2]
    for n in range(length):
        y = (b[n] if n < 3 else 0.0) - a[1] * y1 - a[2] * y2  # input: a unit impulse at n = 0
        h[n] = y
        y1, y2 = y, y1
    return torch.tensor(h, dtype=torch.float64)


def _causal_filter(track: Tensor, kind: str, cutoff: float) -> Tensor:
    """Exact zero-initial-state IIR output on ``(N, frames)``, as a causal convolution, clamped to [-1, 1]."""
    length = track.shape[-1]
    h = _impulse_response(kind, cutoff, length).to(device=track.device, dtype=track.dtype)  # (frames,)
    padded = F.pad(track.unsqueeze(1), (length - 1, 0))  # (N, 1, 2 * frames - 1)
    out = F.conv1d(padded, h.flip(0).view(1, 1, -1)).squeeze(1)  # (N, frames)
    return out.clamp(-1.0, 1.0)


def compute_band_std(
    mel: Tensor,
    energy_min: float = DEFAULT_ENERGY_MIN,
    energy_max: float = DEFAULT_ENERGY_MAX,
    std_min: float = 0.1,
    filter_track: bool = True,
) -> Tensor:
    """Per-band prior standard deviation of FreGrad at the mel frame rate.

    Args:
        mel: ``(B, n_mels, frames)`` natural-log mel (``n_mels`` even).
        energy_min, energy_max: training-set energy statistics (see :func:`compute_energy_stats`).
        std_min: floor of the standard deviation.
        filter_track: apply the reference code's biquad filtering (module docstring).

    Returns:
        ``(B, 2, frames)`` standard deviations ``[low, high]`` in ``[std_min, 1]``, in ``mel``'s dtype.
    """
    if energy_max <= energy_min:
        raise ValueError(f"energy_max ({energy_max}) must be greater than energy_min ({energy_min})")
    half = mel.shape[1] // 2
    work = mel.double()
    low = frame_energy(work[:, :half]).clamp(max=energy_max)  # (B, frames)
    high = frame_energy(work[:, half:])  # (B, frames)
    std = (torch.stack([low, high], dim=1) - energy_min) / (energy_max - energy_min)  # (B, 2, frames)
    std = std.clamp(min=std_min)
    if filter_track:
        flat = std.reshape(-1, std.shape[-1])  # (B * 2, frames)
        flat = _causal_filter(flat, "highpass", 15.0)
        flat = _causal_filter(flat, "lowpass", 5500.0)
        std = flat.reshape(std.shape)
    # The filters' clamp bounds the reference's sigma by 1; keep that bound without them too.
    return std.clamp(min=std_min, max=1.0).to(mel.dtype)
