"""SIM: one-step distillation of a flow or diffusion teacher by Score Implicit Matching.

Luo, Huang, Geng, Kolter, Qi, "One-Step Diffusion Distillation through Score Implicit Matching", NeurIPS 2024,
arXiv 2410.16794. Three networks: a frozen teacher score ``s_p``, a one-step generator ``g_theta`` and an online
"fake" score ``s_psi`` of the generator's distribution, the last two initialised from the teacher. Data-free;
alternate

1. fake-score step: train ``s_psi`` with the teacher's ordinary objective (flow / epsilon / v MSE) on
   ``x0 = sg(g_theta(z))``;
2. generator step: minimise the surrogate below, whose gradient is SIM's.

**The divergence.** ``D(theta) = int w(t) E_{x_t ~ pi_t} d_t(s_p(x_t) - s_q(x_t)) dt`` between the teacher's
diffused distribution ``p_t`` and the generator's ``q_t``, with ``d_t(y) = d(sigma_t^2 / alpha_t y)``: the distance
is applied to the score difference in denoiser (data) units, ``(sigma_t^2 / alpha_t)(s_p - s_psi) = D_p - D_psi``,
so one ``c`` fits every ``t``. Distances: pseudo-Huber ``d(y) = sqrt(||y||^2 + c^2) - c``, ``d'(y) = y /
sqrt(||y||^2 + c^2)`` (``c = huber_c sqrt(dim)``: ``huber_c`` is an RMS per element), or L2 ``d(y) = ||y||^2``,
``d'(y) = 2y`` (the SiD special case). ``t ~ U[t_min, t_max]``, ``w(t) = 1`` by default.

**The generator loss** (``estimator="sim"``, the default: SIM's score-gradient theorem, sampling distribution
``pi_t = sg(q_t)``). With ``x0 = g_theta(z)``, ``x_t = alpha_t x0 + sigma_t eps`` (``eps`` fixed, gradient flowing
through ``x0``), and the score-projection identity ``E_{q_t}[u^T s_q] = E_{x0, x_t}[u^T grad log q_t(x_t | x0)]``
(which holds for every ``theta``, so its derivative turns the intractable ``d s_q / d theta`` into derivatives
through ``x_t``)::

    L(theta) = E_{t, z, eps} [ w(t) < d'(D_p(x_t) - D_psi(x_t)), D_psi(x_t) - x0 > ]              (SIM)

with the parameters of ``D_psi`` frozen for this step (``psi = sg(theta)``) but the gradient flowing through
``x_t`` into ``d'``, the teacher ``D_p`` and the fake score ``D_psi``, and directly through ``x0``. Its gradient
is exactly ``dD/dtheta`` (checked against quadrature on 1-D Gaussians in ``tests/accelerate_dit/test_sim.py``);
descent moves ``x0`` along ``d'(D_p - D_psi)``, towards the teacher's denoising and away from the fake one (the
DMD / SiD direction). For L2 it is the generator loss of SiD's official code with ``alpha = 1``
(``(y_real - y_fake)((y_real - y) - alpha (y_real - y_fake))``, ``y_fake`` differentiated through its input;
Zhou et al., arXiv 2404.04057, github.com/mingyuanzhou/SiD), the special case SIM names.

``estimator="detached"`` holds ``d'(y_t)`` and the fake score constant, so the gradient only reaches ``theta``
through ``x0`` and the teacher: ``E[w(t) < sg(d'(D_p(x_t) - D_psi(x_t))), D_p(x_t) - x0 >]`` (this module's
earlier default). On the 1-D test its gradient is right for a translation of the generator but not for its
spread; on the 8-D Gaussian-mixture toy it collapses every sample onto one mixture component, where ``"sim"``
recovers all six (``benchmarks/results/sim_toy.json``). Kept as an ablation.

Reference settings (SiD's official code, the L2 case): Adam betas ``(0, 0.999)``, lr ``1e-5`` for both networks,
one fake step per generator step, generator noise ``sigma_init = 2.5`` (VE; flow ``init_t = 2.5 / 3.5``), fp32,
``t`` up to step 800 of 1000, an EMA of the generator, no gradient clipping; DMD2 uses five fake steps per
generator step.

Example::

    from accelerando.accelerate_dit.sim import SIMConfig, SIMDistiller
    from accelerando.generation import MelDiT

    teacher = MelDiT.from_pretrained("out/meldit/model")
    sim = SIMDistiller(teacher, SIMConfig(distance="pseudo_huber"))
    cond = {"program": program, "pitch": pitch, "velocity": velocity}  # (B,) long each
    for _ in range(1000):
        sim.train_step(torch.randn(8, 1, 80, 128), cond)
    mels = sim.generate(torch.randn(8, 1, 80, 128), cond)  # one network evaluation
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from accelerando.accelerate_dit.sim.score import Cond, ScoreModel, as_score_model

__all__ = ["DISTANCES", "ESTIMATORS", "SIMConfig", "SIMDistiller", "distance_grad", "sim_generator_loss"]

DISTANCES = ("pseudo_huber", "l2")
ESTIMATORS = ("sim", "detached")


@dataclass
class SIMConfig:
    """Knobs of SIM distillation (arXiv 2410.16794); the training flags of ``sim/train.py`` map onto these.

    Attributes:
        distance: ``"pseudo_huber"`` (SIM's choice) or ``"l2"`` (SiD).
        huber_c: pseudo-Huber ``c`` as an RMS per element in denoiser units: ``c = huber_c * sqrt(dim)``.
        estimator: ``"sim"`` (the score-gradient theorem, exact) or ``"detached"`` (an ablation; module docstring).
        t_min, t_max: the diffusion time ``t ~ U[t_min, t_max]`` of the generator and fake-score losses.
        weighting: ``w(t)``: ``"uniform"`` (in denoiser units) or a function of ``t`` ``(B,) -> (B,)``.
        init_t: the generator's noise level: ``g(z) = D_theta(sigma_{init_t} z, init_t)`` (``1.0``: pure noise for
            flow models; SiD's VE ``sigma_init = 2.5`` is ``init_t = 2.5 / 3.5`` on the flow path, as ``x_VE / (1 + sigma)``).
        fake_steps_per_gen_step: fake-score updates per generator update (SiD 1, DMD2 5).
        generator_lr, fake_lr, betas: Adam settings of both optimizers.
        ema_decay: keep an EMA of the generator (``None``: off; the training script uses its own EMA).
        max_grad_norm: gradient clipping for both networks (``None``: off).
    """

    distance: str = "pseudo_huber"
    huber_c: float = 0.03
    estimator: str = "sim"
    t_min: float = 0.02
    t_max: float = 0.98
    weighting: str | Callable[[torch.Tensor], torch.Tensor] = "uniform"
    init_t: float = 1.0
    fake_steps_per_gen_step: int = 1
    generator_lr: float = 1e-5
    fake_lr: float = 1e-5
    betas: tuple[float, float] = (0.0, 0.999)
    ema_decay: float | None = None
    max_grad_norm: float | None = None

    def __post_init__(self) -> None:
        if self.distance not in DISTANCES:
            raise ValueError(f"distance {self.distance!r} is not supported; choose one of {DISTANCES}.")
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator {self.estimator!r} is not supported; choose one of {ESTIMATORS}.")
        if not 0.0 <= self.t_min < self.t_max <= 1.0:
            raise ValueError(f"Need 0 <= t_min < t_max <= 1, got t_min={self.t_min}, t_max={self.t_max}.")
        if not 0.0 < self.init_t <= 1.0:
            raise ValueError(f"init_t must be in (0, 1], got {self.init_t}.")
        if self.huber_c <= 0:
            raise ValueError(f"huber_c must be positive, got {self.huber_c}.")
        if self.fake_steps_per_gen_step < 1:
            raise ValueError(f"fake_steps_per_gen_step must be >= 1, got {self.fake_steps_per_gen_step}.")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1) or None, got {self.ema_decay}.")
        if not callable(self.weighting) and self.weighting != "uniform":
            raise ValueError(
                f"weighting {self.weighting!r} is not supported; use 'uniform' or a function of t."
            )


def distance_grad(y: torch.Tensor, distance: str = "pseudo_huber", huber_c: float = 0.03) -> torch.Tensor:
    """``d'(y)`` per sample for ``y`` ``(B, ...)``: ``y / sqrt(||y||^2 + c^2)`` (``c = huber_c sqrt(dim)``) or ``2 y``."""
    if distance == "l2":
        return 2 * y
    if distance != "pseudo_huber":
        raise ValueError(f"distance {distance!r} is not supported; choose one of {DISTANCES}.")
    c2 = huber_c**2 * y[0].numel()
    norm2 = y.flatten(1).pow(2).sum(1)  # (B,)
    return y / (norm2 + c2).sqrt().reshape(-1, *([1] * (y.ndim - 1)))


def sim_generator_loss(
    teacher: ScoreModel,
    fake_score: ScoreModel,
    x0: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
    cond: Cond | None = None,
    config: SIMConfig | None = None,
) -> torch.Tensor:
    """The scalar surrogate of the module docstring for generator samples ``x0`` ``(B, ...)`` (with grad),
    times ``t`` ``(B,)`` and noise ``eps`` like ``x0``. Only ``x0`` should carry parameters that train."""
    config = config or SIMConfig()
    x_t = teacher.add_noise(x0, noise, t)
    d_p = teacher.denoise(x_t, t, cond)  # gradient reaches x_t through the frozen teacher
    if config.estimator == "sim":
        d_f = fake_score.denoise(x_t, t, cond)  # and through the fake score's input (its parameters frozen)
        u = distance_grad(d_p - d_f, config.distance, config.huber_c)
        per_sample = (u * (d_f - x0)).flatten(1).sum(1)  # (B,)
    else:
        with torch.no_grad():
            d_f = fake_score.denoise(x_t.detach(), t, cond)
            u = distance_grad(d_p.detach() - d_f, config.distance, config.huber_c)
        per_sample = (u * (d_p - x0)).flatten(1).sum(1)  # (B,)
    w = torch.ones_like(t) if config.weighting == "uniform" else config.weighting(t)
    return (w.to(per_sample.dtype) * per_sample.float()).mean()


class SIMDistiller(nn.Module):
    """Teacher (frozen), fake score and one-step generator, with their Adam optimizers and an optional EMA.

    Args:
        teacher: anything ``as_score_model`` accepts (MelDiT, a supported diffusers transformer with ``scheduler``,
            a ``ScoreModel``).
        config: ``SIMConfig``.
        generator, fake_score: ``ScoreModel`` networks to start from instead of copies of the teacher (e.g. small
            networks for an analytic teacher); same parameterisation as the teacher.
        scheduler: the diffusers scheduler of a diffusers teacher.
    ``z`` below is generator noise shaped like a sample ``(B, ...)``; ``cond`` the teacher's keyword inputs.
    """

    def __init__(
        self,
        teacher: Any,
        config: SIMConfig | None = None,
        *,
        generator: ScoreModel | None = None,
        fake_score: ScoreModel | None = None,
        scheduler: Any = None,
    ):
        super().__init__()
        self.config = config or SIMConfig()
        self.teacher = as_score_model(teacher, scheduler)
        self.teacher.requires_grad_(False).eval()
        self.fake_score = self.teacher.copy() if fake_score is None else fake_score
        self.generator = self.teacher.copy() if generator is None else generator
        for name, net in (("generator", self.generator), ("fake_score", self.fake_score)):
            if not isinstance(net, ScoreModel):
                raise TypeError(f"{name} must be a ScoreModel, got {type(net).__name__}.")
        self.fake_score.requires_grad_(True).train()
        self.generator.requires_grad_(True).train()
        cfg = self.config
        self.fake_optimizer = torch.optim.Adam(self.fake_score.parameters(), lr=cfg.fake_lr, betas=cfg.betas)
        self.generator_optimizer = torch.optim.Adam(
            self.generator.parameters(), lr=cfg.generator_lr, betas=cfg.betas
        )
        # Swappable for accelerate: ``accelerator.backward`` / ``accelerator.clip_grad_norm_``.
        self.backward: Callable[[torch.Tensor], None] = torch.Tensor.backward
        self.clip_grad_norm: Callable[..., Any] = nn.utils.clip_grad_norm_
        self.generator_ema: ScoreModel | None = None
        if cfg.ema_decay is not None:
            self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False).eval()

    def _times(self, n: int, like: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        return cfg.t_min + (cfg.t_max - cfg.t_min) * torch.rand(n, device=like.device, dtype=like.dtype)

    def generate(self, z: torch.Tensor, cond: Cond | None = None, use_ema: bool = False) -> torch.Tensor:
        """One-step samples ``x0 = D_theta(sigma_init z, init_t)`` ``(B, ...)`` (with grad unless under no_grad)."""
        net = self.generator_ema if use_ema and self.generator_ema is not None else self.generator
        t = torch.full((z.shape[0],), self.config.init_t, device=z.device, dtype=z.dtype)
        _, sigma = net.alpha_sigma(t)
        return net.denoise(sigma.reshape(-1, *([1] * (z.ndim - 1))) * z, t, cond)

    def _step(self, optimizer: torch.optim.Optimizer, module: nn.Module, loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        self.backward(loss)
        if self.config.max_grad_norm is not None:
            self.clip_grad_norm(module.parameters(), self.config.max_grad_norm)
        optimizer.step()

    def fake_score_loss(self, z: torch.Tensor, cond: Cond | None = None) -> torch.Tensor:
        """The fake score's denoising (flow / epsilon / v) loss on ``sg(g_theta(z))``."""
        with torch.no_grad():
            x0 = self.generate(z, cond)
        return self.fake_score.training_loss(x0, self._times(z.shape[0], z), torch.randn_like(x0), cond)

    def fake_score_step(self, z: torch.Tensor, cond: Cond | None = None) -> float:
        """One Adam step of the fake score; returns its loss. The teacher and generator are untouched."""
        loss = self.fake_score_loss(z, cond)
        self._step(self.fake_optimizer, self.fake_score, loss)
        return float(loss.detach())

    def generator_loss(self, z: torch.Tensor, cond: Cond | None = None) -> torch.Tensor:
        """SIM's generator surrogate (module docstring) at fresh ``t`` and ``eps``."""
        x0 = self.generate(z, cond)
        t = self._times(z.shape[0], z)
        self.fake_score.requires_grad_(False)  # "sim" backpropagates through it to x_t only
        try:
            return sim_generator_loss(
                self.teacher, self.fake_score, x0, t, torch.randn_like(x0), cond, self.config
            )
        finally:
            self.fake_score.requires_grad_(True)

    def generator_step(self, z: torch.Tensor, cond: Cond | None = None) -> float:
        """One Adam step of the generator (and its EMA); returns the surrogate's value."""
        loss = self.generator_loss(z, cond)
        self._step(self.generator_optimizer, self.generator, loss)
        self.fake_optimizer.zero_grad(set_to_none=True)
        if self.generator_ema is not None:
            with torch.no_grad():
                for ema, p in zip(self.generator_ema.parameters(), self.generator.parameters(), strict=True):
                    ema.lerp_(p, 1.0 - self.config.ema_decay)
        return float(loss.detach())

    def train_step(self, z: torch.Tensor, cond: Cond | None = None) -> dict[str, float]:
        """``fake_steps_per_gen_step`` fake-score steps (fresh noise after the first), then one generator step."""
        fake = [
            self.fake_score_step(z if i == 0 else torch.randn_like(z), cond)
            for i in range(self.config.fake_steps_per_gen_step)
        ]
        return {"fake_loss": sum(fake) / len(fake), "generator_loss": self.generator_step(z, cond)}
