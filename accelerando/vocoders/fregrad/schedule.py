"""Noise schedules of FreGrad: the zero-terminal-SNR training schedule and the fast sampling ones.

FreGrad (Nguyen et al., ICASSP 2024, arXiv 2401.10032) trains on ``linspace(1e-4, 0.05, 50)``
rescaled to zero terminal SNR (Lin et al. 2023, arXiv 2305.08891, Alg. 1) and samples with short
hand-made beta lists that PriorGrad / DiffWave introduced. The step index each fast beta stands
for is found by matching its cumulative ``sqrt(alpha_bar)`` on the training schedule (DiffWave's
"twiddle" interpolation), so the network sees fractional diffusion steps.

Betas are plain Python lists (they live in ``config.json``); every helper returns float64 tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "FAST_SCHEDULE_STEPS",
    "SamplingSchedule",
    "default_training_betas",
    "fast_betas",
    "get_schedule",
    "rescale_zero_terminal_snr",
]

# Kept above zero so that the last reverse step stays finite with an epsilon-predicting network:
# with sqrt(alpha_bar_T) exactly 0, beta_T = 1 and the DDPM update divides by sqrt(1 - beta_T) = 0.
# The reference code (kaistmm/fregrad, params.py) uses the same 1e-4 shift; alpha_bar_T is ~5e-8.
TERMINAL_SQRT_ALPHA_BAR_OFFSET = 1e-4

# Number of steps -> betas after the first one; ``None`` marks "the first beta is the training
# schedule's first beta (gamma_0)". From kaistmm/fregrad inference.py (6, 3, 2, 12 steps).
_FAST_TAILS: dict[int, tuple[float | None, ...]] = {
    12: (1e-4, 5e-4, 8e-4, 1e-3, 5e-3, 8e-3, 1e-2, 5e-2, 8e-2, 0.1, 0.2, 0.5),
    6: (None, 0.0215, 0.045, 0.08, 0.2, 0.5),
    3: (None, 0.1, 0.95),
    2: (0.04, 0.95),
}
FAST_SCHEDULE_STEPS: tuple[int, ...] = (50, 12, 6, 3, 2)


def rescale_zero_terminal_snr(
    betas: Sequence[float] | Tensor, offset: float = TERMINAL_SQRT_ALPHA_BAR_OFFSET
) -> Tensor:
    """Shift and scale ``sqrt(alpha_bar)`` so it keeps its first value and ends at (almost) zero.

    Lin et al. 2023, Alg. 1, with FreGrad's ``offset`` (terminal ``sqrt(alpha_bar)`` before scaling
    is ``offset`` rather than 0; ``offset=0`` gives the exact zero-SNR schedule whose last beta is 1).

    Args:
        betas: ``(T,)`` betas in ``(0, 1)``.
        offset: what is left of ``sqrt(alpha_bar_T)`` before the rescale.

    Returns:
        ``(T,)`` float64 rescaled betas.
    """
    betas = torch.as_tensor(betas, dtype=torch.float64)
    sqrt_ab = torch.cumprod(1.0 - betas, dim=0).sqrt()  # (T,)
    first, last = sqrt_ab[0].clone(), sqrt_ab[-1].clone() - offset
    sqrt_ab = (sqrt_ab - last) * first / (first - last)
    alpha_bar = sqrt_ab.square()
    alphas = torch.cat([alpha_bar[:1], alpha_bar[1:] / alpha_bar[:-1]])
    return 1.0 - alphas


def default_training_betas(
    num_steps: int = 50, beta_start: float = 1e-4, beta_end: float = 0.05
) -> list[float]:
    """FreGrad's training schedule: zero-terminal-SNR rescaled ``linspace(1e-4, 0.05, 50)``."""
    return rescale_zero_terminal_snr(
        torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
    ).tolist()


def fast_betas(num_steps: int, training_betas: Sequence[float]) -> list[float]:
    """The named schedule with ``num_steps`` steps (see :data:`FAST_SCHEDULE_STEPS`).

    50 steps is the training schedule itself; 12, 6, 3 and 2 are the reference code's lists, where
    the 6- and 3-step lists start with the training schedule's first beta.
    """
    if num_steps == len(training_betas):
        return [float(b) for b in training_betas]
    if num_steps not in _FAST_TAILS:
        named = sorted({*_FAST_TAILS, len(training_betas)}, reverse=True)
        raise ValueError(
            f"There is no named FreGrad schedule with num_steps={num_steps!r}; available: {named}. "
            "Pass betas=[...] to sample with a schedule of your own."
        )
    return [float(training_betas[0]) if b is None else b for b in _FAST_TAILS[num_steps]]


@dataclass(frozen=True)
class SamplingSchedule:
    """A reverse-process schedule aligned to the training steps.

    Attributes:
        betas, alphas, alpha_bars: ``(S,)`` float64, for the S sampling steps.
        timesteps: ``(S,)`` float64 fractional training-step indices fed to the network.
    """

    betas: Tensor
    alphas: Tensor
    alpha_bars: Tensor
    timesteps: Tensor

    def __len__(self) -> int:
        return self.betas.numel()


def _check_betas(betas: Sequence[float], what: str) -> Tensor:
    tensor = torch.as_tensor(list(betas), dtype=torch.float64)
    if tensor.dim() != 1 or tensor.numel() == 0:
        raise ValueError(f"{what} must be a non-empty list of floats; got {list(betas)!r}")
    if not bool(torch.isfinite(tensor).all()) or not bool(((tensor > 0) & (tensor < 1)).all()):
        raise ValueError(f"{what} must lie strictly between 0 and 1; got {tensor.tolist()}")
    return tensor


def align_timesteps(training_betas: Sequence[float], betas: Sequence[float]) -> Tensor:
    """Fractional training step of each sampling step, matching ``sqrt(alpha_bar)`` (DiffWave).

    Between training steps t and t+1 the index moves linearly in ``sqrt(alpha_bar)``; values
    outside the training range are clamped to step 0 or T-1.
    """
    train_sqrt_ab = torch.cumprod(1.0 - _check_betas(training_betas, "noise_schedule"), 0).sqrt()  # (T,)
    sqrt_ab = torch.cumprod(1.0 - _check_betas(betas, "betas"), 0).sqrt()  # (S,)
    steps = torch.arange(train_sqrt_ab.numel(), dtype=torch.float64)
    # np.interp-style interpolation on the increasing reversed arrays.
    xp, fp = train_sqrt_ab.flip(0), steps.flip(0)
    x = sqrt_ab.clamp(xp[0], xp[-1])
    idx = torch.searchsorted(xp, x, right=True).clamp(1, xp.numel() - 1)
    x0, x1, f0, f1 = xp[idx - 1], xp[idx], fp[idx - 1], fp[idx]
    weight = torch.where(x1 > x0, (x - x0) / (x1 - x0).clamp_min(1e-300), torch.zeros_like(x))
    return f0 + weight * (f1 - f0)


def get_schedule(
    training_betas: Sequence[float], num_steps: int | None = None, betas: Sequence[float] | None = None
) -> SamplingSchedule:
    """Build the sampling schedule for a named step count or a user-given beta list.

    Args:
        training_betas: the model's ``noise_schedule`` (T betas).
        num_steps: one of :data:`FAST_SCHEDULE_STEPS` (or T); ignored when ``betas`` is given,
            except that it must then equal ``len(betas)``.
        betas: a beta list of your own, each in ``(0, 1)``.
    """
    if betas is None:
        if num_steps is None:
            raise ValueError("get_schedule needs num_steps or betas")
        if isinstance(num_steps, bool) or not isinstance(num_steps, int):
            raise ValueError(f"num_steps must be an int; got {num_steps!r}")
        betas = fast_betas(num_steps, training_betas)
    elif num_steps is not None and num_steps != len(betas):
        raise ValueError(
            f"num_steps={num_steps} disagrees with the {len(betas)} betas given; pass one of them"
        )
    beta = _check_betas(betas, "betas")
    alphas = 1.0 - beta
    return SamplingSchedule(
        betas=beta,
        alphas=alphas,
        alpha_bars=torch.cumprod(alphas, 0),
        timesteps=align_timesteps(training_betas, beta.tolist()),
    )
