"""The caches behind FORA (``fora.py``): Newton-form entries and their Taylor forecasts, refresh schedules, the
calibration-free adaptive refresh policy, and the hooks of the whole-model levels (``level="blocks"`` caches the
residual of the block stack, ``level="output"`` the model's output). Private: ``apply_fora`` wires them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from accelerando.accelerate_dit._hooks import StepTracker, SubmoduleHook
from accelerando.accelerate_dit._registry import FoundBlock, read_forward_inputs


@dataclass(frozen=True)
class Schedule:
    """When one block refreshes: listed steps (then every ``interval`` after the last), else every ``interval``."""

    interval: int
    warmup_steps: int
    steps: frozenset[int] | None = None

    def refreshes(self, step: int, slot: int = 0) -> bool:
        if step < self.warmup_steps:
            return True
        if self.steps is None:
            return (step - self.warmup_steps) % self.interval == 0
        last = max(self.steps, default=0)
        return step in self.steps or (step > last and (step - last) % self.interval == 0)


@dataclass
class Entry:
    """One cache in one call slot: the Newton form of the polynomial through its last refreshes.

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


def map_outputs(fn: Any, *values: Any) -> Any:
    """Apply ``fn`` to tensors, element-wise through tuples (joint attention); ``None`` stays ``None``."""
    first = values[0]
    if isinstance(first, tuple):
        return tuple(map_outputs(fn, *parts) for parts in zip(*values, strict=True))
    if first is None:
        return None
    return fn(*values)


def batch_size(value: Any) -> int | None:
    if isinstance(value, tuple):
        value = value[0]
    return value.shape[0] if isinstance(value, torch.Tensor) else None


def newton_update(old: Entry | None, output: Any, x: float, step: int, order: int) -> Entry:
    """The entry after a refresh at position ``x``: divided differences with the previous refreshes, up to ``order``.

    ``c_j = (c_{j-1} - old c_{j-1}) / (x - old node_{j-1})``, formed once per refresh.
    """
    coeffs, nodes = [output], [x]
    if old is not None and order > 0 and old.step < step:
        for j in range(1, min(order, len(old.coeffs)) + 1):
            gap = x - old.nodes[j - 1]
            if gap == 0:
                break
            coeffs.append(
                map_outputs(lambda new, prev, g=gap: (new - prev) / g, coeffs[j - 1], old.coeffs[j - 1])
            )
            nodes.append(old.nodes[j - 1])
    return Entry(coeffs, nodes, step)


def forecast(entry: Entry, offsets: list[float]) -> Any:
    """Horner evaluation ``c_j + (x - n_j) * value`` (one fused ``add`` per order); ``offsets[j] = x - n_j``."""
    value = entry.coeffs[-1]
    for j in range(len(offsets) - 1, -1, -1):
        value = map_outputs(lambda c, v, k=offsets[j]: torch.add(c, v, alpha=k), entry.coeffs[j], value)
    return value


class AdaptivePolicy:
    """Calibration-free refresh decision per step (TeaCache-style signal, no fitted rescaling).

    ``decide`` runs once per model call, before the first block: it accumulates the relative L1 change of the
    first block's modulated input; a step refreshes at warm-up, when the input's batch changes, when the sum
    reaches ``threshold`` or after ``max_cached_steps`` cached steps in a row.
    """

    def __init__(self, config: Any, state: Any, signal: Any) -> None:  # fora.FORAConfig, FORAState
        self.threshold = float(config.threshold)
        self.warmup_steps = config.warmup_steps
        self.max_cached_steps = config.max_cached_steps
        self.state = state
        self.signal = signal  # fn(block, *args, **kwargs) -> (B, N, D)

    @torch.compiler.disable
    def decide(self, step: int, slot: int, block: nn.Module, args: tuple, kwargs: dict[str, Any]) -> bool:
        current = self.signal(block, *args, **kwargs).detach()
        track = self.state.tracks.get(slot)
        if track is None or step < self.warmup_steps or track[0].shape != current.shape:
            change, refresh = 0.0, True
        else:
            previous, change, cached = track
            # relative L1 change of the modulated input since the previous step, accumulated since the last refresh
            change += float((current - previous).abs().mean() / previous.abs().mean().clamp_min(1e-12))
            refresh = change >= self.threshold or (
                self.max_cached_steps is not None and cached >= self.max_cached_steps
            )
        cached = 0 if refresh else (track[2] + 1)
        self.state.tracks[slot] = (current, 0.0 if refresh else change, cached)
        self.state.decisions[slot] = (step, refresh)
        self.state.signals.append((step, slot, change, refresh))
        return refresh

    def refreshes(self, step: int, slot: int = 0) -> bool:
        decision = self.state.decisions.get(slot)
        return decision is None or decision[0] != step or decision[1]


def hidden_input(args: tuple, kwargs: dict[str, Any], hidden_arg: str) -> Any:
    return args[0] if args else kwargs.get(hidden_arg)


class FORAStackHook(SubmoduleHook):
    """``level="blocks"``: caches the residual of the whole block stack and forecasts it on cached steps.

    One hook per block. On a refresh the blocks run as usual and the first / last ones record the stack's input and
    output; on a cached step the first block returns ``input + forecast residual`` and the others pass it through.
    """

    priority = 0
    tracker: StepTracker

    def __init__(
        self, stack: StackCache, first: bool, last: bool, hidden_arg: str, policy: AdaptivePolicy | None
    ) -> None:
        self.stack, self.first, self.last, self.hidden_arg, self.policy = (
            stack,
            first,
            last,
            hidden_arg,
            policy,
        )

    def new_forward(self, module: nn.Module, forward: Any, *args: Any, **kwargs: Any) -> Any:
        hidden = hidden_input(args, kwargs, self.hidden_arg)
        stack = self.stack
        if self.first:
            if self.policy is not None:
                self.policy.decide(self.tracker.step, self.tracker.slot, module, args, kwargs)
            stack.cached = stack.lookup(self.tracker, hidden)
            if stack.cached is not None:
                return stack.serve(self.tracker, hidden, stack.cached)
            stack.input = hidden
        elif stack.cached is not None:
            return hidden  # the first block already returned the stack's output
        output = forward(*args, **kwargs)
        if self.last:
            stack.store(self.tracker, output - stack.input)
            stack.input = None
        return output


class StackCache:
    """One cache per call slot (an ``Entry``) of the block stack's residual (``FORAStackHook``) or of the model's
    output (``FORAOutputHook``)."""

    def __init__(self, order: int, schedule: Any, state: Any) -> None:  # state: fora.FORAState
        self.order = order
        self.schedule = schedule
        self.state = state
        self.cached: Entry | None = None  # the entry served at the current call (None: the blocks run)
        self.input: torch.Tensor | None = None  # the stack's input at a refresh

    @staticmethod
    def _position(tracker: StepTracker) -> float:
        return float(tracker.step) if tracker.timestep is None else float(tracker.timestep)

    @torch.compiler.disable
    def lookup(self, tracker: StepTracker, hidden: torch.Tensor) -> Entry | None:
        """The entry to forecast from at this call, or ``None`` when the blocks (or the model) must run."""
        entry = self.state.entries.get((id(self), tracker.slot))
        if (
            entry is None
            or entry.output.shape[0] != hidden.shape[0]
            or self.schedule.refreshes(tracker.step, tracker.slot)
        ):
            return None
        return entry

    @torch.compiler.disable
    def serve(self, tracker: StepTracker, hidden: torch.Tensor, entry: Entry) -> torch.Tensor:
        self.state.reused += 1
        x = self._position(tracker)
        value = forecast(entry, [x - n for n in entry.nodes[: len(entry.coeffs) - 1]])
        # residual first: the result takes the contiguous layout of the cache (see _meldit_cached_forward)
        return value if hidden is None else value + hidden

    @torch.compiler.disable
    def store(self, tracker: StepTracker, residual: torch.Tensor) -> None:
        key = (id(self), tracker.slot)
        old = self.state.entries.get(key)
        self.state.entries[key] = newton_update(
            old, residual, self._position(tracker), tracker.step, self.order
        )
        self.state.computed += 1


class FORAOutputHook(SubmoduleHook):
    """``level="output"``: caches the model's output and forecasts it on cached steps, where nothing of the model runs.

    Reads the call's ``hidden_states`` (for its batch) and ``return_dict`` (for the output's form); the first field of
    the output (``sample``) is cached. With ``flow_timestep_scale`` set (``forecast_space="noise"``) the cache holds
    the noise estimate ``x + (1 - s) v`` of a rectified-flow velocity ``v`` at noise level
    ``s = timestep / flow_timestep_scale`` and a cached step returns ``(forecast - x) / (1 - s)``.
    """

    priority = 0  # inside the step tracker
    tracker: StepTracker
    _EDGE = 1e-4  # within this of s = 1 the noise estimate carries no velocity: such a step always computes

    def __init__(self, cache: StackCache, flow_timestep_scale: float | None = None) -> None:
        self.cache = cache
        self.scale = flow_timestep_scale
        self.output_class: tuple[type, str] | None = None  # the output dataclass and its first field

    def _keep(self) -> float:
        """``1 - s`` of this call (noise space only); ``ValueError`` when the timestep is no noise level."""
        t = self.tracker.timestep
        if t is None:
            raise ValueError("FORA forecast_space='noise' needs the model's timestep; this call passed none.")
        s = t / self.scale
        if not -1e-6 <= s <= 1 + 1e-6:
            raise ValueError(
                f"FORA forecast_space='noise' reads the noise level s = timestep / {self.scale:g} = {s:.4g}, "
                f"outside [0, 1]: set flow_timestep_scale to the timestep of s = 1 (1000, or 1 for Flux)."
            )
        return 1.0 - s

    def new_forward(self, module: nn.Module, forward: Any, *args: Any, **kwargs: Any) -> Any:
        inputs = read_forward_inputs(module, args, kwargs)
        x = inputs["hidden_states"]
        keep = self._keep() if self.scale is not None else 1.0
        entry = self.cache.lookup(self.tracker, x)
        if self.scale is not None and keep < self._EDGE:
            entry = None
        if entry is not None and (self.output_class is not None or not inputs.get("return_dict", True)):
            value = self.cache.serve(self.tracker, None, entry)
            if self.scale is not None:
                value = (value - x) / keep
            if not inputs.get("return_dict", True):
                return (value,)
            kind, name = self.output_class
            return kind(**{name: value})
        output = forward(*args, **kwargs)
        if not isinstance(output, tuple):
            self.output_class = (type(output), next(iter(output.keys())))
        value = output[0]
        if self.scale is not None:
            if value.shape != x.shape:
                raise ValueError(
                    f"FORA forecast_space='noise' needs an output shaped like the input (a velocity); this model "
                    f"returns {tuple(value.shape)} for an input of {tuple(x.shape)}: use forecast_space='velocity'."
                )
            value = x + keep * value
        self.cache.store(self.tracker, value)
        return output


def signal_fn(found: FoundBlock) -> Any:
    """The adaptive signal of the first block: its modulated input, or its token input when none is registered."""
    if found.spec.modulated_input is not None:
        return found.spec.modulated_input
    hidden_arg = found.spec.hidden_arg
    return lambda _block, *args, **kwargs: hidden_input(args, kwargs, hidden_arg)


def stack_hooks(
    blocks: list[FoundBlock], cache: StackCache, policy: AdaptivePolicy | None
) -> list[tuple[nn.Module, SubmoduleHook]]:
    """One ``FORAStackHook`` per block (``level="blocks"``); ``ValueError`` when the blocks do not form one stack."""
    bad = sorted({type(b.block).__name__ for b in blocks if not b.spec.stackable})
    if bad:
        raise ValueError(
            f"FORA level='blocks' needs blocks that map tokens to tokens (MelDiT, DiT, PixArt, Stable Audio); "
            f"this model has {', '.join(bad)}: use level='submodules'."
        )
    lists = {b.name.split(".")[0] for b in blocks}
    if len(lists) != 1:
        raise ValueError(f"FORA level='blocks' needs the blocks in one list; this model has {sorted(lists)}.")
    last = len(blocks) - 1
    return [
        (b.block, FORAStackHook(cache, i == 0, i == last, b.spec.hidden_arg, policy if i == 0 else None))
        for i, b in enumerate(blocks)
    ]
