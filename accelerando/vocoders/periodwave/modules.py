"""Layers of PeriodWave's period-aware estimator (Lee, Choi, Lee, arXiv 2408.07547, ICLR 2025).

- :func:`period_reshape` / :func:`period_unreshape`: ``(B, C, T) <-> (B, C, T' / p, p)`` with reflect padding
  to a multiple of ``multiple * p`` (the U-Net's total downsampling times the period);
- :class:`ConvNeXtV2Block` (Woo et al., CVPR 2023; 1D as in Vocos) and :class:`MelEncoder`, which turns the
  mel (+ the prior's std track) into one conditioning map per period, once per utterance;
- :class:`PeriodUNet`: the one 2D U-Net shared by every period (down strides 1, 4, 4, a mid block of stride 4
  where the mel is added, a mirrored up path);
- :class:`TimePeriodEmbedding`: the sinusoidal time embedding joined with a learned period embedding -> MLP;
- :class:`FinalBlock`: three dilated 1D residual blocks and a k7 conv to one channel.

Convolutions are weight-normalised as in the reference code (its parameter counts include the norms' ``g``).

Upsampling (the U-Net's up path and the mel encoder's x4) is the paper's transposed convolution by default
(``upsample_mode="transposed"``). A stride-``s`` transposed conv with a ``2s`` kernel makes every output depend
on its position modulo ``s`` (a checkerboard), which an undertrained model turns into lines at multiples of
``fs / s`` (fs/4 at period 1). ``upsample_mode="resize"`` repeats each row ``s`` times and then convolves
(kernel ``2s + 1``), so a constant input gives a constant output at every position (Odena et al., 2016).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

__all__ = [
    "UPSAMPLE_MODES",
    "ConvNeXtV2Block",
    "FinalBlock",
    "MelEncoder",
    "PeriodUNet",
    "TimePeriodEmbedding",
    "period_reshape",
    "period_unreshape",
]


UPSAMPLE_MODES = ("transposed", "resize")


def _pad(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


def conv_rows(conv: nn.Module, x: Tensor) -> Tensor:
    """Apply a ``(k, 1)``-kernel ``Conv2d`` / ``ConvTranspose2d`` to ``(N, C, rows)``: the period columns folded into N.

    A ``(k, 1)`` kernel never mixes the columns of ``(B, C, rows, p)``, so running each column as a 1D signal is
    the same computation with the same weights; oneDNN's 1D kernels are faster on a CPU, and the bias, stride,
    padding and dilation are the layer's own.
    """
    weight = conv.weight[..., 0]  # (C_out, C_in, k) or, transposed, (C_in, C_out, k)
    if isinstance(conv, nn.ConvTranspose2d):
        return F.conv_transpose1d(
            x, weight, conv.bias, conv.stride[0], conv.padding[0], conv.output_padding[0], conv.groups,
            conv.dilation[0],
        )  # fmt: skip
    return F.conv1d(x, weight, conv.bias, conv.stride[0], conv.padding[0], conv.dilation[0], conv.groups)


def _check_upsample_mode(mode: str) -> None:
    if mode not in UPSAMPLE_MODES:
        raise ValueError(f"upsample_mode must be one of {UPSAMPLE_MODES}; got {mode!r}.")


class ResizeConv(nn.Module):
    """Nearest-neighbour repeat by ``stride`` along dim 2, then a ``2 stride + 1`` conv (1D or ``(k, 1)`` 2D)."""

    def __init__(self, c_in: int, c_out: int, stride: int, dims: int, bias: bool = True) -> None:
        super().__init__()
        self.stride = stride
        k = 2 * stride + 1
        if dims == 1:
            conv: nn.Module = nn.Conv1d(c_in, c_out, k, padding=k // 2, bias=bias)
        else:
            conv = nn.Conv2d(c_in, c_out, (k, 1), padding=(k // 2, 0), bias=bias)
        self.conv = weight_norm(conv)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, L) -> (B, C_out, L * stride); 2D weights act on rows
        x = x.repeat_interleave(self.stride, dim=2)
        return self.conv(x) if isinstance(self.conv, nn.Conv1d) else conv_rows(self.conv, x)


def period_reshape(x: Tensor, period: int, multiple: int = 1) -> Tensor:
    """``(B, C, T) -> (B, C, T' / period, period)``, reflect-padding ``T`` up to ``T'``, a multiple of ``multiple * period``.

    The reflect padding needs ``T' - T < T``; callers check lengths first (``PeriodWave.min_frames``).
    """
    b, c, t = x.shape
    n_pad = -t % (multiple * period)
    if n_pad:
        x = F.pad(x, (0, n_pad), mode="reflect")
    return x.reshape(b, c, (t + n_pad) // period, period)


def period_unreshape(x: Tensor, length: int) -> Tensor:
    """Inverse of :func:`period_reshape`: ``(B, C, T' / p, p) -> (B, C, length)``, dropping the padding."""
    b, c, rows, period = x.shape
    return x.reshape(b, c, rows * period)[..., :length]


class ConvNeXtV2Block(nn.Module):
    """ConvNeXt-V2 block on ``(B, C, L)``: depthwise k7 conv, LayerNorm, MLP with GELU and GRN, residual."""

    def __init__(self, dim: int, intermediate_dim: int, drop_path: float = 0.0) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.grn_gamma = nn.Parameter(torch.zeros(1, 1, intermediate_dim))
        self.grn_beta = nn.Parameter(torch.zeros(1, 1, intermediate_dim))
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.drop_path = drop_path

    def forward(self, x: Tensor) -> Tensor:  # (B, C, L) -> (B, C, L)
        h = self.norm(self.dwconv(x).transpose(1, 2))  # (B, L, C)
        h = F.gelu(self.pwconv1(h))  # (B, L, I)
        # Global response normalisation: each channel's L2 norm over time, relative to the channel mean.
        gx = torch.linalg.vector_norm(h, dim=1, keepdim=True)  # (B, 1, I)
        h = h + self.grn_gamma * (h * (gx / (gx.mean(dim=-1, keepdim=True) + 1e-6))) + self.grn_beta
        h = self.pwconv2(h).transpose(1, 2)  # (B, C, L)
        if self.training and self.drop_path > 0:  # stochastic depth, per sample
            keep = 1.0 - self.drop_path
            h = h * x.new_empty(x.shape[0], 1, 1).bernoulli_(keep) / keep
        return x + h


class MelEncoder(nn.Module):
    """Mel (+ std track) ``(B, n_mels + 1, F)`` -> one map ``(B, hidden, rows_p, 1)`` per period.

    Conv1d k7 to ``hidden``, ``num_blocks`` ConvNeXt-V2 blocks with a long residual, x4 transposed conv to
    ``hidden / 2``, ``num_up_blocks`` more blocks, then per period a Conv2d of kernel ``2p`` and stride ``p``
    over the x4 time axis, so that ``rows_p >= ceil(4 F / p)`` matches the U-Net's mid resolution.
    """

    def __init__(
        self,
        in_channels: int,
        hidden: int,
        periods: Sequence[int],
        num_blocks: int = 8,
        num_up_blocks: int = 4,
        drop_path: float = 0.0,
        upsample_mode: str = "transposed",
    ) -> None:
        super().__init__()
        _check_upsample_mode(upsample_mode)
        self.periods = tuple(periods)
        self.embed = nn.Conv1d(in_channels, hidden, 7, padding=3)
        self.blocks = nn.ModuleList(ConvNeXtV2Block(hidden, 3 * hidden, drop_path) for _ in range(num_blocks))
        if upsample_mode == "resize":
            self.up: nn.Module = ResizeConv(hidden, hidden // 2, 4, dims=1)
        else:
            self.up = weight_norm(nn.ConvTranspose1d(hidden, hidden // 2, 8, 4, padding=2))
        self.up_blocks = nn.ModuleList(
            ConvNeXtV2Block(hidden // 2, 2 * hidden, drop_path) for _ in range(num_up_blocks)
        )
        self.period_convs = nn.ModuleList(
            weight_norm(nn.Conv2d(hidden // 2, hidden, (2 * p, 1), (p, 1), padding=(_pad(2 * p), 0)))
            for p in self.periods
        )

    def forward(self, mel: Tensor) -> list[Tensor]:
        x = self.embed(mel)  # (B, hidden, F)
        h = x
        for block in self.blocks:
            h = block(h)
        x = self.up(F.silu(h + x))  # (B, hidden / 2, 4 F)
        for block in self.up_blocks:
            x = block(x)
        x = F.silu(x).unsqueeze(-1)  # (B, hidden / 2, 4 F, 1)
        conds = []
        for p, conv in zip(self.periods, self.period_convs):
            # The reference always pads (p - L % p) rows, also when L is a multiple of p; so do we.
            padded = F.pad(x, (0, 0, 0, p - x.shape[2] % p), mode="reflect")
            conds.append(conv(padded))  # (B, hidden, rows_p, 1)
        return conds


class ResBlock2d(nn.Module):
    """SiLU -> conv (k, 1) dilated -> SiLU -> conv (k, 1), residual; along the rows of ``(B p, C, rows)``."""

    def __init__(self, channels: int, dilation: int, kernel_size: int = 3) -> None:
        super().__init__()
        k = (kernel_size, 1)
        self.conv1 = weight_norm(
            nn.Conv2d(channels, channels, k, dilation=(dilation, 1), padding=(_pad(kernel_size, dilation), 0))
        )
        self.conv2 = weight_norm(nn.Conv2d(channels, channels, k, padding=(_pad(kernel_size), 0)))

    def forward(self, x: Tensor) -> Tensor:
        return x + conv_rows(self.conv2, F.silu(conv_rows(self.conv1, F.silu(x))))


class ResBlock1d(nn.Module):
    """The 1D version of :class:`ResBlock2d` on ``(B, C, T)``."""

    def __init__(self, channels: int, dilation: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv1 = weight_norm(
            nn.Conv1d(channels, channels, kernel_size, dilation=dilation, padding=_pad(kernel_size, dilation))
        )
        self.conv2 = weight_norm(nn.Conv1d(channels, channels, kernel_size, padding=_pad(kernel_size)))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class DownBlock(nn.Module):
    """[SiLU] -> strided conv (k, 1) -> + time MLP -> ResBlocks (dilations 1, 2)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, emb_dim: int, act: bool) -> None:
        super().__init__()
        self.act = act
        self.conv = weight_norm(
            nn.Conv2d(c_in, c_out, (kernel_size, 1), (stride, 1), padding=(_pad(kernel_size), 0), bias=False)
        )
        self.emb = nn.Linear(emb_dim, c_out)
        self.res = nn.Sequential(ResBlock2d(c_out, 1), ResBlock2d(c_out, 2))

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:  # x (B p, C, rows), emb (B p, emb_dim)
        x = conv_rows(self.conv, F.silu(x) if self.act else x)
        return self.res(x + self.emb(F.silu(emb))[:, :, None])


class MidBlock(nn.Module):
    """SiLU -> strided conv (k, 1) -> + the period's mel map (broadcast over the period axis) -> ResBlocks."""

    def __init__(
        self, c_in: int, c_out: int, kernel_size: int, stride: int, dilations: Sequence[int]
    ) -> None:
        super().__init__()
        self.conv = weight_norm(
            nn.Conv2d(c_in, c_out, (kernel_size, 1), (stride, 1), padding=(_pad(kernel_size), 0), bias=False)
        )
        self.res = nn.Sequential(*(ResBlock2d(c_out, d) for d in dilations))

    def forward(self, x: Tensor, mel_cond: Tensor) -> Tensor:  # mel_cond (B p, C, rows_p)
        x = conv_rows(self.conv, F.silu(x))  # (B p, C, rows)
        return self.res(x + mel_cond[:, :, : x.shape[2]])


class UpBlock(nn.Module):
    """SiLU -> upsampling by s (transposed conv (2s, 1), or resize + conv) -> + skip + time MLP -> ResBlocks."""

    def __init__(
        self, c_in: int, c_out: int, stride: int, emb_dim: int, upsample_mode: str = "transposed"
    ) -> None:
        super().__init__()
        _check_upsample_mode(upsample_mode)
        if upsample_mode == "resize":
            self.conv: nn.Module = ResizeConv(c_in, c_out, stride, dims=2, bias=False)
        else:
            self.conv = weight_norm(
                nn.ConvTranspose2d(
                    c_in, c_out, (2 * stride, 1), (stride, 1), padding=(stride // 2, 0), bias=False
                )
            )
        self.emb = nn.Linear(emb_dim, c_out)
        self.res = nn.Sequential(ResBlock2d(c_out, 1), ResBlock2d(c_out, 2))

    def forward(self, x: Tensor, skip: Tensor, emb: Tensor) -> Tensor:
        x = F.silu(x)
        x = self.conv(x) if isinstance(self.conv, ResizeConv) else conv_rows(self.conv, x)
        return self.res(x + skip + self.emb(F.silu(emb))[:, :, None])


class PeriodUNet(nn.Module):
    """The U-Net shared by all periods: ``(B, 1, T)`` at one period -> ``(B, hidden / 16, T)``.

    Channels ``hidden / 16, / 8, / 4`` on the down path (strides 1, ``stride``, ``stride``), ``hidden`` in the
    mid block (stride ``stride``), mirrored on the way up. Time is padded to a multiple of ``stride**3 * p``.
    """

    def __init__(
        self,
        hidden: int,
        kernel_size: int = 9,
        stride: int = 4,
        mid_dilations: Sequence[int] = (1, 2, 4),
        upsample_mode: str = "transposed",
    ):
        super().__init__()
        c1, c2, c3 = hidden // 16, hidden // 8, hidden // 4
        self.multiple = stride**3
        self.downs = nn.ModuleList(
            [
                DownBlock(1, c1, 1, 1, hidden, act=False),
                DownBlock(c1, c2, kernel_size, stride, hidden, act=True),
                DownBlock(c2, c3, kernel_size, stride, hidden, act=True),
            ]
        )
        self.mid = MidBlock(c3, hidden, kernel_size, stride, mid_dilations)
        self.ups = nn.ModuleList(
            [
                UpBlock(hidden, c3, stride, hidden, upsample_mode),
                UpBlock(c3, c2, stride, hidden, upsample_mode),
                UpBlock(c2, c1, stride, hidden, upsample_mode),
            ]
        )

    def forward(self, x: Tensor, period: int, emb: Tensor, mel_cond: Tensor) -> Tensor:
        length = x.shape[-1]
        b, _, rows, p = (h := period_reshape(x, period, self.multiple)).shape  # (B, 1, T' / p, p)
        h = h.permute(0, 3, 1, 2).reshape(b * p, 1, rows)  # each period column is a 1D signal
        emb = emb.repeat_interleave(p, dim=0)  # (B p, hidden)
        mel_cond = mel_cond[..., 0].repeat_interleave(p, dim=0)  # (B p, hidden, rows_p)
        skips = []
        for down in self.downs:
            h = down(h, emb)
            skips.append(h)
        h = self.mid(h, mel_cond)  # (B p, hidden, T' / (p stride^3))
        for up in self.ups:
            h = up(h, skips.pop(), emb)
        h = h.reshape(b, p, h.shape[1], rows).permute(0, 2, 3, 1)  # (B, hidden / 16, T' / p, p)
        return period_unreshape(h, length)  # (B, hidden / 16, T)


class TimePeriodEmbedding(nn.Module):
    """``t (B,)`` in [0, 1] -> ``(B, num_periods, hidden)``: [sin/cos(1000 t), period embedding] -> MLP.

    As in the reference code the period embedding (``hidden / 2`` wide, init std ``(hidden / 2)^-1/2``) is
    scaled by ``sqrt(hidden)`` before it joins the ``hidden / 2`` sinusoidal features.
    """

    def __init__(self, hidden: int, num_periods: int) -> None:
        super().__init__()
        self.hidden = hidden
        half = hidden // 2
        freqs = torch.exp(torch.arange(half // 2, dtype=torch.float32) * -(math.log(10000) / (half // 2 - 1)))
        self.register_buffer("freqs", freqs, persistent=False)
        self.period_emb = nn.Embedding(num_periods, half)
        nn.init.normal_(self.period_emb.weight, 0.0, half**-0.5)
        self.mlp = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.SiLU(), nn.Linear(4 * hidden, hidden))

    def forward(self, t: Tensor) -> Tensor:
        arg = 1000.0 * t.float()[:, None] * self.freqs[None]  # (B, half / 2)
        t_emb = torch.cat([arg.sin(), arg.cos()], dim=-1).to(self.period_emb.weight.dtype)  # (B, half)
        p_emb = self.period_emb.weight * math.sqrt(self.hidden)  # (P, half)
        b, n = t_emb.shape[0], p_emb.shape[0]
        joined = torch.cat([t_emb[:, None].expand(b, n, -1), p_emb[None].expand(b, n, -1)], dim=-1)
        return self.mlp(joined)  # (B, P, hidden)


class FinalBlock(nn.Module):
    """``(B, C, T) -> (B, 1, T)``: ResBlock1d per dilation, SiLU, conv k7 (no bias)."""

    def __init__(self, channels: int, dilations: Sequence[int] = (1, 2, 4)) -> None:
        super().__init__()
        self.res = nn.Sequential(*(ResBlock1d(channels, d) for d in dilations))
        self.out = weight_norm(nn.Conv1d(channels, 1, 7, padding=3, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.out(F.silu(self.res(x)))
