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
    "PRIORS",
    "band_amplitude",
    "compute_band_std",
    "compute_calibrated_band_std",
    "compute_energy_stats",
    "fit_band_scales",
    "frame_energy",
    "prior_split_bin",
]

# "energy": the paper's tracks (below); "calibrated": matched to the sub-bands (end of the module).
PRIORS = ("energy", "calibrated")

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


# ------------------------------------------------------------------------------------ calibrated prior
#
# The paper's tracks are a poor match for the Haar sub-bands on this front end: ``sqrt(sum(exp(mel)))`` grows
# with the square root of the amplitude (the mel holds magnitudes), mel bins 40-79 span ~1.6-8 kHz while the
# high sub-band is 5.5-11 kHz, and the 0.1 floor is ~-20 dB. Measured on the speech corpus, the high band's
# sigma was ~10x its actual level and silent frames' sigma ~300x theirs. ``prior="calibrated"`` takes each
# band's amplitude from the mel bins inside that band, as a root power sum (linear in the amplitude), scaled
# by a factor fitted on the training set so that sigma follows the sub-band's RMS, with a low floor.


def prior_split_bin(n_mels: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None) -> int:
    """Index of the first (slaney) mel bin whose centre lies at or above ``sample_rate / 4`` (the Haar split)."""
    import librosa

    centres = librosa.mel_frequencies(n_mels + 2, fmin=f_min, fmax=f_max or sample_rate / 2)[1:-1]
    return int((centres < sample_rate / 4).sum())


def band_amplitude(mel: Tensor, split_bin: int) -> Tensor:
    """``sqrt(sum(exp(mel)^2))`` over bins ``[0, split)`` and ``[split, n_mels)``: ``(B, n, F) -> (B, 2, F)``."""
    power = (2.0 * mel.double()).exp()  # (B, n_mels, frames)
    return torch.stack([power[:, :split_bin].sum(1), power[:, split_bin:].sum(1)], dim=1).sqrt()


def fit_band_scales(pairs: list[tuple[Tensor, Tensor]], split_bin: int, hop_length: int = 256) -> list[float]:
    """Per-band factor from mel amplitude to the sub-band's frame RMS, fitted on ``(wav (T,), mel (1, n, F))`` pairs.

    The factor is the median of ``rms / amplitude`` (a fit in the log domain) over frames whose sub-band RMS is
    above -60 dB of the loudest frame, so silence and rounding do not steer it.
    """
    from accelerando.audio import dwt_haar

    ratios: list[list[Tensor]] = [[], []]
    for wav, mel in pairs:
        frames = min(mel.shape[-1], wav.shape[-1] // hop_length)
        bands = dwt_haar(wav[None, None, : frames * hop_length].double())[0]  # (2, frames * hop / 2)
        rms = bands.reshape(2, frames, hop_length // 2).pow(2).mean(-1).sqrt()  # (2, frames)
        amp = band_amplitude(mel[..., :frames], split_bin)[0]  # (2, frames)
        for b in range(2):
            keep = rms[b] > 1e-3 * rms[b].max()
            if bool(keep.any()):
                ratios[b].append((rms[b][keep] / amp[b][keep].clamp_min(1e-12)).log())
    if not ratios[0] or not ratios[1]:
        raise ValueError("fit_band_scales needs utterances with non-silent audio in both sub-bands")
    return [float(torch.cat(r).median().exp()) for r in ratios]


def compute_calibrated_band_std(
    mel: Tensor, scales: list[float] | tuple[float, ...], split_bin: int, std_min: float = 0.005
) -> Tensor:
    """Calibrated per-band sigma ``clamp(scale_band * band_amplitude, std_min, 1)``: ``(B, n, F) -> (B, 2, F)``."""
    scale = torch.tensor(list(scales), dtype=torch.float64, device=mel.device).view(1, 2, 1)
    return (band_amplitude(mel, split_bin) * scale).clamp(min=std_min, max=1.0).to(mel.dtype)
