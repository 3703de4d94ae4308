"""FasterDiT training recipe: timestep samplers, the log-SNR PDF, data-std modulation, velocity-direction loss.

FasterDiT (Yao et al., "FasterDiT: Towards Faster Diffusion Transformers Training without Architecture
Modification", NeurIPS 2024, arXiv 2410.10356) reads a training strategy through the probability density of the
log signal-to-noise ratio it induces, with the SNR *extended by the data's standard deviation*: on the
rectified-flow path ``x_t = (1 - t) x0 + t noise`` with ``std(x0) = sigma_data``,

    SNR(t) = ((1 - t) sigma_data / t)^2,   lambda = log SNR = 2 (log sigma_data - logit t).

So scaling the data by ``c`` shifts the whole log-SNR PDF by ``2 log c``: the same timestep sampler trains a
different task on data of a different scale. The recipe is rectified flow + logit-normal(0, 1) timesteps + the
data scaled to a chosen std + an extra velocity-direction loss ``1 - cos(v_theta, v)``, weight 1.

The samplers are SD3's family (Esser et al. 2024, arXiv 2403.03206; diffusers
``compute_density_for_timestep_sampling``): ``uniform``, ``logit_normal``, ``mode`` (heavy tails, ``scale``)
and ``cosmap``. Each has an analytic density of ``t``, which ``snr_pdf`` maps to log-SNR by change of variables.

Example::

    import torch
    from accelerando.fasterdit import FasterDiTRecipe, fasterdit_loss, log_snr, snr_pdf

    recipe = FasterDiTRecipe.fasterdit()
    t = recipe.sample_timesteps(8, generator=torch.Generator().manual_seed(0))  # (8,) in (0, 1)
    pred, target = torch.randn(8, 4, 16), torch.randn(8, 4, 16)
    loss = fasterdit_loss(pred, target, direction_weight=recipe.direction_weight)
    grid = torch.linspace(-20, 20, 2001, dtype=torch.float64)
    pdf = snr_pdf(grid, recipe.timestep_sampling, data_std=1.0, **recipe.sampler_kwargs())  # integrates to 1

A core module (it needs only torch): MelDiT's training script and any flow model's trainer use it; the DiT
plugins re-export it as :mod:`accelerando.accelerate_dit.fasterdit`, where it was first documented.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

__all__ = [
    "TIMESTEP_SAMPLERS",
    "FasterDiTRecipe",
    "cosmap_timesteps",
    "fasterdit_loss",
    "log_snr",
    "logit_normal_timesteps",
    "mode_timesteps",
    "plot_snr_pdf",
    "sample_timesteps",
    "snr_pdf",
    "timestep_density",
    "uniform_timesteps",
    "velocity_direction_loss",
]

_EPS = 1e-6  # keeps t strictly inside (0, 1) so log-SNR stays finite


def _clamp(t: torch.Tensor) -> torch.Tensor:
    return t.clamp(_EPS, 1 - _EPS)


def uniform_timesteps(
    n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """``(n,)`` timesteps ``t ~ U(0, 1)`` (DiT / SiT's default), kept inside (0, 1)."""
    return _clamp(torch.rand(n, generator=generator, device=device))


def logit_normal_timesteps(
    n: int,
    mean: float = 0.0,
    std: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``(n,)`` timesteps ``t = sigmoid(u)``, ``u ~ N(mean, std^2)`` (SD3's logit-normal; FasterDiT uses (0, 1))."""
    return _clamp(torch.sigmoid(mean + std * torch.randn(n, generator=generator, device=device)))


def _mode_map(u: torch.Tensor, scale: float) -> torch.Tensor:
    # SD3 eq. 20 written for t (diffusers' "mode"): t = 1 - u - scale (cos^2(pi u / 2) - 1 + u).
    return 1 - u - scale * (torch.cos(math.pi * u / 2) ** 2 - 1 + u)


def _check_mode_scale(scale: float) -> None:
    # dt/du = -(1 + scale) + scale (pi / 2) sin(pi u) < 0 everywhere iff -1 < scale < 1 / (pi / 2 - 1).
    if not -1.0 < scale < 1.0 / (math.pi / 2 - 1):
        raise ValueError(
            f"mode scale must lie in (-1, {1 / (math.pi / 2 - 1):.3f}) to be a density; got {scale}."
        )


def mode_timesteps(
    n: int, scale: float = 1.29, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """``(n,)`` timesteps from SD3's mode sampler (heavy tails toward both ends as ``scale`` grows)."""
    _check_mode_scale(scale)
    return _clamp(_mode_map(torch.rand(n, generator=generator, device=device), scale))


def cosmap_timesteps(
    n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """``(n,)`` timesteps with SD3's cosmap density ``2 / (pi (1 - 2t + 2t^2))`` (inverse CDF of ``U(0, 1)``)."""
    u = torch.rand(n, generator=generator, device=device)
    tan = torch.tan(math.pi * u / 2)
    return _clamp(tan / (1 + tan))


TIMESTEP_SAMPLERS = {
    "uniform": uniform_timesteps,
    "logit_normal": logit_normal_timesteps,
    "mode": mode_timesteps,
    "cosmap": cosmap_timesteps,
}


def _unknown(kind: str) -> ValueError:
    return ValueError(f"Unknown timestep sampling {kind!r}; choose one of {sorted(TIMESTEP_SAMPLERS)}.")


def sample_timesteps(
    kind: str,
    n: int,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    **sampler_kw: Any,
) -> torch.Tensor:
    """``(n,)`` timesteps in (0, 1) from the sampler named ``kind`` (see ``TIMESTEP_SAMPLERS``)."""
    if kind not in TIMESTEP_SAMPLERS:
        raise _unknown(kind)
    return TIMESTEP_SAMPLERS[kind](n, generator=generator, device=device, **sampler_kw)


def timestep_density(
    t: torch.Tensor, kind: str, mean: float = 0.0, std: float = 1.0, scale: float = 1.29
) -> torch.Tensor:
    """Analytic density ``p(t)`` of a sampler on (0, 1) (``mean``/``std``: logit-normal, ``scale``: mode)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    if kind == "uniform":
        return torch.ones_like(t)
    if kind == "logit_normal":
        z = (torch.logit(t) - mean) / std
        return torch.exp(-0.5 * z**2) / (std * math.sqrt(2 * math.pi) * t * (1 - t))
    if kind == "cosmap":
        return 2 / (math.pi * (1 - 2 * t + 2 * t**2))
    if kind == "mode":
        _check_mode_scale(scale)
        lo, hi = torch.zeros_like(t), torch.ones_like(t)  # t(u) decreases: bisect for u with t(u) = t
        for _ in range(60):
            mid = (lo + hi) / 2
            above = _mode_map(mid, scale) > t
            lo, hi = torch.where(above, mid, lo), torch.where(above, hi, mid)
        u = (lo + hi) / 2
        return 1 / ((1 + scale) - scale * math.pi / 2 * torch.sin(math.pi * u))  # 1 / |dt/du|
    raise _unknown(kind)


def log_snr(t: torch.Tensor, data_std: float = 1.0) -> torch.Tensor:
    """FasterDiT's extended log-SNR of the rectified-flow path: ``2 log((1 - t) data_std / t)``."""
    return 2 * (math.log(data_std) - torch.logit(torch.as_tensor(t)))


def snr_pdf(log_snr_grid: torch.Tensor, kind: str, data_std: float = 1.0, **sampler_kw: Any) -> torch.Tensor:
    """Density of ``lambda = log SNR`` at ``log_snr_grid`` for sampler ``kind`` on data of std ``data_std``.

    Change of variables: ``t = sigmoid(log data_std - lambda / 2)``, ``|dt/dlambda| = t (1 - t) / 2``, so
    ``p(lambda) = p_t(t) t (1 - t) / 2``. Returns float64 with the grid's shape.
    """
    lam = torch.as_tensor(log_snr_grid, dtype=torch.float64)
    t = torch.sigmoid(math.log(data_std) - lam / 2)
    inside = (t > 0) & (t < 1)  # float64 underflow at the far ends: the density there is 0
    t_safe = torch.where(inside, t, torch.full_like(t, 0.5))
    pdf = timestep_density(t_safe, kind, **sampler_kw) * t_safe * (1 - t_safe) / 2
    return torch.where(inside, pdf, torch.zeros_like(pdf))


def plot_snr_pdf(
    curves: dict[str, dict[str, Any]],
    path: str | os.PathLike | None = None,
    log_snr_range: tuple[float, float] = (-15.0, 15.0),
    ax: Any = None,
    title: str = "log-SNR PDF (FasterDiT's extended SNR)",
) -> Any:
    """Plot ``snr_pdf`` for each ``label -> {"kind": ..., "data_std": ..., **sampler_kw}``; returns the figure.

    Writes a PNG to ``path`` when given (matplotlib's Agg backend: no display needed).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4)) if ax is None else (ax.figure, ax)
    grid = torch.linspace(*log_snr_range, 1201, dtype=torch.float64)
    for label, spec in curves.items():
        spec = dict(spec)
        ax.plot(
            grid.numpy(),
            snr_pdf(grid, spec.pop("kind"), spec.pop("data_std", 1.0), **spec).numpy(),
            label=label,
        )
    ax.set(xlabel="log SNR = 2 log((1 - t) std / t)", ylabel="density", title=title)
    ax.legend(fontsize=8)
    if path is not None:
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    return fig


def velocity_direction_loss(
    pred: torch.Tensor, target: torch.Tensor, dim: int = 1, eps: float = 1e-8
) -> torch.Tensor:
    """FasterDiT's direction loss: ``1 - cos(pred, target)`` along ``dim`` (channels) at each position, averaged.

    0 for parallel vectors, 2 for opposite ones, invariant to positive rescaling of either argument.
    """
    return (1 - F.cosine_similarity(pred.float(), target.float(), dim=dim, eps=eps)).mean()


def fasterdit_loss(
    pred: torch.Tensor, target: torch.Tensor, direction_weight: float = 1.0, dim: int = 1
) -> torch.Tensor:
    """``MSE(pred, target) + direction_weight * velocity_direction_loss`` (weight 0: exactly the plain MSE)."""
    mse = F.mse_loss(pred.float(), target.float())
    if direction_weight == 0:
        return mse
    return mse + direction_weight * velocity_direction_loss(pred, target, dim=dim)


@dataclass
class FasterDiTRecipe:
    """Training-recipe knobs of FasterDiT (arXiv 2410.10356) for a rectified-flow velocity model.

    Args:
        timestep_sampling: one of ``TIMESTEP_SAMPLERS`` (``uniform``, ``logit_normal``, ``mode``, ``cosmap``).
        logit_mean, logit_std: the logit-normal's parameters.
        mode_scale: the mode sampler's scale (SD3: 1.29).
        data_std: scale the (already normalised) training data to this standard deviation; ``None`` leaves it.
        direction_weight: weight of ``velocity_direction_loss`` added to the MSE (0 = off).

    ``vanilla()`` is DiT/SiT's baseline (uniform t, MSE); ``fasterdit()`` is logit-normal(0, 1), data scaled to
    unit std (our choice of std: it pins the log-SNR PDF at the one logit-normal(0, 1) was tuned for, whatever
    the raw data scale), direction weight 1.

    Example::

        recipe = FasterDiTRecipe.fasterdit()
        t = recipe.sample_timesteps(16)
        x0 = recipe.scale_data(x0, measured_std)  # only when recipe.data_std is set
    """

    timestep_sampling: str = "uniform"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    mode_scale: float = 1.29
    data_std: float | None = None
    direction_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.timestep_sampling not in TIMESTEP_SAMPLERS:
            raise _unknown(self.timestep_sampling)
        if self.data_std is not None and self.data_std <= 0:
            raise ValueError(f"data_std must be positive or None; got {self.data_std}.")
        if self.direction_weight < 0:
            raise ValueError(f"direction_weight must be >= 0; got {self.direction_weight}.")

    @classmethod
    def vanilla(cls) -> FasterDiTRecipe:
        """Uniform t, plain MSE, data unchanged."""
        return cls()

    @classmethod
    def fasterdit(cls) -> FasterDiTRecipe:
        """Logit-normal(0, 1) t, data scaled to std 1, MSE + 1 x velocity-direction loss."""
        return cls(timestep_sampling="logit_normal", data_std=1.0, direction_weight=1.0)

    def sampler_kwargs(self) -> dict[str, float]:
        """The keyword arguments of the chosen sampler (and of ``snr_pdf`` / ``timestep_density``)."""
        if self.timestep_sampling == "logit_normal":
            return {"mean": self.logit_mean, "std": self.logit_std}
        if self.timestep_sampling == "mode":
            return {"scale": self.mode_scale}
        return {}

    def sample_timesteps(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """``(n,)`` timesteps from this recipe's sampler."""
        return sample_timesteps(
            self.timestep_sampling, n, generator=generator, device=device, **self.sampler_kwargs()
        )

    def data_scale(self, measured_std: float) -> float:
        """The factor that takes data of std ``measured_std`` to ``data_std`` (1 when ``data_std`` is None)."""
        return 1.0 if self.data_std is None else self.data_std / measured_std

    def scale_data(self, x0: torch.Tensor, measured_std: float) -> torch.Tensor:
        """``x0`` scaled to this recipe's ``data_std``."""
        return x0 * self.data_scale(measured_std)

    def loss(self, pred: torch.Tensor, target: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """``fasterdit_loss`` with this recipe's direction weight."""
        return fasterdit_loss(pred, target, self.direction_weight, dim=dim)
