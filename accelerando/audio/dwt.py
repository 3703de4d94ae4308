"""One-level orthonormal Haar wavelet transform over time (FreGrad's signal and feature split).

``low[k] = (x[2k] + x[2k+1]) / sqrt(2)`` and ``high[k] = (x[2k] - x[2k+1]) / sqrt(2)``. The
transform is orthonormal, so it preserves energy and its inverse is its transpose. Pure torch,
vectorised over time, any device and floating dtype, differentiable.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

_INV_SQRT2 = 1.0 / math.sqrt(2.0)


def dwt_haar(x: Tensor) -> Tensor:
    """Haar analysis: ``(B, C, T) -> (B, 2C, ceil(T / 2))`` with channels ``[low (C), high (C)]``.

    An odd ``T`` is zero-padded by one sample at the end (energy is still preserved); pass
    ``length=T`` to :func:`idwt_haar` to get the original length back.
    """
    if x.dim() != 3:
        raise ValueError(f"dwt_haar expects a tensor of shape (B, C, T); got shape {tuple(x.shape)}")
    if x.shape[-1] % 2:
        x = nn.functional.pad(x, (0, 1))  # (B, C, T + 1)
    even, odd = x[..., 0::2], x[..., 1::2]  # (B, C, T2) each
    return torch.cat([(even + odd) * _INV_SQRT2, (even - odd) * _INV_SQRT2], dim=1)  # (B, 2C, T2)


def idwt_haar(y: Tensor, length: int | None = None) -> Tensor:
    """Haar synthesis, the exact inverse of :func:`dwt_haar`: ``(B, 2C, T2) -> (B, C, length or 2*T2)``.

    Args:
        y: ``(B, 2C, T2)`` with channels ``[low (C), high (C)]``.
        length: output length, ``1 <= length <= 2 * T2`` (use the original ``T`` for odd inputs).
    """
    if y.dim() != 3 or y.shape[1] % 2:
        raise ValueError(
            f"idwt_haar expects a tensor of shape (B, 2C, T2) with an even channel count; got {tuple(y.shape)}"
        )
    batch, channels2, half = y.shape
    full = 2 * half
    if length is not None and not 1 <= length <= full:
        raise ValueError(f"idwt_haar length must be between 1 and 2 * T2 = {full}; got {length}")
    low, high = y.chunk(2, dim=1)  # (B, C, T2) each
    even, odd = (low + high) * _INV_SQRT2, (low - high) * _INV_SQRT2
    x = torch.stack([even, odd], dim=-1).reshape(batch, channels2 // 2, full)  # (B, C, 2*T2), interleaved
    return x if length is None else x[..., :length]
