"""k-diffusion-shaped samplers for flow (velocity) models, and their noise-level schedules.

Every sampler has the signature ``sample_x(model, x, sigmas, extra_args=None, callback=None, disable=None)``
of k-diffusion's ``sampling.py``, but ``model(x, sigma * s_in, **extra_args)`` returns the **velocity** of a
rectified flow, not a denoised sample:

- ``sigma`` in [0, 1] is the noise level and ``x_sigma = (1 - sigma) * x0 + sigma * noise``;
- the model predicts ``v = noise - x0``, so the probability-flow ODE is simply ``dx/dsigma = v(x, sigma)``;
- ``sigmas`` is a decreasing schedule from ``sigma_max`` (usually 1) to 0 (a ``get_sigmas_*`` function),
  and ``x`` starts as ``noise * sigmas[0]`` plus ``(1 - sigmas[0]) * x0`` (pure noise when ``sigmas[0] = 1``).

A core module (no model imports): the vocoders (PeriodWave) and the note model's pipeline both sample
with it; :func:`accelerando.generation.sampling.flow_model_wrapper` adapts a ``MelDiT`` (timestep
``sigma * 1000``, labels, classifier-free guidance) to this signature. The callback receives ``{"x", "i", "sigma", "sigma_next", "velocity", "denoised"}`` where
``denoised = x - sigma * v`` is the current estimate of ``x0``.

Example::

    from accelerando.generation import MelDiT, flow_model_wrapper
    from accelerando.samplers import get_sigmas_shifted, sample_heun

    model = MelDiT.from_preset("small").eval()
    fn = flow_model_wrapper(model, program=[40], pitch=[67], velocity=[90], guidance_scale=3.0)
    sigmas = get_sigmas_shifted(12, shift=3.0)
    x = sample_heun(fn, torch.randn(1, 1, 80, 128), sigmas)  # model-space mel
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import trange

__all__ = [
    "get_sigmas_shifted",
    "get_sigmas_uniform",
    "sample_euler",
    "sample_fireflow",
    "sample_heun",
    "sample_midpoint",
    "sample_rf_solver",
]

FlowModel = Callable[..., torch.Tensor]


def get_sigmas_uniform(
    n: int, sigma_max: float = 1.0, sigma_min: float = 0.0, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """``n`` equal steps from ``sigma_max`` to ``sigma_min``, then 0: ``n + 1`` values (one step if ``sigma_min`` > 0 adds the jump to 0)."""
    if n < 1:
        raise ValueError(f"The number of steps must be at least 1, got {n}.")
    if not 0.0 <= sigma_min < sigma_max <= 1.0:
        raise ValueError(
            f"Need 0 <= sigma_min < sigma_max <= 1 for a flow, got sigma_min={sigma_min}, sigma_max={sigma_max}."
        )
    if sigma_min == 0.0:
        return torch.linspace(sigma_max, 0.0, n + 1, device=device)
    sigmas = torch.linspace(sigma_max, sigma_min, n, device=device)
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def get_sigmas_shifted(
    n: int,
    shift: float = 3.0,
    sigma_max: float = 1.0,
    sigma_min: float = 0.0,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """SD3's shifted schedule (Esser et al., arXiv 2403.03206): uniform sigmas mapped by ``s·σ / (1 + (s−1)·σ)``.

    ``shift > 1`` spends more steps at high noise; ``shift = 1`` is the uniform schedule. ``n + 1`` values.
    """
    if shift <= 0:
        raise ValueError(f"shift must be positive, got {shift}.")
    sigmas = get_sigmas_uniform(n, sigma_max, sigma_min, device)
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def _report(callback, x, i, sigma, sigma_next, v) -> None:
    if callback is not None:
        callback(
            {
                "x": x,
                "i": i,
                "sigma": sigma,
                "sigma_next": sigma_next,
                "velocity": v,
                "denoised": x - sigma * v,
            }
        )


@torch.no_grad()
def sample_euler(
    model: FlowModel,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict | None = None,
    callback=None,
    disable=None,
) -> torch.Tensor:
    """Euler's method on the flow ODE (first order, one evaluation per step)."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    for i in trange(len(sigmas) - 1, disable=disable):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        v = model(x, sigma * s_in, **extra_args)
        _report(callback, x, i, sigma, sigma_next, v)
        x = x + (sigma_next - sigma) * v
    return x


@torch.no_grad()
def sample_heun(
    model: FlowModel,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict | None = None,
    callback=None,
    disable=None,
) -> torch.Tensor:
    """Heun's method (explicit trapezoid, second order, two evaluations per step; Karras et al. 2022, Alg. 1).

    Unlike k-diffusion's denoiser version, the last step to sigma = 0 is also corrected: a flow's velocity
    is defined at sigma = 0.
    """
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    for i in trange(len(sigmas) - 1, disable=disable):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        dt = sigma_next - sigma
        v = model(x, sigma * s_in, **extra_args)
        _report(callback, x, i, sigma, sigma_next, v)
        x_euler = x + dt * v
        v_next = model(x_euler, sigma_next * s_in, **extra_args)
        x = x + dt * (v + v_next) / 2
    return x


@torch.no_grad()
def sample_midpoint(
    model: FlowModel,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict | None = None,
    callback=None,
    disable=None,
) -> torch.Tensor:
    """The explicit midpoint method (second-order Runge-Kutta, two evaluations per step)."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    for i in trange(len(sigmas) - 1, disable=disable):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        dt = sigma_next - sigma
        v = model(x, sigma * s_in, **extra_args)
        _report(callback, x, i, sigma, sigma_next, v)
        v_mid = model(x + dt / 2 * v, (sigma + dt / 2) * s_in, **extra_args)
        x = x + dt * v_mid
    return x


@torch.no_grad()
def sample_rf_solver(
    model: FlowModel,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict | None = None,
    callback=None,
    disable=None,
    order: int = 2,
) -> torch.Tensor:
    """RF-Solver (Wang et al., "Taming Rectified Flow for Inversion and Editing", arXiv 2411.04746).

    A Taylor expansion of the flow ODE in ``sigma`` whose velocity derivatives are finite differences of
    extra evaluations inside the step (``h = sigma_next - sigma``, ``v0 = v(x, sigma)``):

    - ``order=2`` (the paper's sampler, 2 evaluations per step): ``v_mid = v(x + h/2·v0, sigma + h/2)``,
      ``dv = (v_mid - v0) / (h/2)``, ``x_next = x + h·v0 + ½h²·dv``. Algebraically this is
      ``x + h·v_mid``, the explicit midpoint method.
    - ``order=3`` (3 evaluations per step): the third-order Taylor step ``x + h·v0 + h²/2·v' + h³/6·v''`` with
      ``v'`` and ``v''`` from the quadratic through the velocities at ``sigma``, ``sigma + h/2`` and
      ``sigma + h``, the last evaluated at Kutta's predictor ``x - h·v0 + 2h·v_mid``. Algebraically this is
      Kutta's third-order Runge-Kutta method (Simpson weights 1/6, 4/6, 1/6). The paper states the general
      order-n expansion; this derivative estimate is ours.

    Run it on an increasing schedule (``sigmas.flip(0)``) to invert (``rf_solver_invert``).
    """
    if order not in (2, 3):
        raise ValueError(f"RF-Solver order must be 2 or 3, got {order!r}.")
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    for i in trange(len(sigmas) - 1, disable=disable):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        h = sigma_next - sigma
        v = model(x, sigma * s_in, **extra_args)
        _report(callback, x, i, sigma, sigma_next, v)
        v_mid = model(x + h / 2 * v, (sigma + h / 2) * s_in, **extra_args)
        if order == 2:
            dv = (v_mid - v) / (h / 2)
            x = x + h * v + 0.5 * h**2 * dv
        else:
            v_end = model(x - h * v + 2 * h * v_mid, sigma_next * s_in, **extra_args)
            dv = (4 * v_mid - 3 * v - v_end) / h  # d v / d sigma at sigma, from the quadratic fit
            d2v = 4 * (v_end - 2 * v_mid + v) / h**2  # second derivative
            x = x + h * v + h**2 / 2 * dv + h**3 / 6 * d2v
    return x


@torch.no_grad()
def sample_fireflow(
    model: FlowModel,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict | None = None,
    callback=None,
    disable=None,
) -> torch.Tensor:
    """FireFlow (Deng et al., "FireFlow: Fast Inversion of Rectified Flow for Image Semantic Editing", arXiv 2412.07517).

    The midpoint method with velocity reuse: the start-of-step velocity is the previous step's midpoint
    velocity ``v(x_{i-1/2}, sigma_{i-1/2})`` instead of a fresh ``v(x_i, sigma_i)``, so each step costs one
    evaluation (``n + 1`` in all for ``n`` steps). The reused velocity is off by ``O(h)``, which moves the
    midpoint state by ``O(h²)`` and the step by ``O(h³)``: still second order.
    """
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    v = None
    for i in trange(len(sigmas) - 1, disable=disable):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        h = sigma_next - sigma
        if v is None:
            v = model(x, sigma * s_in, **extra_args)
        _report(callback, x, i, sigma, sigma_next, v)
        v = model(x + h / 2 * v, (sigma + h / 2) * s_in, **extra_args)  # reused as the next step's v
        x = x + h * v
    return x
