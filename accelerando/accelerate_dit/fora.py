"""FORA: fast-forward caching of attention and MLP outputs across denoising steps (Selvaraju et al., 2024).

Each block's attention and MLP sub-modules are wrapped. At a refresh step they run and their outputs (before the
block's gates, which the block applies itself) are cached; on the other steps the cache is reused. The block
still computes its shift / scale / gates from the current conditioning, and the embedders and final layer always
run. Joint attention (SD3, Flux) returns a tuple ``(image, text)``, cached as a tuple; a classifier-free guidance
batch ``(2B, ...)`` is cached as one tensor.

Cached steps cost only the conditioning: for blocks with a registered fast path (MelDiT), a step on which every
wrapped sub-module of a block reuses its cache skips the block's norms and modulation too and runs only the adaLN
gates and the residual adds (``_registry.BlockSpec.cached_forward``, bit-identical to the generic route). Other
blocks still run their norms, whose outputs then go unused.

When to refresh: every ``interval`` steps (FORA), per-block intervals, or explicit per-block steps
(``refresh_steps``). What to reuse: the cache as is (FORA), or a Taylor forecast (after TaylorSeer, Liu et al.,
arXiv 2503.06923, but in the timestep rather than the step count, so uneven schedules such as shifted flow-matching
ones are followed): ``forecast="taylor1"`` extrapolates along the line through the last two refreshed outputs,
``y1 + (t - t1) * (y1 - y0) / (t1 - t0)``; ``"taylor2"`` through the last three (Newton form). The divided
differences are formed once per refresh, so a forecast costs one fused ``add`` per order on a cached step, at the
same number of attention / MLP calls as FORA. Measured on the trained MelDiT (``benchmarks/dit_plugins_quality.py``),
``"taylor1"`` is the improvement that wins: at every interval it stays much closer to the uncached output than
FORA's repeated cache (N = 3: mel L1 0.04 vs 0.22, about 5x lower) for 1-8% of speed, whereas calibrated per-block
refresh steps did not beat FORA's uniform ones; ``"taylor2"`` helped only at N = 2 (a 16-note check).

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
FORECASTS = ("none", "taylor1", "taylor2")


@dataclass
class FORAConfig:
    """Feature caching settings (FORA, https://arxiv.org/abs/2407.01425).

    Attributes:
        interval: ``N``: compute at every ``N``-th step (after warm-up) and reuse for the ``N - 1`` steps between.
            ``1`` is exactly the baseline.
        warmup_steps: the first steps of each generation always compute (their outputs fill the cache).
        block_intervals: per-block intervals overriding ``interval``: a sequence with one entry per block
            (forward order; Flux double then single blocks) or a mapping ``{block index: interval}``.
        refresh_steps: explicit refresh steps overriding the interval rule: one sequence of step indices for
            every block, or per block (a sequence with one sequence per block, or ``{block index: steps}``).
            Step 0 always computes; after a block's last listed step it refreshes every ``interval`` steps.
        forecast: ``"none"`` (FORA: repeat the cache), ``"taylor1"`` (first-order forecast in the timestep from
            the last two refreshes, TaylorSeer-style; the recommended setting) or ``"taylor2"`` (second order).
        slots: which sub-modules are cached: ``"attn"``, ``"cross_attn"``, ``"mlp"``, ``"context_mlp"``.

    Example::

        import torch
        from diffusers import FlowMatchEulerDiscreteScheduler
        from accelerando.accelerate_dit import FORAConfig, apply_fora, remove_acceleration
        from accelerando.generation import MelDiT, MelDiTPipeline

        pipe = MelDiTPipeline(MelDiT.from_preset("small"), FlowMatchEulerDiscreteScheduler())
        apply_fora(pipe.transformer, FORAConfig(interval=3, forecast="taylor1"))
        out = pipe(instrument="Violin", pitch=67, num_inference_steps=16)
        remove_acceleration(pipe.transformer)
    """

    interval: int = 2
    warmup_steps: int = 0
    block_intervals: Sequence[int] | Mapping[int, int] | None = None
    refresh_steps: Sequence[int] | Sequence[Sequence[int]] | Mapping[int, Sequence[int]] | None = None
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
        for steps in self._step_lists():
            bad = [s for s in steps if isinstance(s, bool) or int(s) != s or s < 0]
            if bad:
                raise ValueError(f"FORA refresh_steps must be step indices >= 0, got {bad}.")

    def _step_lists(self) -> list[Sequence[int]]:
        steps = self.refresh_steps
        if steps is None:
            return []
        if isinstance(steps, Mapping):
            return list(steps.values())
        if all(isinstance(s, Sequence) for s in steps) and len(steps) > 0:
            return list(steps)
        return [steps]

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

    def refresh_steps_for(self, index: int, num_blocks: int) -> frozenset[int] | None:
        """The explicit refresh steps of block ``index`` (``None``: the interval rule)."""
        steps = self.refresh_steps
        if steps is None:
            return None
        if isinstance(steps, Mapping):
            return frozenset(int(s) for s in steps[index]) if index in steps else None
        if len(steps) and all(isinstance(s, Sequence) for s in steps):
            if len(steps) != num_blocks:
                raise ValueError(
                    f"refresh_steps has {len(steps)} entries but the model has {num_blocks} blocks."
                )
            return frozenset(int(s) for s in steps[index])
        return frozenset(int(s) for s in steps)


@dataclass(frozen=True)
class _Schedule:
    """When one block refreshes: listed steps (then every ``interval`` after the last), else every ``interval``."""

    interval: int
    warmup_steps: int
    steps: frozenset[int] | None = None

    def refreshes(self, step: int) -> bool:
        if step < self.warmup_steps:
            return True
        if self.steps is None:
            return (step - self.warmup_steps) % self.interval == 0
        last = max(self.steps, default=0)
        return step in self.steps or (step > last and (step - last) % self.interval == 0)


@dataclass
class _Entry:
    """One sub-module's cache in one call slot: the Newton form of the polynomial through its last refreshes.

    ``coeffs[0]`` is the last refreshed output; ``coeffs[j]`` the ``j``-th divided difference over the refresh
    positions ``nodes`` (most recent first), so the forecast at ``x`` is
    ``c0 + (x - n0) * (c1 + (x - n1) * (c2 + ...))``. FORA keeps ``c0`` only.
    """

    coeffs: list[Any]
    nodes: list[float]
    step: int

    @property
    def output(self) -> Any:
        return self.coeffs[0]


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

    def __init__(self, config: FORAConfig, schedule: _Schedule, hidden_arg: str, state: FORAState) -> None:
        self.config = config
        self.order = FORECASTS.index(config.forecast)
        self.schedule = schedule
        self.hidden_arg = hidden_arg
        self.state = state

    @torch.compiler.disable
    def lookup(self, module: nn.Module, batch: int | None) -> _Entry | None:
        """The entry to reuse at this step, or ``None`` when the sub-module must compute."""
        entry = self.state.entries.get((id(module), self.tracker.slot))
        if entry is None or batch != _batch_size(entry.output) or self.schedule.refreshes(self.tracker.step):
            return None
        return entry

    def _position(self) -> float:
        """Where this step is for the forecast: the timestep (steps when the model gets none)."""
        t = self.tracker.timestep
        return float(self.tracker.step) if t is None else float(t)

    @torch.compiler.disable
    def _store(self, module: nn.Module, output: Any) -> None:
        key = (id(module), self.tracker.slot)
        old = self.state.entries.get(key)
        x = self._position()
        coeffs, nodes = [output], [x]
        # Divided differences with the previous refreshes: c_j = (c_{j-1} - old c_{j-1}) / (x - old node_{j-1}).
        if old is not None and self.order > 0 and old.step < self.tracker.step:
            for j in range(1, min(self.order, len(old.coeffs)) + 1):
                gap = x - old.nodes[j - 1]
                if gap == 0:
                    break
                coeffs.append(
                    _map(lambda new, prev, g=gap: (new - prev) / g, coeffs[j - 1], old.coeffs[j - 1])
                )
                nodes.append(old.nodes[j - 1])
        self.state.entries[key] = _Entry(coeffs, nodes, self.tracker.step)
        self.state.computed += 1

    @torch.compiler.disable
    def _offsets(self, entry: _Entry) -> list[float]:
        """``x - node_j`` for the Horner evaluation of the forecast at this step."""
        self.state.reused += 1
        x = self._position()
        return [x - n for n in entry.nodes[: len(entry.coeffs) - 1]]

    def serve(self, entry: _Entry) -> Any:
        """The output reused at this step: the cache (FORA) or its forecast (one ``add`` per order)."""
        offsets = self._offsets(entry)
        value = entry.coeffs[-1]
        for j in range(len(offsets) - 1, -1, -1):  # Horner: c_j + (x - n_j) * value
            value = _map(lambda c, v, k=offsets[j]: torch.add(c, v, alpha=k), entry.coeffs[j], value)
        return value

    def new_forward(self, module: nn.Module, forward: Any, *args: Any, **kwargs: Any) -> Any:
        hidden = args[0] if args else kwargs.get(self.hidden_arg)
        batch = hidden.shape[0] if isinstance(hidden, torch.Tensor) else None
        entry = self.lookup(module, batch)
        if entry is None:
            output = forward(*args, **kwargs)
            self._store(module, output)
            return output
        return self.serve(entry)


class FORABlockHook(SubmoduleHook):
    """Runs a block's registered fast path (``BlockSpec.cached_forward``) when all its sub-modules reuse caches."""

    priority = 0
    tracker: StepTracker

    def __init__(self, cached_forward: Any, parts: list[tuple[str, nn.Module, FORAHook]]) -> None:
        self.cached_forward = cached_forward
        self.parts = parts  # (attribute name, sub-module, its FORA hook)

    def new_forward(self, module: nn.Module, forward: Any, *args: Any, **kwargs: Any) -> Any:
        hidden = args[0] if args else kwargs.get("hidden_states")
        batch = hidden.shape[0] if isinstance(hidden, torch.Tensor) else None
        entries = []
        for _, submodule, hook in self.parts:
            entry = hook.lookup(submodule, batch)
            if entry is None:  # something refreshes: the block runs as usual (the sub-module hooks cache)
                return forward(*args, **kwargs)
            entries.append(entry)
        cached = {name: hook.serve(entry) for (name, _, hook), entry in zip(self.parts, entries, strict=True)}
        return self.cached_forward(module, cached, *args, **kwargs)


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
        schedule = _Schedule(
            config.interval_for(found.index, len(blocks)),
            config.warmup_steps,
            config.refresh_steps_for(found.index, len(blocks)),
        )
        parts = []
        for slot in config.slots:
            for name, module in found.submodules(slot):
                hook = FORAHook(config, schedule, found.spec.hidden_arg, state)
                hooks.append((module, hook))
                parts.append((name.rsplit(".", 1)[-1], module, hook))
        # The fast path replaces the whole block, so every sub-module it stands for must be cached.
        every_part = [m for slot in SLOTS for _, m in found.submodules(slot)]
        if found.spec.cached_forward is not None and len(parts) == len(every_part) > 0:
            hooks.append((found.block, FORABlockHook(found.spec.cached_forward, parts)))
    attach_plugin(model, FORA_HOOK, hooks, [state])
    return state
