"""Spectral reconstruction losses shared by the vocoders (differentiable, pure torch in forward).

- :class:`MultiResolutionSTFTLoss`: Parallel WaveGAN's multi-resolution STFT loss
  (Yamamoto et al. 2020, arXiv 1910.11480), used by NEWT and FreGrad.
- :class:`MultiScaleMelLoss`: DAC's multi-scale mel loss (Kumar et al. 2023, arXiv 2306.06546),
  used by PeriodWave-Turbo.

Both take ``pred`` and ``target`` of shape ``(B, T)`` or ``(B, 1, T)`` and return a scalar.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .mel import mel_basis, stft_magnitude

# Power floor under the square root (Parallel WaveGAN clamps at 1e-7; adding keeps gradients smooth).
STFT_LOSS_EPS = 1e-7


def _as_batch(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape; got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if pred.dim() == 3 and pred.shape[1] == 1:
        return pred.squeeze(1), target.squeeze(1)  # (B, T)
    if pred.dim() != 2:
        raise ValueError(f"expected waveforms of shape (B, T) or (B, 1, T); got {tuple(pred.shape)}")
    return pred, target


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence + log-magnitude L1, each averaged over STFT resolutions.

    Per resolution (hann window of ``win_length``, centred frames): spectral convergence
    ``||S_t - S_p||_F / ||S_t||_F`` and ``mean |log S_t - log S_p|`` on magnitudes
    ``sqrt(re^2 + im^2 + 1e-7)``. Returns ``mean(sc) + mean(log_mag)``, a scalar.
    """

    def __init__(
        self,
        fft_sizes: Sequence[int] = (1024, 2048, 512),
        hop_sizes: Sequence[int] = (120, 240, 50),
        win_lengths: Sequence[int] = (600, 1200, 240),
    ) -> None:
        super().__init__()
        if not len(fft_sizes) == len(hop_sizes) == len(win_lengths) > 0:
            raise ValueError(
                f"fft_sizes, hop_sizes and win_lengths must be non-empty and of equal length; "
                f"got {len(fft_sizes)}, {len(hop_sizes)}, {len(win_lengths)}"
            )
        for n_fft, win in zip(fft_sizes, win_lengths):
            if win > n_fft:
                raise ValueError(f"win_length {win} is longer than its fft_size {n_fft}")
        self.fft_sizes, self.hop_sizes = tuple(fft_sizes), tuple(hop_sizes)
        for i, win in enumerate(win_lengths):
            self.register_buffer(f"window_{i}", torch.hann_window(win), persistent=False)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        pred, target = _as_batch(pred, target)  # (B, T)
        sc_total = mag_total = pred.new_zeros(())
        for i, (n_fft, hop) in enumerate(zip(self.fft_sizes, self.hop_sizes)):
            window = getattr(self, f"window_{i}")
            s_pred = stft_magnitude(pred, n_fft, hop, window, center=True, eps=STFT_LOSS_EPS)  # (B, F, N)
            s_true = stft_magnitude(target, n_fft, hop, window, center=True, eps=STFT_LOSS_EPS)
            sc_total = sc_total + torch.linalg.norm(s_true - s_pred) / torch.linalg.norm(s_true)
            mag_total = mag_total + nn.functional.l1_loss(torch.log(s_pred), torch.log(s_true))
        return (sc_total + mag_total) / len(self.fft_sizes)


class MultiScaleMelLoss(nn.Module):
    """DAC's multi-scale mel loss, summed over scales.

    Per scale (hann window ``w``, ``n_fft = w``, hop ``w // 4``, centred frames, slaney mel of
    ``n_mels`` bands from 0 Hz to Nyquist): ``log_weight * L1(log10(clamp(M, eps) ** pow))``
    ``+ mag_weight * L1(M)`` between predicted and target mel magnitudes ``M``.

    Defaults are DAC's ``MelSpectrogramLoss`` class defaults (pow 2, mag/log weight 1, clamp 1e-5)
    with the scales of DAC's training recipe (windows 32..2048, n_mels 5..320). DAC's
    ``conf/base.yml`` (and BigVGAN-v2) train with ``pow=1.0, mag_weight=0.0``: pass those to
    reproduce that recipe.
    """

    def __init__(
        self,
        sample_rate: int = 22050,
        window_lengths: Sequence[int] = (32, 64, 128, 256, 512, 1024, 2048),
        n_mels: Sequence[int] = (5, 10, 20, 40, 80, 160, 320),
        clamp_eps: float = 1e-5,
        mag_weight: float = 1.0,
        log_weight: float = 1.0,
        pow: float = 2.0,
    ) -> None:
        super().__init__()
        if not len(window_lengths) == len(n_mels) > 0:
            raise ValueError(
                f"window_lengths and n_mels must be non-empty and of equal length; got {window_lengths}, {n_mels}"
            )
        self.window_lengths, self.n_mels = tuple(window_lengths), tuple(n_mels)
        self.clamp_eps, self.mag_weight, self.log_weight, self.pow = clamp_eps, mag_weight, log_weight, pow
        for i, (win, mels) in enumerate(zip(window_lengths, n_mels)):
            self.register_buffer(f"window_{i}", torch.hann_window(win), persistent=False)
            self.register_buffer(f"mel_basis_{i}", mel_basis(sample_rate, win, mels), persistent=False)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        pred, target = _as_batch(pred, target)  # (B, T)
        loss = pred.new_zeros(())
        for i, win in enumerate(self.window_lengths):
            window, basis = getattr(self, f"window_{i}"), getattr(self, f"mel_basis_{i}")
            m_pred = basis @ stft_magnitude(pred, win, win // 4, window, center=True)  # (B, n_mels, N)
            m_true = basis @ stft_magnitude(target, win, win // 4, window, center=True)
            if self.log_weight:
                log_pred = m_pred.clamp(min=self.clamp_eps).pow(self.pow).log10()
                log_true = m_true.clamp(min=self.clamp_eps).pow(self.pow).log10()
                loss = loss + self.log_weight * nn.functional.l1_loss(log_pred, log_true)
            if self.mag_weight:
                loss = loss + self.mag_weight * nn.functional.l1_loss(m_pred, m_true)
        return loss
