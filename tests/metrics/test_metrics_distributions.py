"""Sliced Wasserstein-2 and MMD on Gaussians with analytic answers."""

from __future__ import annotations

import math

import pytest
import torch

from accelerando.metrics import mmd2, sliced_wasserstein2


def _gauss(n: int, dim: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + shift


def test_same_distribution_is_close_and_a_shift_is_measured_exactly_in_1d():
    x, y = _gauss(4000, 1, 0), _gauss(4000, 1, 1)
    assert sliced_wasserstein2(x, y) < 0.05
    assert sliced_wasserstein2(x, y + 1.5) == pytest.approx(1.5, abs=0.05)
    assert sliced_wasserstein2(x[:, 0].numpy(), (y + 1.5)[:, 0].numpy()) == pytest.approx(1.5, abs=0.05)


def test_isotropic_shift_gives_norm_over_sqrt_dim():
    dim = 4
    x, y = _gauss(3000, dim, 0), _gauss(3000, dim, 1)
    d = torch.tensor([1.0, -1.0, 2.0, 0.0], dtype=torch.float64)
    expected = float(d.norm()) / math.sqrt(dim)
    assert sliced_wasserstein2(x, y + d, n_projections=512) == pytest.approx(expected, rel=0.1)


def test_projections_are_seeded_and_unequal_sizes_work():
    x, y = _gauss(500, 3, 0), _gauss(300, 3, 1, shift=0.5)
    assert sliced_wasserstein2(x, y, seed=3) == sliced_wasserstein2(x, y, seed=3)
    assert sliced_wasserstein2(x, y) > sliced_wasserstein2(x, _gauss(300, 3, 2))


def test_mmd_is_near_zero_for_the_same_distribution_and_grows_with_shift():
    x, y = _gauss(400, 2, 0), _gauss(400, 2, 1)
    same = mmd2(x, y)
    near, far = mmd2(x, y + 0.5), mmd2(x, y + 2.0)
    assert abs(same) < 0.01
    assert same < near < far
    assert mmd2(x, y, bandwidths=[1.0]) == pytest.approx(mmd2(x, y, bandwidths=(1.0,)))


def test_distribution_errors_name_the_problem():
    with pytest.raises(ValueError, match="same dimension"):
        sliced_wasserstein2(_gauss(10, 2, 0), _gauss(10, 3, 0))
    with pytest.raises(ValueError, match="bandwidths must be positive"):
        mmd2(_gauss(10, 2, 0), _gauss(10, 2, 1), bandwidths=[0.0])
