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

Beyond FORA, two options aim at TaylorSeer-class speed (``benchmarks/dit_caching.py``):

- ``level="blocks"`` caches the residual of the whole block stack (the last block's output minus the first block's
  input, TeaCache / MagCache-style) instead of each sub-module: a cached step runs only the embedders, the final
  layer and the forecast (``y = x + r(t)``), about 1-2% of a full step on MelDiT instead of 6.6%, so more of the
  skipped work turns into speed. Blocks that map tokens to tokens (MelDiT, DiT, PixArt, Stable Audio).
- ``level="output"`` caches the model's output itself (the velocity): a cached step runs nothing of the model, only
  the forecast (with ``"taylor1"`` an Adams-Bashforth-like extrapolation of the velocity in the timestep). On the
  trained MelDiT it is the cheapest; at equal model calls the three levels' first-order forecasts stay within about
  3 dB of each other (``benchmarks/results/dit_caching.json``).
- ``threshold`` replaces the fixed intervals by a calibration-free adaptive refresh (after TeaCache, Liu et al.,
  arXiv 2411.19108, without its fitted rescaling): at every step the first block's timestep-modulated input
  ``norm1(x) * (1 + scale) + shift`` is computed (one norm and one small linear layer), its relative L1 change since
  the previous step is accumulated, and the step refreshes once the sum reaches ``threshold`` (then it restarts
  from 0). Fast-moving parts of the trajectory thus refresh more often, with no calibration run. On the bundled
  MelDiT at 8 model calls (threshold 0.14) it is 2-5 dB closer than the uniform ``interval=4`` (46.8 / 43.9 dB at
  batch 1 / 4); on random-weight DiT / PixArt a threshold fit for MelDiT refreshes at nearly every step: the
  threshold is model-specific.

- ``forecast_space="noise"`` (with ``level="output"`` on a rectified-flow model) forecasts the model's noise estimate
  ``x + (1 - s) v`` instead of the velocity and converts it back with the cached step's own input,
  ``v = (forecast - x) / (1 - s)``: the forecast then follows the sample the sampler hands it. It pays where the
  refreshes are front-loaded (the early, high-noise steps computed, long cached runs late); with uniform intervals,
  which forecast the first steps (``1 - s`` near 0), the velocity forecast is better.

On the bundled MelDiT (32 Euler steps, guidance 1) ">= 3.5x at >= 40 dB" is met by
``FORAConfig(level="output", interval=5, forecast="taylor1")``: 7 model calls, 4.60x at 43.6 dB (batch 1) and 4.32x
at 44.9 dB (batch 4) in ``benchmarks/results/dit_caching.json``; ``"taylor2"`` loses to ``"taylor1"`` at every
interval. On the 5000-step checkpoint before it only 8 front-loaded refreshes with the noise-space forecast met it
(``refresh_steps=[0, 2, 3, 5, 8, 12, 20, 29], interval=32``, searched on other notes by
``benchmarks/dit_caching_schedule.py``); they still give 43.4 / 42.9 dB. Such
steps are specific to the guidance they were searched at: at guidance 3 a search on the bundled model finds
``[0, 2, 4, 7, 9, 15, 24, 29]``, 39.4 dB on its check notes (uniform ``interval=4``: 38.1-38.4 dB).

Step bookkeeping (``_hooks.StepTracker``): a call whose timestep is larger than the previous one starts a new
generation and clears the caches; calls with an equal timestep (a separate unconditional pass) use their own
cache slot. Under ``torch.compile`` the refresh decision runs outside the graph (a graph break per wrapped call).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from accelerando.accelerate_dit._fora_cache import (
    AdaptivePolicy,
    Entry,
    FORAOutputHook,
    Schedule,
    StackCache,
    batch_size,
    forecast,
    hidden_input,
    newton_update,
    signal_fn,
    stack_hooks,
)
from accelerando.accelerate_dit._hooks import StepTracker, SubmoduleHook, attach_plugin
from accelerando.accelerate_dit._registry import SLOTS, find_blocks

_Schedule = Schedule  # the name older code and tests import

__all__ = [
    "FORA_HOOK",
    "FORECASTS",
    "FORECAST_SPACES",
    "LEVELS",
    "FORAConfig",
    "FORAHook",
    "FORAState",
    "apply_fora",
]

FORA_HOOK = "fora"
FORECASTS = ("none", "taylor1", "taylor2")
LEVELS = ("submodules", "blocks", "output")
FORECAST_SPACES = ("velocity", "noise")


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
        level: ``"submodules"`` (FORA: each block's attention / MLP outputs), ``"blocks"`` (the residual of the
            whole block stack, so a cached step runs only the embedders and the final layer) or ``"output"`` (the
            model's output: a cached step runs nothing of the model). With ``"blocks"`` / ``"output"``, ``slots``,
            ``block_intervals`` and per-block ``refresh_steps`` do not apply.
        threshold: ``None`` (the interval rules) or the adaptive refresh: a step computes once the accumulated
            relative L1 change of the first block's modulated input since the last refresh reaches ``threshold``
            (``0``: every step, exactly the baseline). Overrides ``interval`` / ``block_intervals`` /
            ``refresh_steps``; ``warmup_steps`` still compute. Not with ``level="output"``.
        max_cached_steps: with ``threshold``, the most consecutive cached steps before a forced refresh
            (``None``: no limit).
        forecast_space: with ``level="output"`` and a rectified-flow model (``x_s = (1 - s) x_0 + s eps``, output
            the velocity ``v = eps - x_0``): ``"velocity"`` forecasts the output itself; ``"noise"`` forecasts the
            model's noise estimate ``x_s + (1 - s) v`` and turns it back into a velocity with the current input,
            ``v = (forecast - x_s) / (1 - s)``, so a cached step follows the sample it is given. ``s`` is
            ``timestep / flow_timestep_scale``.
        flow_timestep_scale: the timestep of noise level ``s = 1`` (1000 for MelDiT and diffusers' SD3-style
            transformers; 1 where the pipeline passes ``s`` itself, as Flux's does).

    Example::

        import torch
        from diffusers import FlowMatchEulerDiscreteScheduler
        from accelerando.accelerate_dit import FORAConfig, apply_fora, remove_acceleration
        from accelerando.generation import MelDiT, MelDiTPipeline

        pipe = MelDiTPipeline(MelDiT.from_preset("small"), FlowMatchEulerDiscreteScheduler())
        apply_fora(pipe.transformer, FORAConfig(interval=3, forecast="taylor1"))
        out = pipe(instrument="Violin", pitch=67, num_inference_steps=16)
        remove_acceleration(pipe.transformer)
        # the whole block stack, adaptive refresh, second-order forecast
        apply_fora(pipe.transformer, FORAConfig(level="blocks", threshold=0.5, forecast="taylor2"))
        out = pipe(instrument="Violin", pitch=67, num_inference_steps=16)
        remove_acceleration(pipe.transformer)
    """

    interval: int = 2
    warmup_steps: int = 0
    block_intervals: Sequence[int] | Mapping[int, int] | None = None
    refresh_steps: Sequence[int] | Sequence[Sequence[int]] | Mapping[int, Sequence[int]] | None = None
    forecast: str = "none"
    slots: tuple[str, ...] = field(default=SLOTS)
    level: str = "submodules"
    threshold: float | None = None
    max_cached_steps: int | None = None
    forecast_space: str = "velocity"
    flow_timestep_scale: float = 1000.0

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
        if self.level not in LEVELS:
            raise ValueError(f"FORA level {self.level!r} is not supported; choose one of {LEVELS}.")
        threshold = self.threshold
        if threshold is not None and (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or not 0 <= threshold < math.inf
        ):
            raise ValueError(
                f"FORA threshold {threshold!r} is not accepted: use None or a finite number >= 0."
            )
        most = self.max_cached_steps
        if most is not None and (isinstance(most, bool) or int(most) != most or most < 1):
            raise ValueError(f"FORA max_cached_steps {most!r} is not accepted: use None or an integer >= 1.")
        if most is not None and threshold is None:
            raise ValueError("FORA max_cached_steps applies to the adaptive refresh only: set threshold too.")
        if self.forecast_space not in FORECAST_SPACES:
            raise ValueError(
                f"FORA forecast_space {self.forecast_space!r} is not supported; choose one of {FORECAST_SPACES}."
            )
        if self.forecast_space == "noise" and self.level != "output":
            raise ValueError(
                f"FORA forecast_space='noise' converts the model's output (a velocity), so it needs "
                f"level='output', got level={self.level!r}."
            )
        scale = self.flow_timestep_scale
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0 < scale < math.inf:
            raise ValueError(f"FORA flow_timestep_scale {scale!r} is not accepted: use a finite number > 0.")

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


class FORAState:
    """Caches of every wrapped sub-module (keyed by module id and call slot), compute counters and the adaptive signal.

    Attributes:
        computed, reused: sub-module calls (``level="submodules"``) or block-stack calls (``"blocks"``) that ran /
            were served from the cache since the last reset.
        signals: with ``threshold``, one ``(step, slot, accumulated change, refreshed)`` per model call.
    """

    def __init__(self) -> None:
        self.entries: dict[tuple[int, int], Entry] = {}
        self.computed = 0
        self.reused = 0
        self.signals: list[tuple[int, int, float, bool]] = []
        # per call slot: (previous modulated input, accumulated change, cached steps in a row)
        self.tracks: dict[int, tuple[torch.Tensor, float, int]] = {}
        self.decisions: dict[int, tuple[int, bool]] = {}  # per call slot: (step, refresh?)

    def reset(self) -> None:
        self.entries.clear()
        self.computed = 0
        self.reused = 0
        self.signals.clear()
        self.tracks.clear()
        self.decisions.clear()


class FORAHook(SubmoduleHook):
    """Returns the cached (or forecast) output of one sub-module on non-refresh steps."""

    priority = 0  # outside ToMe
    tracker: StepTracker

    def __init__(self, config: FORAConfig, schedule: Any, hidden_arg: str, state: FORAState) -> None:
        self.config = config
        self.order = FORECASTS.index(config.forecast)
        self.schedule = schedule  # Schedule or AdaptivePolicy
        self.hidden_arg = hidden_arg
        self.state = state

    @torch.compiler.disable
    def lookup(self, module: nn.Module, batch: int | None) -> Entry | None:
        """The entry to reuse at this step, or ``None`` when the sub-module must compute."""
        slot = self.tracker.slot
        entry = self.state.entries.get((id(module), slot))
        if (
            entry is None
            or batch != batch_size(entry.output)
            or self.schedule.refreshes(self.tracker.step, slot)
        ):
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
        self.state.entries[key] = newton_update(old, output, self._position(), self.tracker.step, self.order)
        self.state.computed += 1

    @torch.compiler.disable
    def _offsets(self, entry: Entry) -> list[float]:
        """``x - node_j`` for the Horner evaluation of the forecast at this step."""
        self.state.reused += 1
        x = self._position()
        return [x - n for n in entry.nodes[: len(entry.coeffs) - 1]]

    def serve(self, entry: Entry) -> Any:
        """The output reused at this step: the cache (FORA) or its forecast (one ``add`` per order)."""
        return forecast(entry, self._offsets(entry))

    def new_forward(self, module: nn.Module, forward: Any, *args: Any, **kwargs: Any) -> Any:
        hidden = hidden_input(args, kwargs, self.hidden_arg)
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
        hidden = hidden_input(args, kwargs, "hidden_states")
        batch = hidden.shape[0] if isinstance(hidden, torch.Tensor) else None
        entries = []
        for _, submodule, hook in self.parts:
            entry = hook.lookup(submodule, batch)
            if entry is None:  # something refreshes: the block runs as usual (the sub-module hooks cache)
                return forward(*args, **kwargs)
            entries.append(entry)
        cached = {name: hook.serve(entry) for (name, _, hook), entry in zip(self.parts, entries, strict=True)}
        return self.cached_forward(module, cached, *args, **kwargs)


class FORADecideHook(SubmoduleHook):
    """On the first block: takes the adaptive refresh decision of the step, then runs the block's other FORA hook."""

    priority = 0
    tracker: StepTracker

    def __init__(self, policy: AdaptivePolicy, inner: SubmoduleHook | None) -> None:
        self.policy = policy
        self.inner = inner

    def new_forward(self, module: nn.Module, forward: Any, *args: Any, **kwargs: Any) -> Any:
        self.policy.decide(self.tracker.step, self.tracker.slot, module, args, kwargs)
        if self.inner is None:
            return forward(*args, **kwargs)
        return self.inner.new_forward(module, forward, *args, **kwargs)


def apply_fora(model: nn.Module, config: FORAConfig | None = None) -> FORAState:
    """Apply FORA caching to every supported block of ``model`` (MelDiT or a diffusers transformer).

    Returns the shared ``FORAState`` (``computed`` / ``reused`` count cached calls since the last reset).
    Raises ``TypeError`` for an unsupported model and ``ValueError`` when FORA is already applied or
    ``level="blocks"`` does not fit the model.
    """
    config = config or FORAConfig()
    blocks = find_blocks(model)
    state = FORAState()
    policy = None
    if config.threshold is not None:
        policy = AdaptivePolicy(config, state, signal_fn(blocks[0]))
    if config.level == "blocks":
        schedule = policy or Schedule(
            int(config.interval), config.warmup_steps, config.refresh_steps_for(0, 1)
        )
        cache = StackCache(FORECASTS.index(config.forecast), schedule, state)
        attach_plugin(model, FORA_HOOK, stack_hooks(blocks, cache, policy), [state])
        return state
    if config.level == "output":
        if policy is not None:
            raise ValueError(
                "FORA threshold (the adaptive refresh) reads the first block's input, which level='output' never "
                "computes on a cached step: use level='blocks' or 'submodules' with threshold."
            )
        schedule = Schedule(int(config.interval), config.warmup_steps, config.refresh_steps_for(0, 1))
        cache = StackCache(FORECASTS.index(config.forecast), schedule, state)
        scale = config.flow_timestep_scale if config.forecast_space == "noise" else None
        attach_plugin(model, FORA_HOOK, [(model, FORAOutputHook(cache, scale))], [state])
        return state
    hooks: list[tuple[nn.Module, SubmoduleHook]] = []
    block_hooks: dict[int, SubmoduleHook] = {}
    for found in blocks:
        schedule = policy or Schedule(
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
            block_hooks[found.index] = FORABlockHook(found.spec.cached_forward, parts)
    if policy is not None:  # the first block decides the step before its sub-modules run
        block_hooks[0] = FORADecideHook(policy, block_hooks.get(0))
    hooks += [(blocks[i].block, hook) for i, hook in block_hooks.items()]
    attach_plugin(model, FORA_HOOK, hooks, [state])
    return state
