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
- the low-band energy is clamped at ``energy_max`` before normalising, the high band is not.

The reference also runs each frame-rate track through a high-pass (15 Hz) and a low-pass (5.5 kHz)
biquad designed for a nominal 11025 Hz rate (``filter_track=True`` here). On a track at the mel
frame rate (86 Hz) that high-pass is a slow DC blocker whose state starts at zero: the track's level
decays along the utterance (38% left after a 62-frame training crop, 2% after 124 frames, below zero
after 248), so training crops and whole utterances see different priors and most of a long utterance
sits at the ``std_min`` floor. It is off by default (``FreGrad(filter_prior=False)``, PriorGrad's
unfiltered prior); checkpoints that were trained with it keep it through their config.
"""

from __future__ import annotations

import torch
from torch import Tensor

from accelerando.audio.filters import biquad
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

# The reference filters the frame-rate track as if it were sampled at 11025 Hz.
_FILTER_RATE = 11025.0


def compute_band_std(
    mel: Tensor,
    energy_min: float = DEFAULT_ENERGY_MIN,
    energy_max: float = DEFAULT_ENERGY_MAX,
    std_min: float = 0.1,
    filter_track: bool = False,
) -> Tensor:
    """Per-band prior standard deviation of FreGrad at the mel frame rate.

    Args:
        mel: ``(B, n_mels, frames)`` natural-log mel (``n_mels`` even).
        energy_min, energy_max: training-set energy statistics (see :func:`compute_energy_stats`).
        std_min: floor of the standard deviation.
        filter_track: apply the reference code's biquad filtering (module docstring: it makes the
            prior depend on the position in the utterance; off by default).

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
        std = biquad(std, "highpass", 15.0, _FILTER_RATE, clamp=True)
        std = biquad(std, "lowpass", 5500.0, _FILTER_RATE, clamp=True)
    # The filters' clamp bounds the reference's sigma by 1; keep that bound without them too.
    return std.clamp(min=std_min, max=1.0).to(mel.dtype)
