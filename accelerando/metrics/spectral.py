"""Spectral distances: M-STFT (auraloss-style multi-resolution STFT), mel L1 and MCD.

Mel L1 and MCD use the one accelerando mel front end (:func:`accelerando.audio.mel_spectrogram`),
so they compare exactly what the vocoders are conditioned on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from accelerando.metrics.signal import ArrayLike, align_lengths, as_numpy_1d

# auraloss.freq.MultiResolutionSTFTLoss defaults (Steinmetz & Reiss 2020; Yamamoto et al. 2020).
MSTFT_FFT_SIZES: tuple[int, ...] = (1024, 2048, 512)
MSTFT_HOP_SIZES: tuple[int, ...] = (120, 240, 50)
MSTFT_WIN_LENGTHS: tuple[int, ...] = (600, 1200, 240)

# 10 / ln(10) * sqrt(2): turns a natural-log cepstral distance into dB (Kubichek 1993).
MCD_CONSTANT: float = 10.0 / math.log(10.0) * math.sqrt(2.0)


def _to_tensor(wav: ArrayLike, name: str) -> torch.Tensor:
    return torch.from_numpy(as_numpy_1d(wav, name)).float()


def mstft_distance(
    pred: ArrayLike,
    ref: ArrayLike,
    fft_sizes: Sequence[int] = MSTFT_FFT_SIZES,
    hop_sizes: Sequence[int] = MSTFT_HOP_SIZES,
    win_lengths: Sequence[int] = MSTFT_WIN_LENGTHS,
) -> float:
    """M-STFT: auraloss' ``MultiResolutionSTFTLoss`` with its default settings (lower is better).

    Evaluates :class:`accelerando.audio.MultiResolutionSTFTLoss` (the training loss, so metric and
    loss cannot drift apart). For each resolution (Hann window, centred frames, reflect padding) with
    magnitudes ``|X| = sqrt(re^2 + im^2 + 1e-7)``::

        SC   = ||  |Y| - |X|  ||_F / || |Y| ||_F          (spectral convergence)
        LMAG = mean | log|Y| - log|X| |                   (log-magnitude L1)

    and M-STFT is the mean over resolutions of ``SC + LMAG`` (the figure PeriodWave, BigVGAN and
    Vocos report). ``pred`` and ``ref`` are mono waveforms; the longer is trimmed. 0 for identical
    inputs.
    """
    from accelerando.audio import MultiResolutionSTFTLoss

    p, r = align_lengths(as_numpy_1d(pred, "pred"), as_numpy_1d(ref, "ref"))
    if len(r) <= max(fft_sizes) // 2:
        raise ValueError(f"M-STFT needs more than {max(fft_sizes) // 2} samples; got {len(r)}")
    loss = MultiResolutionSTFTLoss(fft_sizes, hop_sizes, win_lengths)
    x = torch.from_numpy(p).float()[None]  # (1, T)
    y = torch.from_numpy(r).float()[None]
    with torch.inference_mode():
        return float(loss(x, y))


def log_mel(wav: ArrayLike, cfg=None) -> torch.Tensor:
    """The accelerando log-mel ``(n_mels, frames)`` of a mono waveform (natural log, clamp 1e-5)."""
    from accelerando.audio import MelConfig, mel_spectrogram

    cfg = cfg or MelConfig()
    return mel_spectrogram(_to_tensor(wav, "wav"), cfg)[0]


def _paired_mels(pred: ArrayLike, ref: ArrayLike, cfg=None) -> tuple[torch.Tensor, torch.Tensor]:
    p, r = align_lengths(as_numpy_1d(pred, "pred"), as_numpy_1d(ref, "ref"))
    mp, mr = log_mel(p, cfg), log_mel(r, cfg)
    n = min(mp.shape[-1], mr.shape[-1])
    if n == 0:
        raise ValueError("audio is shorter than one mel frame")
    return mp[:, :n], mr[:, :n]


def mel_l1(pred: ArrayLike, ref: ArrayLike, cfg=None) -> float:
    """Mean absolute difference of the two log-mel spectrograms (natural log; lower is better).

    Both waveforms must be at ``cfg.sample_rate`` (default :class:`accelerando.audio.MelConfig`).
    """
    mp, mr = _paired_mels(pred, ref, cfg)
    return float(torch.mean(torch.abs(mp - mr)))


def mel_cepstrum(log_mel_spec: torch.Tensor, n_coeffs: int = 24) -> torch.Tensor:
    """Mel-cepstra ``c1..c{n_coeffs}`` ``(n_coeffs, frames)`` of a natural-log mel ``(M, frames)``.

    ``c_d = (1/M) sum_m log_mel[m] cos(pi d (m + 1/2) / M)``: a DCT-II scaled so the log-mel expands
    as ``c_0 + 2 sum_{d>=1} c_d cos(pi d (m + 1/2) / M)``, the real-cepstrum convention the MCD
    constant assumes. ``c_0`` (overall level) is dropped, as in the usual MCD definition.
    """
    n_mels = log_mel_spec.shape[0]
    if not 0 < n_coeffs < n_mels:
        raise ValueError(f"n_coeffs must be in [1, {n_mels - 1}] for {n_mels} mels; got {n_coeffs}")
    m = torch.arange(n_mels, dtype=torch.float64)
    d = torch.arange(1, n_coeffs + 1, dtype=torch.float64)
    basis = torch.cos(math.pi / n_mels * d[:, None] * (m[None, :] + 0.5)) / n_mels  # (n_coeffs, M)
    return basis @ log_mel_spec.double()  # (n_coeffs, frames)


def mcd(pred: ArrayLike, ref: ArrayLike, cfg=None, n_coeffs: int = 24) -> float:
    """Mel-cepstral distortion in dB (lower is better), frame-aligned (no DTW).

    ``MCD = mean_t 10/ln(10) * sqrt(2 * sum_{d=1}^{24} (c_d(t) - c'_d(t))^2)`` (Kubichek 1993) with
    ``c`` the mel-cepstra of :func:`mel_cepstrum`, computed from the accelerando log-mel (80 slaney
    mels, natural log of magnitude, ``clamp 1e-5``). With this cepstrum scaling Parseval gives
    ``sqrt(2 sum_d dc_d^2)`` = RMS over mel bands of the difference of the two cepstrally smoothed
    log-mel envelopes (``c0`` excluded), so the constant plays the role it has with SPTK's
    log-amplitude cepstra. These are DCT cepstra of our mel front end, not all-pass-warped ``mcep``
    cepstra, so figures compare within accelerando but not digit-for-digit with papers. The mean
    runs over all frames (silences included); vocoder output is aligned with its reference, so no
    time warping is applied.
    """
    mp, mr = _paired_mels(pred, ref, cfg)
    diff = mel_cepstrum(mp, n_coeffs) - mel_cepstrum(mr, n_coeffs)  # (n_coeffs, frames)
    per_frame = MCD_CONSTANT * torch.sqrt(torch.sum(diff**2, dim=0))
    return float(per_frame.mean())
