"""Mel frame-energy statistics for energy-based diffusion and flow priors, shared by the vocoders.

PriorGrad (Lee et al., "PriorGrad: Improving Conditional Denoising Diffusion Models with Data-Dependent
Adaptive Prior", ICLR 2022) draws the noise from ``N(0, diag(sigma^2))`` where ``sigma`` follows the frame
energy ``sqrt(sum_bins(exp(mel)))`` of the natural-log mel, min-max normalised with training-set statistics.
Two of our vocoders build their priors on it:

- FreGrad (Nguyen et al., ICASSP 2024): one track per wavelet sub-band (:mod:`accelerando.vocoders.fregrad.prior`);
- PeriodWave (Lee et al., arXiv 2408.07547): one full-band track (:mod:`accelerando.vocoders.periodwave.model`).

Example::

    from accelerando.audio import mel_spectrogram
    from accelerando.vocoders.energy import compute_energy_stats, frame_energy

    mels = [mel_spectrogram(wav) for wav in training_wavs]  # each (1, 80, frames)
    energy_min, energy_max = compute_energy_stats(mels)
    energy = frame_energy(mels[0])  # (1, frames)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["DEFAULT_ENERGY_MAX", "DEFAULT_ENERGY_MIN", "compute_energy_stats", "frame_energy"]

# PriorGrad's ``max_energy_override``: the statistics' max is replaced by 4.0, which clips outliers.
DEFAULT_ENERGY_MAX = 4.0
# The energy of a silent frame of the shared front end: 80 bins at the 1e-5 mel clamp.
DEFAULT_ENERGY_MIN = math.sqrt(80 * 1e-5)


def frame_energy(mel: Tensor) -> Tensor:
    """``sqrt(sum_bins(exp(mel)))``: ``(B, n_mels, frames)`` natural-log mel -> ``(B, frames)``."""
    return mel.exp().sum(dim=1).sqrt()


def compute_energy_stats(mels: list[Tensor] | Tensor) -> tuple[float, float]:
    """Min and max full-band frame energy over a set of log-mels (the training set).

    Args:
        mels: ``(B, n_mels, frames)`` tensors or ``(n_mels, frames)`` tensors, of any lengths.

    Returns:
        ``(energy_min, energy_max)`` as Python floats.
    """
    if isinstance(mels, Tensor):
        mels = [mels]
    if len(mels) == 0:
        raise ValueError("compute_energy_stats needs at least one mel spectrogram")
    lows, highs = [], []
    for mel in mels:
        mel = mel.unsqueeze(0) if mel.dim() == 2 else mel
        energy = frame_energy(mel.double())
        lows.append(energy.min())
        highs.append(energy.max())
    return float(torch.stack(lows).min()), float(torch.stack(highs).max())
