"""RBJ-cookbook biquad filters (the formulas torchaudio's ``*_biquad`` use), on tensors of any length.

- :func:`biquad_coefficients`: ``(b, a)`` of a high- or low-pass biquad, ``a[0] = 1``;
- :func:`biquad`: the filter applied along the last axis with zero initial state (an exact IIR recursion,
  not a truncated FIR), optionally clamped to ``[-1, 1]`` as torchaudio's ``lfilter`` does by default.

A bilinear-transform low-pass biquad has a double zero at the Nyquist frequency and a high-pass one a
double zero at DC, so :func:`biquad` removes a constant offset or a ``(-1)^n`` line exactly; FreGrad uses
that to clean its sub-bands (``remove_cutoff_alias``).

Example::

    import torch
    from accelerando.audio.filters import biquad

    x = torch.ones(1, 1000)
    y = biquad(x, "highpass", cutoff=5.0, sample_rate=11025)  # the offset decays to ~0
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.signal import lfilter
from torch import Tensor

__all__ = ["biquad", "biquad_coefficients"]

KINDS = ("highpass", "lowpass")


def biquad_coefficients(
    kind: str, cutoff: float, sample_rate: float, q: float = 0.707
) -> tuple[list[float], list[float]]:
    """RBJ cookbook biquad ``(b, a)`` normalised so that ``a[0] = 1``.

    Args:
        kind: ``"highpass"`` or ``"lowpass"``.
        cutoff: cutoff in Hz, in ``(0, sample_rate / 2)``.
        sample_rate: the rate the filter runs at.
        q: quality factor (0.707: Butterworth).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    if not 0 < cutoff < sample_rate / 2:
        raise ValueError(f"cutoff must lie in (0, sample_rate / 2 = {sample_rate / 2}); got {cutoff}")
    w0 = 2 * math.pi * cutoff / sample_rate
    alpha = math.sin(w0) / (2 * q)
    cos_w0 = math.cos(w0)
    if kind == "highpass":
        b = [(1 + cos_w0) / 2, -(1 + cos_w0), (1 + cos_w0) / 2]
    else:
        b = [(1 - cos_w0) / 2, 1 - cos_w0, (1 - cos_w0) / 2]
    a0 = 1 + alpha
    return [x / a0 for x in b], [1.0, -2 * cos_w0 / a0, (1 - alpha) / a0]


def biquad(
    x: Tensor, kind: str, cutoff: float, sample_rate: float, q: float = 0.707, clamp: bool = False
) -> Tensor:
    """Filter ``x (..., T)`` along its last axis with a zero-state biquad; same shape, dtype and device.

    Runs in float64 through :func:`scipy.signal.lfilter` (no autograd: a post-filter, not a layer).
    """
    b, a = biquad_coefficients(kind, cutoff, sample_rate, q)
    data = x.detach().to("cpu", torch.float64).numpy()
    out = torch.from_numpy(np.ascontiguousarray(lfilter(b, a, data, axis=-1)))
    if clamp:
        out = out.clamp(-1.0, 1.0)
    return out.to(device=x.device, dtype=x.dtype)
