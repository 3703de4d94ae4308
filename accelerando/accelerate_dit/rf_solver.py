"""RF-Solver: a second-order flow sampler as a diffusers scheduler, exact-ish inversion, and RF-Edit.

Wang et al., "Taming Rectified Flow for Inversion and Editing" (RF-Solver / RF-Edit, arXiv 2411.04746):

- **RF-Solver** integrates the flow ODE ``dx/dsigma = v(x, sigma)`` with a Taylor step whose velocity derivative
  is a finite difference at the half step; that step is algebraically the explicit midpoint method (see
  ``accelerando.generation.sample_rf_solver``, orders 2 and 3, and ``sample_fireflow`` for FireFlow's one
  evaluation per step).
- ``RFSolverScheduler`` is the same step as a diffusers scheduler: a drop-in for
  ``FlowMatchEulerDiscreteScheduler`` (same config, shifts and ``set_timesteps``) that asks the pipeline for two
  model calls per step by interleaving midpoint timesteps, the way ``FlowMatchHeunDiscreteScheduler`` does.
- ``rf_solver_invert`` runs the solver backwards (data -> noise) on the reversed schedule.
- ``rf_edit`` edits a MelDiT note: invert the source under its condition while storing the attention values
  ``V`` of chosen blocks at every model call, then regenerate under the target condition, substituting the stored
  ``V`` in those blocks for the first ``inject_steps`` steps (the paper's "feature sharing").

Example::

    from accelerando.accelerate_dit import RFSolverScheduler, rf_edit
    from accelerando.generation import MelDiTPipeline

    pipe = MelDiTPipeline.from_pretrained("out/meldit-pipe")
    pipe.scheduler = RFSolverScheduler.from_config(pipe.scheduler.config)  # 2 model calls per step
    note = pipe(instrument="Violin", pitch=67, num_inference_steps=8, output_type="pt").mels
    flute = rf_edit(pipe, note, {"instrument": "Violin", "pitch": 67, "velocity": 100},
                    {"instrument": "Flute", "pitch": 67, "velocity": 100}).mels  # (1, 80, frames)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.utils import BaseOutput
from torch import nn

from accelerando.generation.sampling import flow_model_wrapper
from accelerando.samplers import (
    FlowModel,
    get_sigmas_shifted,
    sample_euler,
    sample_fireflow,
    sample_rf_solver,
)

__all__ = [
    "RFEditConfig",
    "RFSolverScheduler",
    "RFSolverSchedulerOutput",
    "ValueSharing",
    "rf_edit",
    "rf_solver_invert",
]

INVERSION_SOLVERS = ("rf_solver", "rf_solver_3", "fireflow", "euler")


@dataclass
class RFSolverSchedulerOutput(BaseOutput):
    """Output of ``RFSolverScheduler.step``: ``prev_sample``, the next model input (or the step's result)."""

    prev_sample: torch.Tensor


class RFSolverScheduler(FlowMatchEulerDiscreteScheduler):
    """RF-Solver (second order, arXiv 2411.04746) as a diffusers flow-matching scheduler.

    A drop-in for ``FlowMatchEulerDiscreteScheduler``: it takes the same config (``shift``,
    ``use_dynamic_shifting`` with ``mu``, ``shift_terminal``, Karras / exponential / beta sigmas, ...) and the same
    ``set_timesteps(num_inference_steps, device, sigmas, mu, timesteps)``; ``RFSolverScheduler.from_config(
    pipe.scheduler.config)`` swaps it into any flow-matching pipeline. Each of the ``n`` steps ``sigma_i ->
    sigma_{i+1}`` needs two model calls, so ``timesteps`` interleaves the grid with the midpoints::

        timesteps = [t_0, t_0.5, t_1, t_1.5, ..., t_{n-1}, t_{n-0.5}]   (2n values, order = 2)
        sigmas    = [s_0, s_0.5, s_1, ..., s_{n-0.5}, 0]                 (2n + 1 values)

    ``step`` at a grid timestep stores ``x_i`` and ``v_i`` and returns the midpoint state ``x_i + h/2 · v_i``
    (``h = sigma_{i+1} - sigma_i``), which the pipeline feeds back to the model at the midpoint timestep; ``step``
    there returns ``x_i + h · v_mid``, the RF-Solver / midpoint update. Unlike Heun, the last step to ``sigma = 0``
    is second order too. Stochastic sampling and per-token timesteps are not supported.
    """

    order = 2
    _x_start: torch.Tensor | None = None  # x_i between a step's two calls; None before its first call

    @property
    def state_in_first_order(self) -> bool:
        """True before a step's first model call (at a grid timestep), False before its midpoint call."""
        return self._x_start is None

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        sigmas: list[float] | None = None,
        mu: float | None = None,
        timesteps: list[float] | None = None,
    ) -> None:
        """Compute the grid as ``FlowMatchEulerDiscreteScheduler`` does, then interleave the midpoints."""
        if self.config.stochastic_sampling:
            raise ValueError(
                "RFSolverScheduler is a deterministic ODE solver; stochastic_sampling=True is not supported."
            )
        super().set_timesteps(num_inference_steps, device=device, sigmas=sigmas, mu=mu, timesteps=timesteps)
        grid_sigmas = self.sigmas  # (n + 1,), last is the terminal value
        grid_t = self.timesteps  # (n,)
        mid_sigmas = (grid_sigmas[:-1] + grid_sigmas[1:]) / 2  # (n,)
        terminal_t = grid_sigmas[-1:].to(grid_t.dtype) * self.config.num_train_timesteps
        next_t = torch.cat([grid_t[1:], terminal_t.to(grid_t.device)])
        mid_t = (grid_t + next_t) / 2
        self.timesteps = torch.stack([grid_t, mid_t], dim=1).flatten()  # (2n,)
        self.sigmas = torch.cat(
            [torch.stack([grid_sigmas[:-1], mid_sigmas], dim=1).flatten(), grid_sigmas[-1:]]
        )
        self._x_start = None

    def step(
        self,
        model_output: torch.Tensor,
        timestep: float | torch.Tensor,
        sample: torch.Tensor,
        s_churn: float = 0.0,
        s_tmin: float = 0.0,
        s_tmax: float = float("inf"),
        s_noise: float = 1.0,
        generator: torch.Generator | None = None,
        per_token_timesteps: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> RFSolverSchedulerOutput | tuple[torch.Tensor]:
        """One half of an RF-Solver step (``model_output`` is the velocity ``noise - x0`` at ``timestep``).

        The ``s_*`` and ``generator`` arguments exist for signature compatibility and are ignored (no churn).
        """
        if isinstance(timestep, int) or (
            isinstance(timestep, torch.Tensor) and not timestep.is_floating_point()
        ):
            raise ValueError(
                "Pass one of `scheduler.timesteps` to RFSolverScheduler.step(), not an integer index from enumerate()."
            )
        if per_token_timesteps is not None:
            raise ValueError("RFSolverScheduler does not support per_token_timesteps.")
        if self.step_index is None:
            self._init_step_index(timestep)
        k = self.step_index
        if k >= len(self.timesteps):
            raise RuntimeError(
                f"RFSolverScheduler.step() was called {k + 1} times for {len(self.timesteps)} timesteps."
            )
        sample32 = sample.to(torch.float32)
        velocity = model_output.to(torch.float32)
        if k % 2 == 0:  # grid point: store x_i, v_i and move to the midpoint
            h = self.sigmas[k + 2] - self.sigmas[k]
            self._x_start = sample32
            prev_sample = sample32 + (h / 2) * velocity
        else:  # midpoint: the full step with the midpoint velocity
            if self._x_start is None:
                raise RuntimeError(
                    "RFSolverScheduler.step() at a midpoint timestep without its grid step before it."
                )
            h = self.sigmas[k + 1] - self.sigmas[k - 1]
            prev_sample = self._x_start + h * velocity
            self._x_start = None
        prev_sample = prev_sample.to(model_output.dtype)
        self._step_index += 1
        if not return_dict:
            return (prev_sample,)
        return RFSolverSchedulerOutput(prev_sample=prev_sample)


@torch.no_grad()
def rf_solver_invert(
    model: FlowModel,
    x0: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict | None = None,
    callback=None,
    disable=None,
    solver: str = "rf_solver",
) -> torch.Tensor:
    """Map data ``x0`` to noise by running a flow solver backwards (RF-Solver inversion, arXiv 2411.04746).

    Args:
        model: ``model(x, sigma, **extra_args) -> velocity`` (``flow_model_wrapper`` for a MelDiT; use the source
            condition and no guidance).
        x0: data at ``sigmas[-1]`` (normally 0).
        sigmas: the **sampling** schedule, decreasing (e.g. ``get_sigmas_shifted(n)``); it is run reversed, so
            sampling the result with the same solver and ``sigmas`` regenerates ``x0`` up to the solver's error.
        solver: ``"rf_solver"`` (order 2, 2 evaluations per step), ``"rf_solver_3"`` (order 3, 3 per step),
            ``"fireflow"`` (order 2, 1 per step) or ``"euler"`` (plain ReFlow inversion, order 1).

    Returns:
        The noise estimate at ``sigmas[0]``, same shape as ``x0``.
    """
    if solver not in INVERSION_SOLVERS:
        raise ValueError(f"Unknown inversion solver {solver!r}; choose one of {INVERSION_SOLVERS}.")
    if len(sigmas) < 2 or not bool((sigmas[1:] < sigmas[:-1]).all()):
        raise ValueError(
            "sigmas must be the decreasing sampling schedule (it is reversed for the inversion)."
        )
    rev = sigmas.flip(0)
    kwargs = {"extra_args": extra_args, "callback": callback, "disable": disable}
    if solver == "rf_solver":
        return sample_rf_solver(model, x0, rev, **kwargs)
    if solver == "rf_solver_3":
        return sample_rf_solver(model, x0, rev, order=3, **kwargs)
    if solver == "fireflow":
        return sample_fireflow(model, x0, rev, **kwargs)
    return sample_euler(model, x0, rev, **kwargs)


@dataclass
class RFEditConfig:
    """Settings of RF-Edit (Wang et al., arXiv 2411.04746, Sec. 4: feature sharing in the attention values).

    Attributes:
        num_steps: RF-Solver steps of both the inversion and the regeneration (2 model calls each).
        inject_steps: the first ``inject_steps`` regeneration steps use the source's stored ``V`` in
            ``inject_blocks``. More keeps more of the source (timing, pitch contour, envelope), fewer lets the
            target condition change more. The paper uses 2-5 of 25 steps on FLUX (2 of 25 end the sharing at
            sigma ~0.96 on FLUX's shifted schedule); ``2`` of ``num_steps=16`` here, or ``1`` of 8, ends it at
            sigma 0.954 with ``shift=3``.
        inject_blocks: indices into ``transformer_blocks`` whose ``attn1`` values are shared; ``None`` means the
            second half of the blocks (the paper shares the last 18 of FLUX's 38 single-stream blocks).
        shift: SD3 schedule shift of the sigmas (``get_sigmas_shifted``); ``1.0`` is uniform.
        guidance_scale: classifier-free guidance of the regeneration (the inversion always uses 1, as in the
            paper). With guidance the stored values are shared by the conditional and unconditional rows.

    Example::

        cfg = RFEditConfig(num_steps=16, inject_steps=3, inject_blocks=[4, 5])
        out = rf_edit(pipe, mel, {"instrument": "Violin", "pitch": 67, "velocity": 90},
                      {"instrument": "Flute", "pitch": 67, "velocity": 90}, config=cfg)
    """

    num_steps: int = 16
    inject_steps: int = 2
    inject_blocks: list[int] | None = None
    shift: float = 3.0
    guidance_scale: float = 1.0

    def resolve_blocks(self, num_blocks: int) -> list[int]:
        """The block indices to share, checked against a model with ``num_blocks`` blocks."""
        blocks = (
            list(range(num_blocks // 2, num_blocks))
            if self.inject_blocks is None
            else list(self.inject_blocks)
        )
        bad = [b for b in blocks if not isinstance(b, int) or not 0 <= b < num_blocks]
        if bad:
            raise ValueError(
                f"inject_blocks {bad} are out of range: the model has blocks 0..{num_blocks - 1}."
            )
        return blocks


class ValueSharing:
    """Stores or substitutes the attention values ``V`` (the output of ``attn.to_v``) of chosen attention modules.

    A forward hook on each ``to_v`` projection, so it works with any attention processor that calls
    ``attn.to_v`` (diffusers' ``AttnProcessor2_0``, and the processors of SD3 / FLUX / PixArt attention). The
    caller sets ``key`` before every model call; ``mode`` is ``"store"``, ``"inject"`` or ``"off"``. In
    ``"inject"`` mode a stored value for the current ``key`` replaces ``V`` (repeated along the batch when the
    model runs a classifier-free-guidance batch of twice the rows).

    Use as a context manager: the hooks are removed on exit.
    """

    def __init__(self, attentions: Iterable[nn.Module]):
        self.attentions = list(attentions)
        self.bank: dict[tuple, torch.Tensor] = {}
        self.mode = "off"
        self.key: tuple | None = None
        self._handles: list[Any] = []

    def __enter__(self) -> ValueSharing:
        for idx, attn in enumerate(self.attentions):
            self._handles.append(attn.to_v.register_forward_hook(self._hook(idx)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, idx: int):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
            if self.key is None or self.mode == "off":
                return None
            key = (*self.key, idx)
            if self.mode == "store":
                self.bank[key] = output.detach().clone()
                return None
            stored = self.bank.get(key)
            if stored is None:
                return None
            if stored.shape[0] != output.shape[0]:
                stored = stored.repeat(output.shape[0] // stored.shape[0], *([1] * (stored.ndim - 1)))
            return stored.to(output.dtype)

        return hook


def _labels(pipe: Any, condition: Mapping[str, Any] | None, batch_size: int, device: torch.device):
    from accelerando.generation.mel_dit import NULL_LABEL

    if condition is None:  # unconditional: the null label for program, pitch and velocity together
        null = torch.full((batch_size,), NULL_LABEL, dtype=torch.long, device=device)
        return null, null, null
    unknown = set(condition) - {"instrument", "pitch", "velocity"}
    if unknown:
        raise ValueError(
            f"Unknown condition keys {sorted(unknown)}; use 'instrument', 'pitch' and 'velocity'."
        )
    labels = pipe.prepare_labels(
        condition.get("instrument", 0), condition.get("pitch", 60), condition.get("velocity", 100), device
    )
    if labels[0].shape[0] == 1 and batch_size > 1:
        labels = tuple(v.expand(batch_size) for v in labels)
    if labels[0].shape[0] != batch_size:
        raise ValueError(f"The condition has {labels[0].shape[0]} notes but source_mel has {batch_size}.")
    return labels


@torch.no_grad()
def rf_edit(
    pipe: Any,
    source_mel: torch.Tensor,
    source_condition: Mapping[str, Any] | None,
    target_condition: Mapping[str, Any] | None,
    num_steps: int | None = None,
    inject_steps: int | None = None,
    inject_blocks: list[int] | None = None,
    config: RFEditConfig | None = None,
) -> Any:
    """RF-Edit of MelDiT notes: RF-Solver inversion with ``V`` storage, then regeneration with ``V`` sharing.

    Args:
        pipe: a ``MelDiTPipeline`` (its ``transformer``, and its ``vocoder`` if any, are used; not its scheduler).
        source_mel: ``(B, n_mels, frames)`` natural-log mels (``MelConfig`` units), frames a multiple of the
            patch width.
        source_condition, target_condition: ``{"instrument": name or program, "pitch": midi, "velocity": midi}``
            (scalars or per-note lists, as in the pipeline call), or ``None`` for the unconditional labels.
        num_steps, inject_steps, inject_blocks: override the fields of ``config`` (see ``RFEditConfig``).

    Returns:
        ``MelDiTPipelineOutput`` with ``mels`` ``(B, n_mels, frames)`` tensors and ``audios`` from the pipeline's
        vocoder (or ``None``).
    """
    from accelerando.generation.pipeline import MelDiTPipelineOutput

    config = config or RFEditConfig()
    num_steps = config.num_steps if num_steps is None else num_steps
    inject_steps = config.inject_steps if inject_steps is None else inject_steps
    if num_steps < 1:
        raise ValueError(f"num_steps must be at least 1, got {num_steps}.")
    if not 0 <= inject_steps <= num_steps:
        raise ValueError(f"inject_steps must be in 0..num_steps ({num_steps}), got {inject_steps}.")
    transformer = pipe.transformer
    blocks_cfg = RFEditConfig(inject_blocks=config.inject_blocks if inject_blocks is None else inject_blocks)
    blocks = blocks_cfg.resolve_blocks(len(transformer.transformer_blocks))
    if source_mel.ndim != 3 or source_mel.shape[1] != transformer.config.n_mels:
        raise ValueError(
            f"source_mel must be (B, {transformer.config.n_mels}, frames) log-mels, got {tuple(source_mel.shape)}."
        )
    device = transformer.device
    batch_size = source_mel.shape[0]
    src_labels = _labels(pipe, source_condition, batch_size, device)
    tgt_labels = _labels(pipe, target_condition, batch_size, device)

    x0 = transformer.normalize_mel(source_mel.to(device=device, dtype=torch.float32))[:, None]  # (B, 1, M, T)
    sigmas = get_sigmas_shifted(num_steps, shift=config.shift, device=device)
    attentions = [transformer.transformer_blocks[b].attn1 for b in blocks]

    with ValueSharing(attentions) as sharing:
        # RF-Solver-2 calls the model twice per step (grid point, then midpoint). Inversion step j runs the same
        # interval as regeneration step num_steps - 1 - j, so both key the values by (regeneration step, call).
        calls = {"n": 0}

        def keyed(model: FlowModel, inverse: bool) -> FlowModel:
            def fn(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
                j, stage = divmod(calls["n"], 2)
                step = num_steps - 1 - j if inverse else j
                sharing.key = (step, stage) if step < inject_steps else None
                calls["n"] += 1
                return model(x, sigma)

            return fn

        sharing.mode = "store"
        noise = rf_solver_invert(
            keyed(flow_model_wrapper(transformer, *src_labels), True), x0, sigmas, disable=True
        )
        calls["n"] = 0
        sharing.mode = "inject"
        regen = keyed(
            flow_model_wrapper(transformer, *tgt_labels, guidance_scale=config.guidance_scale), False
        )
        x = sample_rf_solver(regen, noise, sigmas, disable=True)

    mels = transformer.denormalize_mel(x.float())[:, 0]  # (B, n_mels, frames)
    audios = pipe.vocoder.synthesize(mels) if getattr(pipe, "vocoder", None) is not None else None
    return MelDiTPipelineOutput(mels=mels, audios=audios)
