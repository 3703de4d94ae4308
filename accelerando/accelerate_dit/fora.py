"""FORA: fast-forward caching of attention and MLP outputs across denoising steps (Selvaraju et al., 2024).

Each block's attention and MLP sub-modules are wrapped. At a refresh step they run and their outputs (before the
block's gates, which the block applies itself) are cached; for the next ``interval - 1`` steps the wrapper returns
the cache instead of running them. The block still computes its norms, shift / scale / gates from the current
conditioning, and the embedders and final layer always run. Joint attention (SD3, Flux) returns a tuple
``(image, text)``, cached as a tuple; a classifier-free guidance batch ``(2B, ...)`` is cached as one tensor.

Beyond FORA, ``forecast="taylor1"`` (after TaylorSeer, Liu et al., arXiv 2503.06923) extrapolates instead of
repeating: from the last two refreshed outputs ``y0`` (timestep ``t0``) and ``y1`` (``t1``), a cached step at
``t`` returns ``y1 + (y1 - y0) * (t - t1) / (t1 - t0)``, a first-order forecast at the same compute as FORA
(it needs one extra cached copy per sub-module). Until two refreshes exist it repeats ``y1``.

Step bookkeeping (``_hooks.StepTracker``): a call whose timestep is larger than the previous one starts a new
generation and clears the caches; calls with an equal timestep (a separate unconditional pass) use their own
cache slot. Under ``torch.compile`` the refresh decision runs outside the graph (a graph break per wrapped call).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from accelerando.accelerate_dit._hooks import StepTracker, SubmoduleHook, attach_plugin
from accelerando.accelerate_dit._registry import SLOTS, find_blocks

__all__ = ["FORA_HOOK", "FORECASTS", "FORAConfig", "FORAHook", "FORAState", "apply_fora"]

FORA_HOOK = "fora"
FORECASTS = ("none", "taylor1")


@dataclass
class FORAConfig:
    """Feature caching settings (FORA, https://arxiv.org/abs/2407.01425).

    Attributes:
        interval: ``N``: compute at every ``N``-th step (after warm-up) and reuse for the ``N - 1`` steps between.
            ``1`` is exactly the baseline.
        warmup_steps: the first steps of each generation always compute (their outputs fill the cache).
        block_intervals: per-block intervals overriding ``interval``: a sequence with one entry per block
            (forward order; Flux double then single blocks) or a mapping ``{block index: interval}``.
        forecast: ``"none"`` (FORA: repeat the cache) or ``"taylor1"`` (first-order forecast from the last two
            refreshes, TaylorSeer-style).
        slots: which sub-modules are cached: ``"attn"``, ``"cross_attn"``, ``"mlp"``, ``"context_mlp"``.

    Example::

        import torch
        from diffusers import FlowMatchEulerDiscreteScheduler
        from accelerando.accelerate_dit import FORAConfig, apply_fora, remove_acceleration
        from accelerando.generation import MelDiT, MelDiTPipeline

        pipe = MelDiTPipeline(MelDiT.from_preset("small"), FlowMatchEulerDiscreteScheduler())
        apply_fora(pipe.transformer, FORAConfig(interval=3, warmup_steps=2, forecast="taylor1"))
        out = pipe(instrument="Violin", pitch=67, num_inference_steps=16, guidance_scale=3.0)
        remove_acceleration(pipe.transformer)
    """

    interval: int = 2
    warmup_steps: int = 0
    block_intervals: Sequence[int] | Mapping[int, int] | None = None
    forecast: str = "none"
    slots: tuple[str, ...] = field(default=SLOTS)

    def __post_init__(self) -> None:
        intervals = [self.interval]
        if isinstance(self.block_intervals, Mapping):
            intervals += list(self.block_intervals.values())
        elif self.block_intervals is not None:
            intervals += list(self.block_intervals)
        for interval in intervals:
            if isinstance(interval, bool) or int(interval) != interval or interval < 1:
                raise ValueError(f"FORA interval {interval!r} is not accepted: use an integer >= 1.")
        if self.warmup_steps < 0:
            raise ValueError(f"FORA warmup_steps must be >= 0, got {self.warmup_steps}.")
        if self.forecast not in FORECASTS:
            raise ValueError(f"FORA forecast {self.forecast!r} is not supported; choose one of {FORECASTS}.")
        unknown = [s for s in self.slots if s not in SLOTS]
        if unknown:
            raise ValueError(f"FORA slots {unknown} are not known; choose among {SLOTS}.")

    def interval_for(self, index: int, num_blocks: int) -> int:
        """The interval of block ``index``."""
        if self.block_intervals is None:
            return int(self.interval)
        if isinstance(self.block_intervals, Mapping):
            return int(self.block_intervals.get(index, self.interval))
        if len(self.block_intervals) != num_blocks:
            raise ValueError(
                f"block_intervals has {len(self.block_intervals)} entries but the model has {num_blocks} blocks."
            )
        return int(self.block_intervals[index])


@dataclass
class _Entry:
    """The last two refreshed outputs of one sub-module in one cache slot, with their steps and timesteps."""

    output: Any
    step: int
    timestep: float | None
    previous: Any = None
    previous_step: int | None = None
    previous_timestep: float | None = None


class FORAState:
    """Caches of every wrapped sub-module (keyed by module id and call slot) and compute counters."""

    def __init__(self) -> None:
        self.entries: dict[tuple[int, int], _Entry] = {}
        self.computed = 0
        self.reused = 0

    def reset(self) -> None:
        self.entries.clear()
        self.computed = 0
        self.reused = 0


def _map(fn: Any, *values: Any) -> Any:
    """Apply ``fn`` to tensors, element-wise through tuples (joint attention); ``None`` stays ``None``."""
    first = values[0]
    if isinstance(first, tuple):
        return tuple(_map(fn, *parts) for parts in zip(*values, strict=True))
    if first is None:
        return None
    return fn(*values)


def _batch_size(value: Any) -> int | None:
    if isinstance(value, tuple):
        value = value[0]
    return value.shape[0] if isinstance(value, torch.Tensor) else None


class FORAHook(SubmoduleHook):
    """Returns the cached (or forecast) output of one sub-module on non-refresh steps."""

    priority = 0  # outside ToMe
    tracker: StepTracker

    def __init__(self, config: FORAConfig, interval: int, hidden_arg: str, state: FORAState) -> None:
        self.config = config
        self.interval = interval
        self.hidden_arg = hidden_arg
        self.state = state

    @torch.compiler.disable
    def _cached_entry(self, module: nn.Module, batch: int | None) -> _Entry | None:
        """The entry to reuse at this step, or ``None`` when the sub-module must compute."""
        step, slot = self.tracker.step, self.tracker.slot
        entry = self.state.entries.get((id(module), slot))
        if entry is None or step < self.config.warmup_steps or batch != _batch_size(entry.output):
            return None
        if (step - self.config.warmup_steps) % self.interval == 0:
            return None
        return entry

    @torch.compiler.disable
    def _store(self, module: nn.Module, output: Any) -> None:
        key = (id(module), self.tracker.slot)
        old = self.state.entries.get(key)
        entry = _Entry(output, self.tracker.step, self.tracker.timestep)
        if old is not None and self.config.forecast != "none":
            entry.previous, entry.previous_step, entry.previous_timestep = old.output, old.step, old.timestep
        self.state.entries[key] = entry
        self.state.computed += 1

    @torch.compiler.disable
    def _forecast_weight(self, entry: _Entry) -> float | None:
        """``(t - t1) / (t1 - t0)`` for the first-order forecast (steps stand in for missing timesteps)."""
        self.state.reused += 1
        if self.config.forecast == "none" or entry.previous is None:
            return None
        t, t1, t0 = self.tracker.timestep, entry.timestep, entry.previous_timestep
        if t is None or t1 is None or t0 is None or t1 == t0:
            t, t1, t0 = float(self.tracker.step), float(entry.step), float(entry.previous_step)
        return (t - t1) / (t1 - t0)

    def new_forward(self, module: nn.Module, forward: Any, *args: Any, **kwargs: Any) -> Any:
        hidden = args[0] if args else kwargs.get(self.hidden_arg)
        batch = hidden.shape[0] if isinstance(hidden, torch.Tensor) else None
        entry = self._cached_entry(module, batch)
        if entry is None:
            output = forward(*args, **kwargs)
            self._store(module, output)
            return output
        weight = self._forecast_weight(entry)
        if weight is None:
            return entry.output
        return _map(lambda y1, y0: y1 + (y1 - y0) * weight, entry.output, entry.previous)


def apply_fora(model: nn.Module, config: FORAConfig | None = None) -> FORAState:
    """Apply FORA caching to every supported block of ``model`` (MelDiT or a diffusers transformer).

    Returns the shared ``FORAState`` (``computed`` / ``reused`` count sub-module calls since the last reset).
    Raises ``TypeError`` for an unsupported model and ``ValueError`` when FORA is already applied.
    """
    config = config or FORAConfig()
    blocks = find_blocks(model)
    state = FORAState()
    hooks: list[tuple[nn.Module, SubmoduleHook]] = []
    for found in blocks:
        interval = config.interval_for(found.index, len(blocks))
        for slot in config.slots:
            for _, module in found.submodules(slot):
                hooks.append((module, FORAHook(config, interval, found.spec.hidden_arg, state)))
    attach_plugin(model, FORA_HOOK, hooks, [state])
    return state
