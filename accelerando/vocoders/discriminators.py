"""GAN discriminators and losses shared by the vocoders.

- :class:`MultiPeriodDiscriminator` (HiFi-GAN, Kong et al. 2020): 2D convs over the waveform reshaped by each
  period (2, 3, 5, 7, 11 by default).
- :class:`MultiScaleSubbandCQTDiscriminator` (MS-SB-CQTD; Gu et al., "Multi-Scale Sub-Band Constant-Q
  Transform Discriminator", ICASSP 2024; as configured in BigVGAN-v2 and PeriodWave-Turbo): three CQT
  resolutions (hops 512 / 256 / 256, 9 octaves, 24 / 36 / 48 bins per octave), a conv per octave
  (sub-band), then a shared 2D conv stack.
- :class:`ConstantQTransform`: a torch CQT (multi-rate, Brown & Puckette / Schörkhuber & Klapuri): the top
  octave's complex kernels are applied at every octave to a signal halved in rate each time, so every
  kernel stays short.
- LSGAN losses (Mao et al. 2017) :func:`discriminator_loss`, :func:`generator_loss` and the L1
  :func:`feature_loss` (unweighted; PeriodWave-Turbo and BigVGAN-v2 weight it by 2).

Each multi-discriminator has ``forward(y, y_hat) -> (real_scores, fake_scores, real_fmaps, fake_fmaps)`` on
``(B, 1, T)`` waveforms, lists with one entry per sub-discriminator.

Example::

    mpd, cqtd = MultiPeriodDiscriminator(), MultiScaleSubbandCQTDiscriminator(sample_rate=22050)
    real, fake, fmap_r, fmap_g = cqtd(y, y_hat.detach())
    loss_d = discriminator_loss(real, fake)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

__all__ = [
    "ConstantQTransform",
    "DiscriminatorCQT",
    "DiscriminatorP",
    "MultiPeriodDiscriminator",
    "MultiScaleSubbandCQTDiscriminator",
    "discriminator_loss",
    "feature_loss",
    "generator_loss",
]

DiscriminatorOutput = tuple[list[Tensor], list[Tensor], list[list[Tensor]], list[list[Tensor]]]
LRELU_SLOPE = 0.1


def _as_wave(x: Tensor) -> Tensor:
    """``(B, T)`` or ``(B, 1, T)`` -> ``(B, 1, T)``, with a clear error otherwise."""
    if x.dim() == 2:
        x = x.unsqueeze(1)
    if x.dim() != 3 or x.shape[1] != 1:
        raise ValueError(
            f"Discriminators take (batch, 1, samples) or (batch, samples) waveforms; got {tuple(x.shape)}."
        )
    return x


def _pair(disc: nn.ModuleList, y: Tensor, y_hat: Tensor) -> DiscriminatorOutput:
    y, y_hat = _as_wave(y), _as_wave(y_hat)
    if y.shape != y_hat.shape:
        raise ValueError(
            f"Real and generated waveforms must have the same shape; got {tuple(y.shape)}, {tuple(y_hat.shape)}."
        )
    real, fake, fmap_r, fmap_g = [], [], [], []
    for d in disc:
        score_r, feats_r = d(y)
        score_g, feats_g = d(y_hat)
        real.append(score_r)
        fake.append(score_g)
        fmap_r.append(feats_r)
        fmap_g.append(feats_g)
    return real, fake, fmap_r, fmap_g


# --------------------------------------------------------------------------------------------------- MPD


class DiscriminatorP(nn.Module):
    """One period of the MPD: ``(B, 1, T)`` -> score ``(B, N)`` and 6 feature maps."""

    def __init__(self, period: int, kernel_size: int = 5, stride: int = 3, channel_mult: float = 1.0) -> None:
        super().__init__()
        self.period = period
        chs = [1] + [int(c * channel_mult) for c in (32, 128, 512, 1024, 1024)]
        pad = ((kernel_size - 1) // 2, 0)
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(c_in, c_out, (kernel_size, 1), (stride if i < 4 else 1, 1), padding=pad))
            for i, (c_in, c_out) in enumerate(zip(chs[:-1], chs[1:]))
        )
        self.conv_post = weight_norm(nn.Conv2d(chs[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        b, c, t = x.shape
        n_pad = -t % self.period
        if n_pad:
            x = F.pad(x, (0, n_pad), mode="reflect" if n_pad < t else "constant")
        x = x.reshape(b, c, (t + n_pad) // self.period, self.period)  # (B, 1, T / p, p)
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return x.flatten(1), fmap


class MultiPeriodDiscriminator(nn.Module):
    """HiFi-GAN's multi-period discriminator (periods 2, 3, 5, 7, 11)."""

    def __init__(self, periods: Sequence[int] = (2, 3, 5, 7, 11), channel_mult: float = 1.0) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(DiscriminatorP(p, channel_mult=channel_mult) for p in periods)

    def forward(self, y: Tensor, y_hat: Tensor) -> DiscriminatorOutput:
        return _pair(self.discriminators, y, y_hat)


# --------------------------------------------------------------------------------------------------- CQT


def _lowpass(num_taps: int, cutoff: float) -> Tensor:
    """Hann-windowed sinc low-pass, ``cutoff`` as a fraction of Nyquist, unit DC gain: ``(num_taps,)``."""
    n = torch.arange(num_taps, dtype=torch.float64) - (num_taps - 1) / 2
    h = cutoff * torch.sinc(cutoff * n) * torch.hann_window(num_taps, periodic=False, dtype=torch.float64)
    return (h / h.sum()).float()


class ConstantQTransform(nn.Module):
    """Complex CQT ``(B, T) -> (B, n_octaves * bins_per_octave, ceil(T / hop))`` at bins ``fmin * 2^(k / bpo)``.

    Kernels are Hann-windowed complex exponentials of ``Q * sr / f`` samples (``Q = 1 / (2^(1/bpo) - 1)``),
    normalised by their window's sum (a unit sinusoid at a bin's centre gives magnitude about 0.5). The
    input is zero-padded to a multiple of ``hop``; frames are centred (zero padding). ``hop`` must be
    divisible by ``2^(n_octaves - 1)`` and the top bin must lie below Nyquist.
    """

    def __init__(
        self,
        sample_rate: int,
        hop_length: int,
        n_octaves: int = 9,
        bins_per_octave: int = 24,
        fmin: float = 32.70,
        lowpass_taps: int = 63,
    ) -> None:
        super().__init__()
        if hop_length % 2 ** (n_octaves - 1):
            raise ValueError(
                f"hop_length must be divisible by 2^(n_octaves - 1) = {2 ** (n_octaves - 1)}; got {hop_length}."
            )
        top_fmin = fmin * 2 ** (n_octaves - 1)
        f_top = top_fmin * 2 ** ((bins_per_octave - 1) / bins_per_octave)
        if f_top >= sample_rate / 2:
            raise ValueError(
                f"The top CQT bin ({f_top:.0f} Hz) must lie below Nyquist ({sample_rate / 2:.0f} Hz)."
            )
        self.hop_length, self.n_octaves, self.bins_per_octave = hop_length, n_octaves, bins_per_octave
        q = 1.0 / (2 ** (1.0 / bins_per_octave) - 1)
        freqs = top_fmin * 2 ** (torch.arange(bins_per_octave, dtype=torch.float64) / bins_per_octave)
        lengths = torch.ceil(q * sample_rate / freqs).long()
        size = int(lengths.max()) | 1  # odd, so the kernels are centred
        kernels = torch.zeros(2 * bins_per_octave, 1, size, dtype=torch.float64)
        for k, (f, n) in enumerate(zip(freqs.tolist(), lengths.tolist())):
            t = torch.arange(n, dtype=torch.float64) - (n - 1) / 2
            window = torch.hann_window(n, periodic=False, dtype=torch.float64)
            start = (size - n) // 2
            phase = 2 * math.pi * f * t / sample_rate
            kernels[k, 0, start : start + n] = window * torch.cos(phase) / window.sum()
            kernels[bins_per_octave + k, 0, start : start + n] = window * torch.sin(phase) / window.sum()
        self.register_buffer("kernels", kernels.float(), persistent=False)  # (2 bpo, 1, K): [real; imag]
        self.register_buffer("lowpass", _lowpass(lowpass_taps, 0.45).view(1, 1, -1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:  # (B, T) -> complex (B, n_bins, frames)
        # Always float32: complex bfloat16 / float16 tensors do not exist, and under an autocast region
        # (``--mixed_precision bf16``) the convolutions below would otherwise run in reduced precision.
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self._cqt(x.float())

    def _cqt(self, x: Tensor) -> Tensor:
        x = x.unsqueeze(1)
        x = F.pad(x, (0, -x.shape[-1] % self.hop_length))  # (B, 1, frames * hop)
        hop, size, bpo = self.hop_length, self.kernels.shape[-1], self.bins_per_octave
        octaves = []
        for level in range(self.n_octaves):  # level 0 is the top octave
            padded = F.pad(x, (size // 2, size // 2))
            out = _strided_correlation(padded, self.kernels, hop)  # (B, 2 bpo, frames)
            octaves.append(torch.complex(out[:, :bpo], -out[:, bpo:]))
            if level < self.n_octaves - 1:
                taps = self.lowpass.shape[-1]
                x = F.conv1d(F.pad(x, (taps // 2, taps // 2)), self.lowpass)[..., ::2]  # half the rate
                hop //= 2
        return torch.cat(octaves[::-1], dim=1)


def _strided_correlation(x: Tensor, kernels: Tensor, stride: int) -> Tensor:
    """``F.conv1d(x, kernels, stride=stride)`` for one input channel, as frames x kernels (a matmul).

    ``(B, 1, T), (C, 1, K) -> (B, C, frames)``. Not ``F.conv1d``: its oneDNN backward for these long kernels
    with a stride corrupts the heap in torch 2.13 on CPU (kernel 363, stride 4, 96 channels crashes the
    process); the frames are few (``T / stride``) and the matmul is as fast.
    """
    frames = x.squeeze(1).unfold(-1, kernels.shape[-1], stride)  # (B, frames, K)
    return torch.matmul(kernels.squeeze(1), frames.transpose(1, 2))  # (C, K) @ (B, K, frames)


def _upsample2(x: Tensor, lowpass: Tensor) -> Tensor:
    """``(B, 1, T) -> (B, 1, 2T)``: zero-stuffing and a windowed-sinc low-pass at the old Nyquist."""
    up = torch.stack([x, torch.zeros_like(x)], dim=-1).flatten(-2) * 2  # (B, 1, 2T)
    taps = lowpass.shape[-1]
    return F.conv1d(F.pad(up, (taps // 2, taps // 2)), lowpass)


class DiscriminatorCQT(nn.Module):
    """One CQT scale of MS-SB-CQTD: ``(B, 1, T)`` -> score ``(B, 1, frames, bins')`` and feature maps.

    The waveform is upsampled x2 (so 9 octaves from 32.7 Hz fit under Nyquist), transformed, its real and
    imaginary parts stacked as 2 channels over ``(frames, bins)``; a conv per octave (the sub-bands), then
    a conv, three dilated (over time) convs of frequency stride 2, and two 3x3 convs.
    """

    def __init__(
        self,
        sample_rate: int,
        hop_length: int,
        n_octaves: int = 9,
        bins_per_octave: int = 24,
        filters: int = 128,
        max_filters: int = 1024,
        filters_scale: int = 1,
        dilations: Sequence[int] = (1, 2, 4),
    ) -> None:
        super().__init__()
        self.n_octaves, self.bins_per_octave = n_octaves, bins_per_octave
        self.cqt = ConstantQTransform(2 * sample_rate, hop_length, n_octaves, bins_per_octave)
        self.register_buffer("upsample_filter", _lowpass(63, 0.5).view(1, 1, -1), persistent=False)
        k = (3, 9)
        self.conv_pres = nn.ModuleList(nn.Conv2d(2, 2, k, padding=(1, 4)) for _ in range(n_octaves))
        self.convs = nn.ModuleList([nn.Conv2d(2, filters, k, padding=(1, 4))])
        c_in = min(filters_scale * filters, max_filters)
        for i, d in enumerate(dilations):
            c_out = min(filters_scale ** (i + 1) * filters, max_filters)
            self.convs.append(weight_norm(nn.Conv2d(c_in, c_out, k, (1, 2), dilation=(d, 1), padding=(d, 4))))
            c_in = c_out
        c_out = min(filters_scale ** (len(dilations) + 1) * filters, max_filters)
        self.convs.append(weight_norm(nn.Conv2d(c_in, c_out, 3, padding=1)))
        self.conv_post = weight_norm(nn.Conv2d(c_out, 1, 3, padding=1))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        z = self.cqt(_upsample2(x, self.upsample_filter).squeeze(1))  # complex (B, n_bins, frames)
        z = torch.stack([z.real, z.imag], dim=1).transpose(2, 3)  # (B, 2, frames, n_bins)
        bpo = self.bins_per_octave
        z = torch.cat(
            [conv(z[..., i * bpo : (i + 1) * bpo]) for i, conv in enumerate(self.conv_pres)], dim=-1
        )  # (B, 2, frames, n_bins)
        fmap = []
        for conv in self.convs:
            z = F.leaky_relu(conv(z), LRELU_SLOPE)
            fmap.append(z)
        return self.conv_post(z), fmap


class MultiScaleSubbandCQTDiscriminator(nn.Module):
    """MS-SB-CQTD: one :class:`DiscriminatorCQT` per (hop, octaves, bins per octave)."""

    def __init__(
        self,
        sample_rate: int = 22050,
        hop_lengths: Sequence[int] = (512, 256, 256),
        n_octaves: Sequence[int] = (9, 9, 9),
        bins_per_octave: Sequence[int] = (24, 36, 48),
        filters: int = 128,
        max_filters: int = 1024,
        filters_scale: int = 1,
        dilations: Sequence[int] = (1, 2, 4),
    ) -> None:
        super().__init__()
        if not len(hop_lengths) == len(n_octaves) == len(bins_per_octave) > 0:
            raise ValueError(
                "hop_lengths, n_octaves and bins_per_octave must be non-empty and of equal length; "
                f"got {list(hop_lengths)}, {list(n_octaves)}, {list(bins_per_octave)}."
            )
        self.discriminators = nn.ModuleList(
            DiscriminatorCQT(sample_rate, h, o, b, filters, max_filters, filters_scale, dilations)
            for h, o, b in zip(hop_lengths, n_octaves, bins_per_octave)
        )

    def forward(self, y: Tensor, y_hat: Tensor) -> DiscriminatorOutput:
        return _pair(self.discriminators, y, y_hat)


# ------------------------------------------------------------------------------------------------- losses


def discriminator_loss(real: list[Tensor], fake: list[Tensor]) -> Tensor:
    """LSGAN discriminator loss ``sum_d mean((1 - D(y))^2) + mean(D(y_hat)^2)``."""
    return sum(torch.mean((1 - r) ** 2) + torch.mean(g**2) for r, g in zip(real, fake))


def generator_loss(fake: list[Tensor]) -> Tensor:
    """LSGAN generator loss ``sum_d mean((1 - D(y_hat))^2)``."""
    return sum(torch.mean((1 - g) ** 2) for g in fake)


def feature_loss(fmap_real: list[list[Tensor]], fmap_fake: list[list[Tensor]]) -> Tensor:
    """Feature matching: ``sum_d sum_l mean|f_real - f_fake|`` (real maps detached)."""
    return sum(
        torch.mean(torch.abs(r.detach() - g)) for dr, dg in zip(fmap_real, fmap_fake) for r, g in zip(dr, dg)
    )
