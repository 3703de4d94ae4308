"""Flow samplers against the exact ODE solution of a Gaussian target, schedules, and the MelDiT wrapper."""

from __future__ import annotations

import pytest
import torch

from accelerando.generation import (
    NULL_LABEL,
    flow_model_wrapper,
    get_sigmas_shifted,
    get_sigmas_uniform,
    sample_euler,
    sample_heun,
    sample_midpoint,
    sample_rf_solver,
)

# Data x0 ~ N(MU, S^2) per dimension, noise ~ N(0, 1), x_sigma = (1 - sigma) x0 + sigma noise. The marginal of
# x_sigma is N(m, sd^2) with m = (1 - sigma) MU and sd^2 = (1 - sigma)^2 S^2 + sigma^2; the rectified-flow
# velocity E[noise - x0 | x_sigma] is affine in x and its ODE is the quantile map: x(0) = MU + S * x(1).
MU = torch.tensor([1.5, -0.5, 0.0], dtype=torch.float64)
S = torch.tensor([0.3, 2.0, 1.0], dtype=torch.float64)


def gaussian_velocity(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Exact rectified-flow velocity for the Gaussian target; ``x`` (B, 3), ``sigma`` (B,)."""
    s = sigma[:, None]
    mean = (1 - s) * MU
    var = (1 - s) ** 2 * S**2 + s**2
    return -MU + (s - (1 - s) * S**2) / var * (x - mean)


def _error(sampler, n: int, sigmas_fn=get_sigmas_uniform) -> float:
    x1 = torch.randn(64, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x0 = sampler(gaussian_velocity, x1.clone(), sigmas_fn(n).double(), disable=True)
    return (x0 - (MU + S * x1)).abs().max().item()


@pytest.mark.parametrize(
    ("sampler", "min_ratio"),
    [(sample_euler, 1.7), (sample_heun, 3.0), (sample_midpoint, 3.0), (sample_rf_solver, 3.0)],
)
def test_convergence_order(sampler, min_ratio):
    errors = [_error(sampler, n) for n in (8, 16, 32, 64)]
    ratios = [a / b for a, b in zip(errors, errors[1:])]
    assert all(r >= min_ratio for r in ratios), (errors, ratios)
    assert errors[-1] < (0.2 if sampler is sample_euler else 2e-3)


@pytest.mark.parametrize("sampler", [sample_euler, sample_heun, sample_midpoint])
def test_convergence_on_shifted_schedule(sampler):
    errors = [_error(sampler, n, lambda k: get_sigmas_shifted(k, shift=3.0)) for n in (16, 32)]
    assert errors[0] / errors[1] >= (1.7 if sampler is sample_euler else 3.0)


def mixture_velocity(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Exact velocity for a 1-D two-Gaussian mixture (weights .3/.7): responsibilities times per-component velocities."""
    mus = torch.tensor([-2.0, 1.0], dtype=x.dtype)
    ss = torch.tensor([0.4, 0.8], dtype=x.dtype)
    logw = torch.log(torch.tensor([0.3, 0.7], dtype=x.dtype))
    s = sigma[:, None]  # (B, 1); x is (B, 1), components on the last axis
    mean, var = (1 - s) * mus, (1 - s) ** 2 * ss**2 + s**2  # (B, 2)
    log_p = logw - 0.5 * (x - mean) ** 2 / var - 0.5 * torch.log(var)
    resp = torch.softmax(log_p, dim=-1)
    v_k = -mus + (s - (1 - s) * ss**2) / var * (x - mean)
    return (resp * v_k).sum(-1, keepdim=True)


@pytest.mark.parametrize(
    ("sampler", "min_ratio"), [(sample_euler, 1.7), (sample_heun, 3.0), (sample_midpoint, 3.0)]
)
def test_convergence_order_on_gaussian_mixture(sampler, min_ratio):
    """Against a 4096-step midpoint reference solution (its error is far below the ones compared here)."""
    x1 = torch.linspace(-2.5, 2.5, 33, dtype=torch.float64)[:, None]
    ref = sample_midpoint(mixture_velocity, x1, get_sigmas_uniform(4096).double(), disable=True)
    errors = [
        (sampler(mixture_velocity, x1, get_sigmas_uniform(n).double(), disable=True) - ref).abs().max().item()
        for n in (32, 64, 128)
    ]
    assert all(a / b >= min_ratio for a, b in zip(errors, errors[1:])), errors


def test_rf_solver_is_the_midpoint_method():
    x = torch.randn(8, 3, dtype=torch.float64)
    sigmas = get_sigmas_shifted(6).double()
    torch.testing.assert_close(
        sample_rf_solver(gaussian_velocity, x, sigmas), sample_midpoint(gaussian_velocity, x, sigmas)
    )


def test_rf_solver_inversion_round_trip():
    """Running the solver on the reversed schedule inverts sampling (to second order)."""
    x1 = torch.randn(16, 3, dtype=torch.float64)
    sigmas = get_sigmas_uniform(64).double()
    x0 = sample_rf_solver(gaussian_velocity, x1, sigmas, disable=True)
    back = sample_rf_solver(gaussian_velocity, x0, sigmas.flip(0), disable=True)
    torch.testing.assert_close(back, x1, rtol=0, atol=1e-3)


def test_schedules():
    u = get_sigmas_uniform(4)
    torch.testing.assert_close(u, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))
    u2 = get_sigmas_uniform(3, sigma_max=0.8, sigma_min=0.2)
    assert len(u2) == 4 and u2[-1] == 0 and u2[0] == pytest.approx(0.8) and u2[-2] == pytest.approx(0.2)
    shifted = get_sigmas_shifted(4, shift=3.0)
    assert len(shifted) == 5 and shifted[0] == 1 and shifted[-1] == 0
    assert shifted[2] == pytest.approx(3 * 0.5 / (1 + 2 * 0.5))
    assert torch.all(shifted[1:-1] > u[1:-1])  # a shift > 1 spends more steps at high noise
    torch.testing.assert_close(get_sigmas_shifted(4, shift=1.0), u)
    with pytest.raises(ValueError, match="at least 1, got 0"):
        get_sigmas_uniform(0)
    with pytest.raises(ValueError, match="sigma_max=1.5"):
        get_sigmas_uniform(4, sigma_max=1.5)


def test_callback_and_extra_args():
    seen = []

    def model(x, sigma, scale=1.0):
        return scale * gaussian_velocity(x, sigma)

    x = torch.randn(4, 3, dtype=torch.float64)
    sigmas = get_sigmas_uniform(3).double()
    out = sample_euler(model, x, sigmas, extra_args={"scale": 0.0}, callback=seen.append, disable=True)
    torch.testing.assert_close(out, x)  # zero velocity
    assert [d["i"] for d in seen] == [0, 1, 2] and set(seen[0]) >= {"x", "sigma", "sigma_next", "denoised"}


def test_wrapper_cfg(random_model):
    x = torch.randn(2, 1, 16, 16)
    sigma = torch.full((2,), 0.5)
    labels = {"program": [1, 2], "pitch": [60, 62], "velocity": [90, 90]}
    cond = flow_model_wrapper(random_model, **labels)(x, sigma)
    ref = random_model(x, torch.full((2,), 500.0), *(torch.tensor(v) for v in labels.values())).sample
    torch.testing.assert_close(cond, ref)
    null = [[NULL_LABEL] * 2] * 3
    uncond = flow_model_wrapper(random_model, *null)(x, sigma)
    guided = flow_model_wrapper(random_model, **labels, guidance_scale=4.0)(x, sigma)
    torch.testing.assert_close(guided, uncond + 4.0 * (cond - uncond), rtol=1e-4, atol=1e-5)
    out = sample_heun(
        flow_model_wrapper(random_model, **labels, guidance_scale=2.0), x, get_sigmas_shifted(3), disable=True
    )
    assert out.shape == x.shape and torch.isfinite(out).all()
