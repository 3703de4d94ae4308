"""Parameterisation adapters: one ``ScoreModel`` view (denoiser and score) of flow and diffusion networks.

Every network is seen through the Gaussian path ``x_t = alpha_t x0 + sigma_t eps`` with ``t`` in [0, 1]
(1 = the most noise):

- ``"flow"`` (rectified flow; MelDiT, SD3-style transformers): ``alpha_t = 1 - t``, ``sigma_t = t``; the network
  predicts ``v = eps - x0`` at ``timestep = 1000 t``, so ``x0_hat = x_t - t v``.
- ``"epsilon"`` / ``"v_prediction"`` (variance-preserving diffusion, DDPM/DiT-style): ``alpha_t^2 =
  alphas_cumprod[i]``, ``sigma_t^2 = 1 - alpha_t^2`` at the discrete timestep ``i = round(t (N - 1))``;
  ``x0_hat = (x_t - sigma_t eps_hat) / alpha_t`` or ``alpha_t x_t - sigma_t v_hat``.

In every case ``score(x_t) = -(x_t - alpha_t x0_hat) / sigma_t^2`` (Tweedie's formula).

Example::

    from accelerando.accelerate_dit.sim import as_score_model
    from accelerando.generation import MelDiT

    teacher = as_score_model(MelDiT.from_preset("small"))
    x0_hat = teacher.denoise(x_t, t, {"program": p, "pitch": k, "velocity": v})  # t: (B,) in [0, 1]
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["PREDICTIONS", "SUPPORTED_DIFFUSERS_MODELS", "ScoreModel", "as_score_model"]

PREDICTIONS = ("flow", "epsilon", "v_prediction")
# diffusers transformers whose forward takes (hidden_states, timestep=..., **cond) and returns .sample.
SUPPORTED_DIFFUSERS_MODELS = ("DiTTransformer2DModel", "PixArtTransformer2DModel", "SD3Transformer2DModel")

Cond = dict[str, Any]


def _default_call(net: nn.Module, x: torch.Tensor, timestep: torch.Tensor, cond: Cond) -> torch.Tensor:
    out = net(x, timestep=timestep, **cond)
    out = getattr(out, "sample", out)
    out = out[0] if isinstance(out, tuple) else out
    if out.shape[1] == 2 * x.shape[1]:  # learned-sigma heads (DiT): keep the mean prediction
        out = out[:, : x.shape[1]]
    return out


def _expand(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return value.reshape(-1, *([1] * (like.ndim - 1))).to(like.dtype)  # (B, 1, ...)


class ScoreModel(nn.Module):
    """A network seen as a denoiser ``D(x_t, t) ~ E[x0 | x_t]`` and a score ``grad log p_t(x_t)``.

    Args:
        net: the network; called as ``call(net, x_t, timestep, cond)``.
        prediction: ``"flow"`` (velocity ``eps - x0``), ``"epsilon"`` or ``"v_prediction"``.
        alphas_cumprod: ``(N,)`` cumulative alphas of a VP schedule (required unless ``prediction="flow"``).
        call: how to call ``net``; default ``net(x, timestep=timestep, **cond).sample`` (first half of the
            channels for learned-sigma heads).
    Shapes: ``x_t`` ``(B, ...)``, ``t`` ``(B,)`` floats in [0, 1]; outputs have ``x_t``'s shape.
    """

    def __init__(
        self,
        net: nn.Module,
        prediction: str = "flow",
        alphas_cumprod: torch.Tensor | None = None,
        call: Callable[[nn.Module, torch.Tensor, torch.Tensor, Cond], torch.Tensor] | None = None,
    ):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction {prediction!r} is not supported; choose one of {PREDICTIONS}.")
        if prediction != "flow" and alphas_cumprod is None:
            raise ValueError(f"prediction {prediction!r} needs the schedule's alphas_cumprod.")
        self.net = net
        self.prediction = prediction
        self.call = call or _default_call
        acp = torch.as_tensor(alphas_cumprod, dtype=torch.float64) if alphas_cumprod is not None else None
        self.register_buffer("alphas_cumprod", acp, persistent=False)

    def _vp_index(self, t: torch.Tensor) -> torch.Tensor:
        n = self.alphas_cumprod.shape[0]
        return (t.clamp(0, 1) * (n - 1)).round().long()

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(alpha_t, sigma_t)``, each ``(B,)``."""
        if self.prediction == "flow":
            return 1 - t, t
        acp = self.alphas_cumprod.to(t.device)[self._vp_index(t)].to(t.dtype)
        return acp.sqrt(), (1 - acp).sqrt()

    def timestep(self, t: torch.Tensor) -> torch.Tensor:
        """The network's own timestep input: ``1000 t`` for flow models, the discrete index for VP models."""
        return t * 1000 if self.prediction == "flow" else self._vp_index(t)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x_t = alpha_t x0 + sigma_t noise``."""
        alpha, sigma = self.alpha_sigma(t)
        return _expand(alpha, x0) * x0 + _expand(sigma, x0) * noise

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, cond: Cond | None = None) -> torch.Tensor:
        """The raw network output (velocity, epsilon or v)."""
        return self.call(self.net, x_t, self.timestep(t).to(x_t.dtype), cond or {})

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, cond: Cond | None = None) -> torch.Tensor:
        """``x0_hat = D(x_t, t)``."""
        out = self.predict(x_t, t, cond)
        alpha, sigma = (_expand(v, x_t) for v in self.alpha_sigma(t))
        if self.prediction == "flow":
            return x_t - sigma * out
        if self.prediction == "epsilon":
            return (x_t - sigma * out) / alpha
        return alpha * x_t - sigma * out  # v_prediction (alpha^2 + sigma^2 = 1)

    def score(self, x_t: torch.Tensor, t: torch.Tensor, cond: Cond | None = None) -> torch.Tensor:
        """``grad log p_t(x_t) = -(x_t - alpha_t D(x_t, t)) / sigma_t^2``."""
        alpha, sigma = (_expand(v, x_t) for v in self.alpha_sigma(t))
        return -(x_t - alpha * self.denoise(x_t, t, cond)) / sigma**2

    def training_loss(
        self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, cond: Cond | None = None
    ) -> torch.Tensor:
        """The ordinary objective in the network's own parameterisation (flow / epsilon / v MSE), a scalar."""
        x_t = self.add_noise(x0, noise, t)
        alpha, sigma = (_expand(v, x0) for v in self.alpha_sigma(t))
        target = {"flow": noise - x0, "epsilon": noise, "v_prediction": alpha * noise - sigma * x0}
        pred = self.predict(x_t, t, cond)
        return nn.functional.mse_loss(pred.float(), target[self.prediction].float())

    def copy(self) -> ScoreModel:
        """A deep copy (network included) with trainable parameters."""
        clone = copy.deepcopy(self)
        clone.requires_grad_(True)
        return clone.train()


def _scheduler_parameterisation(scheduler: Any, name: str) -> tuple[str, torch.Tensor | None]:
    if scheduler is None:
        raise ValueError(
            f"A {name} teacher needs its diffusers scheduler (scheduler=...) to know its parameterisation: "
            "a FlowMatch* scheduler for flow models, or one with alphas_cumprod and prediction_type."
        )
    if "FlowMatch" in type(scheduler).__name__:
        return "flow", None
    acp = getattr(scheduler, "alphas_cumprod", None)
    prediction = getattr(scheduler.config, "prediction_type", None)
    if acp is None or prediction not in ("epsilon", "v_prediction"):
        raise ValueError(
            f"Scheduler {type(scheduler).__name__} (prediction_type={prediction!r}) is not supported: pass a "
            "FlowMatch* scheduler, or a DDPM/DDIM-style one with prediction_type 'epsilon' or 'v_prediction'."
        )
    return prediction, acp


def as_score_model(model: Any, scheduler: Any = None) -> ScoreModel:
    """Wrap a teacher as a ``ScoreModel``: a ``ScoreModel`` (returned as is), a ``MelDiT`` (flow), or a diffusers
    transformer in ``SUPPORTED_DIFFUSERS_MODELS`` with its ``scheduler`` deciding the parameterisation.

    Raises:
        TypeError: for any other class, naming it and the accepted ones.
    """
    from accelerando.generation.mel_dit import MelDiT

    if isinstance(model, ScoreModel):
        return model
    if isinstance(model, MelDiT):
        return ScoreModel(model, "flow")
    name = type(model).__name__
    if name in SUPPORTED_DIFFUSERS_MODELS:
        prediction, acp = _scheduler_parameterisation(scheduler, name)
        return ScoreModel(model, prediction, acp)
    raise TypeError(
        f"SIM cannot distill a teacher of class {name}: accepted teachers are MelDiT, the diffusers transformers "
        f"{', '.join(SUPPORTED_DIFFUSERS_MODELS)} (with their scheduler), or a ScoreModel wrapping any other "
        "network (ScoreModel(net, prediction, alphas_cumprod, call))."
    )
