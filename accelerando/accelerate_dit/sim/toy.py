"""SIM on Gaussian mixtures with an exact teacher: the analytic rectified-flow velocity of ``GaussianMixtureFlow``.

The teacher needs no training (its score is exact). The generator and the fake score are small residual MLPs
(``ToyFlowMLP``); as in the paper both start from the teacher: one MLP is first fitted to the teacher's velocity,
data-free (``fit_to_teacher``: regression at ``x_t = (1 - t) x0' + t eps`` with a broad Gaussian ``x0'``, never the
mixture itself), and copied into both roles. The generator then starts as the one-step teacher ``x0 = z - v(z, 1)``.

Example::

    from accelerando.accelerate_dit.sim.toy import run_toy
    from accelerando.generation.toy import GaussianMixtureFlow

    result = run_toy(GaussianMixtureFlow.default(), steps=2000)
    result["metrics"]["sim_1"], result["metrics"]["teacher_32"]  # {"sw2": ..., "mmd2": ...}

``TOY_CONFIG`` is the setting of ``benchmarks/sim_toy.py``: learning rates far above the paper's ``1e-5`` (small
MLPs, a few thousand steps), the fake score at twice the generator's rate with two updates per generator update,
Adam betas ``(0, 0.999)``, an EMA of 0.998, no clipping, pure-noise generator input (``init_t = 1``).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from diffusers.configuration_utils import register_to_config
from torch import nn

from accelerando.accelerate_dit.sim.distiller import SIMConfig, SIMDistiller
from accelerando.accelerate_dit.sim.score import ScoreModel
from accelerando.generation.toy import GaussianMixtureFlow
from accelerando.metrics import mmd2, sliced_wasserstein2
from accelerando.modeling import AccelerandoModel
from accelerando.samplers import get_sigmas_uniform, sample_euler

__all__ = ["TOY_CONFIG", "GMMVelocity", "ToyFlowMLP", "fit_to_teacher", "gmm_8d", "gmm_teacher", "run_toy"]

TOY_CONFIG = SIMConfig(generator_lr=1e-3, fake_lr=2e-3, fake_steps_per_gen_step=2, ema_decay=0.998)


class GMMVelocity(nn.Module):
    """``GaussianMixtureFlow.velocity`` as a network: ``forward(x (B, d), timestep = 1000 sigma) -> (B, d)``."""

    def __init__(self, gmm: GaussianMixtureFlow):
        super().__init__()
        self.gmm = gmm

    def forward(self, x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        return self.gmm.velocity(x, timestep / 1000)


class ToyFlowMLP(AccelerandoModel):
    """A residual MLP velocity model ``(x (B, dim), timestep (B,)) -> (B, dim)`` with sin-cos time features."""

    @register_to_config
    def __init__(self, dim: int = 2, hidden: int = 128, num_layers: int = 3, time_features: int = 16):
        super().__init__()
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, math.log(100.0), time_features // 2)))
        self.inp = nn.Linear(dim + time_features, hidden)
        self.blocks = nn.ModuleList(
            [nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden)) for _ in range(num_layers)]
        )
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        t = (timestep.to(x.dtype) / 1000).reshape(-1, 1).expand(x.shape[0], 1)  # (B, 1)
        angles = t * self.freqs.to(x.dtype)  # (B, F/2)
        h = self.inp(torch.cat([x, torch.sin(angles), torch.cos(angles)], dim=1))  # (B, H)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


def gmm_teacher(gmm: GaussianMixtureFlow) -> ScoreModel:
    """The exact flow teacher of ``gmm`` as a ``ScoreModel`` (float64, no parameters)."""
    return ScoreModel(GMMVelocity(gmm), "flow", call=lambda net, x, timestep, cond: net(x, timestep))


def gmm_8d(seed: int = 0) -> GaussianMixtureFlow:
    """An 8-D benchmark target: 6 components with means on random +-2 vertices and stds in [0.3, 0.6]."""
    gen = torch.Generator().manual_seed(seed)
    means = 2.0 * (2 * torch.randint(0, 2, (6, 8), generator=gen) - 1).double()
    stds = 0.3 + 0.3 * torch.rand(6, 8, generator=gen, dtype=torch.float64)
    weights = 1.0 + torch.rand(6, generator=gen, dtype=torch.float64)
    return GaussianMixtureFlow(means, stds, weights)


def fit_to_teacher(
    mlp: ToyFlowMLP,
    teacher: ScoreModel,
    steps: int = 1500,
    batch: int = 512,
    lr: float = 2e-3,
    scale: float = 3.0,
) -> ToyFlowMLP:
    """Regress ``mlp`` on the teacher's velocity, data-free: ``x_t = (1 - t) x0' + t eps``, ``x0' ~ N(0, scale^2 I)``."""
    opt = torch.optim.Adam(mlp.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    dim = mlp.config.dim
    for _ in range(steps):
        t = torch.rand(batch)
        t = torch.where(torch.rand(batch) < 0.1, torch.ones_like(t), t)  # t = 1 is the generator's input
        x_t = (1 - t[:, None]) * scale * torch.randn(batch, dim) + t[:, None] * torch.randn(batch, dim)
        with torch.no_grad():
            target = teacher.predict(x_t.double(), t.double()).float()
        loss = nn.functional.mse_loss(mlp(x_t, t * 1000), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return mlp


def _distances(samples: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    return {"sw2": sliced_wasserstein2(samples, truth), "mmd2": mmd2(samples, truth)}


def run_toy(
    gmm: GaussianMixtureFlow,
    steps: int = 2000,
    batch: int = 256,
    config: SIMConfig | None = None,
    fit_steps: int = 1500,
    hidden: int = 128,
    num_eval: int = 2000,
    teacher_steps: tuple[int, ...] = (1, 4, 32),
    seed: int = 0,
) -> dict[str, Any]:
    """Distill the exact teacher of ``gmm`` with SIM; distances to the mixture of the one-step generator
    (``sim_1``, EMA weights when ``config.ema_decay`` is set; ``sim_init_1`` before SIM) and of the teacher with
    ``n`` Euler steps (``teacher_n``); ``config`` defaults to ``TOY_CONFIG``. Returns ``{"metrics", "samples",
    "history"}``, the history holding the losses and the EMA generator's distances ten times during training."""
    torch.manual_seed(seed)
    config = config or TOY_CONFIG
    teacher = gmm_teacher(gmm)
    mlp = fit_to_teacher(ToyFlowMLP(dim=gmm.dim, hidden=hidden), teacher, steps=fit_steps)
    sim = SIMDistiller(
        teacher, config, generator=ScoreModel(copy.deepcopy(mlp)), fake_score=ScoreModel(copy.deepcopy(mlp))
    )
    truth = gmm.sample_data(num_eval, seed=seed + 1).float()
    z_eval = gmm.sample_noise(num_eval, seed=seed + 2).float()
    samples = {"truth": truth}
    for n in teacher_steps:
        samples[f"teacher_{n}"] = sample_euler(
            gmm.velocity, z_eval.double(), get_sigmas_uniform(n).double(), disable=True
        ).float()
    with torch.no_grad():
        samples["sim_init_1"] = sim.generate(z_eval)
    history = []
    for step in range(1, steps + 1):
        losses = sim.train_step(torch.randn(batch, gmm.dim))
        if step % max(1, steps // 10) == 0:
            with torch.no_grad():
                history.append(
                    {"step": step, **losses, **_distances(sim.generate(z_eval, use_ema=True), truth)}
                )
    with torch.no_grad():
        samples["sim_1"] = sim.generate(z_eval, use_ema=True)
    metrics = {name: _distances(x, truth) for name, x in samples.items() if name != "truth"}
    return {"metrics": metrics, "samples": samples, "history": history}
