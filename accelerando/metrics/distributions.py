"""Distances between two sets of samples, for toy problems (Gaussian mixtures, 2-D targets).

- :func:`sliced_wasserstein2` -- sliced 2-Wasserstein distance (Rabin et al., 2011; Bonneel et al.,
  2015) with seeded random projections.
- :func:`mmd2` -- unbiased squared maximum mean discrepancy (Gretton et al., JMLR 2012) with a
  mixture of RBF kernels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

# Bandwidths of the RBF mixture, as multiples of the median pairwise distance of the pooled sample.
MMD_BANDWIDTH_SCALES: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)


def _as_samples(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    t = torch.as_tensor(x).detach().double().cpu()
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2 or t.shape[0] < 2:
        raise ValueError(f"{name} must be samples of shape (N, D) or (N,) with N >= 2; got {tuple(t.shape)}")
    return t


def _quantiles(sorted_values: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Linear-interpolated quantiles of each column of ``sorted_values`` (N, P) at ``levels`` (L,)."""
    n = sorted_values.shape[0]
    pos = levels * (n - 1)
    lo = pos.floor().long().clamp(0, n - 1)
    hi = (lo + 1).clamp(max=n - 1)
    frac = (pos - lo.double())[:, None]
    return sorted_values[lo] * (1 - frac) + sorted_values[hi] * frac


def sliced_wasserstein2(
    x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray, n_projections: int = 256, seed: int = 0
) -> float:
    """Sliced 2-Wasserstein distance between samples ``x`` (N, D) and ``y`` (M, D).

    ``SW2 = sqrt( E_theta[ W2^2(theta.x, theta.y) ] )`` with ``theta`` uniform on the unit sphere,
    estimated with ``n_projections`` directions drawn from a ``torch.Generator`` seeded by ``seed``
    (same seed → same directions → comparable figures). Each 1-D W2 compares sorted projections;
    with N != M both are read at M+N evenly spaced quantile levels. In 1-D this is exactly W2; for
    two isotropic distributions differing by a shift ``d`` it is ``|d| / sqrt(D)``.
    """
    xs, ys = _as_samples(x, "x"), _as_samples(y, "y")
    if xs.shape[1] != ys.shape[1]:
        raise ValueError(f"x and y must have the same dimension; got {xs.shape[1]} and {ys.shape[1]}")
    dim = xs.shape[1]
    if dim == 1:
        theta = torch.ones(1, 1, dtype=torch.float64)
    else:
        gen = torch.Generator().manual_seed(seed)
        theta = torch.randn(dim, n_projections, generator=gen, dtype=torch.float64)
        theta = theta / theta.norm(dim=0, keepdim=True)
    px = torch.sort(xs @ theta, dim=0).values  # (N, P)
    py = torch.sort(ys @ theta, dim=0).values  # (M, P)
    if px.shape[0] != py.shape[0]:
        n = px.shape[0] + py.shape[0]
        levels = (torch.arange(n, dtype=torch.float64) + 0.5) / n
        px, py = _quantiles(px, levels), _quantiles(py, levels)
    return float(torch.sqrt(torch.mean((px - py) ** 2)))


def rbf_mixture_kernel(a: torch.Tensor, b: torch.Tensor, bandwidths: Sequence[float]) -> torch.Tensor:
    """``k(a, b) = mean_s exp(-||a - b||^2 / (2 s^2))`` over ``bandwidths`` s; ``(N, M)``."""
    d2 = torch.cdist(a, b).pow(2)
    return torch.stack([torch.exp(-d2 / (2.0 * s * s)) for s in bandwidths]).mean(0)


def mmd2(
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    bandwidths: Sequence[float] | None = None,
) -> float:
    """Unbiased squared MMD between samples ``x`` (N, D) and ``y`` (M, D) (Gretton et al. 2012, eq. 3).

    ``MMD^2_u = mean_{i!=j} k(x_i,x_j) + mean_{i!=j} k(y_i,y_j) - 2 mean_{i,j} k(x_i,y_j)`` with
    :func:`rbf_mixture_kernel`. ``bandwidths`` default to :data:`MMD_BANDWIDTH_SCALES`
    (0.25, 0.5, 1, 2, 4) times the median pairwise distance of the pooled sample (the median
    heuristic, widened so one scale fits both near and far structure). The unbiased estimate can
    be slightly negative when the distributions match.
    """
    xs, ys = _as_samples(x, "x"), _as_samples(y, "y")
    if xs.shape[1] != ys.shape[1]:
        raise ValueError(f"x and y must have the same dimension; got {xs.shape[1]} and {ys.shape[1]}")
    if bandwidths is None:
        pooled = torch.cat([xs, ys])
        dists = torch.pdist(pooled)
        median = float(dists.median()) if dists.numel() else 1.0
        median = median if median > 0 else 1.0
        bandwidths = [scale * median for scale in MMD_BANDWIDTH_SCALES]
    if any(s <= 0 for s in bandwidths):
        raise ValueError(f"bandwidths must be positive; got {list(bandwidths)}")
    n, m = xs.shape[0], ys.shape[0]
    kxx = rbf_mixture_kernel(xs, xs, bandwidths)
    kyy = rbf_mixture_kernel(ys, ys, bandwidths)
    kxy = rbf_mixture_kernel(xs, ys, bandwidths)
    term_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    term_y = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    value = float(term_x + term_y - 2.0 * kxy.mean())
    return value if math.isfinite(value) else math.nan
