"""Private hook machinery shared by the ``accelerate_dit`` plugins: sub-module forward wrappers, a step tracker,
and exact removal.

diffusers' ``HookRegistry`` leaves a ``forward`` instance attribute and a ``_diffusers_hook`` registry on every
module it touched, even after ``remove_hook``; ``remove_acceleration`` must give back the model exactly as it
was, so this is a minimal equivalent of the same shape (``new_forward(module, forward, *args, **kwargs)``
hooks chained by priority) that records what it replaced and puts it back.

The step tracker wraps the top-level model's ``forward``: every call reads the ``timestep`` argument; the first
call, or a timestep larger than the previous one, starts a new generation (all plugin states reset); an equal
timestep is another call of the same step (for example a pipeline running the unconditional batch separately),
numbered by ``slot``; a smaller one is the next step.
"""

from __future__ import annotations

import functools
import types
from typing import Any, Protocol

import torch
from torch import nn

from accelerando.accelerate_dit._registry import model_spec, read_forward_inputs, timestep_value

__all__ = [
    "StepTracker",
    "SubmoduleHook",
    "attach_plugin",
    "get_tracker",
    "remove_acceleration",
    "reset_acceleration_state",
]

_MISSING = object()
_HOOKS_ATTR = "_accelerando_hooks"  # {hook name: hook} on every wrapped module
_SAVED_ATTR = "_accelerando_saved_forward"  # the instance ``forward`` found before wrapping, or _MISSING
_PLUGINS_ATTR = "_accelerando_plugins"  # {plugin name: [wrapped modules]} on the model
_TRACKER_HOOK = "accelerando_step_tracker"


class ResettableState(Protocol):
    def reset(self) -> None: ...


class SubmoduleHook:
    """A wrapper around one module's ``forward``; lower ``priority`` runs outside (first)."""

    priority: int = 0

    def new_forward(self, module: nn.Module, forward: Any, *args: Any, **kwargs: Any) -> Any:
        return forward(*args, **kwargs)


def _rebuild_forward(module: nn.Module) -> None:
    hooks: dict[str, SubmoduleHook] = module.__dict__[_HOOKS_ATTR]
    saved = module.__dict__[_SAVED_ATTR]
    forward = saved if saved is not _MISSING else types.MethodType(type(module).forward, module)
    for hook in sorted(hooks.values(), key=lambda h: -h.priority):  # innermost first
        forward = functools.update_wrapper(
            functools.partial(hook.new_forward, module, forward), hook.new_forward
        )
    module.forward = forward


def add_hook(module: nn.Module, name: str, hook: SubmoduleHook) -> None:
    """Wrap ``module.forward`` with ``hook`` (named ``name``, one per module)."""
    if _HOOKS_ATTR not in module.__dict__:
        module.__dict__[_SAVED_ATTR] = module.__dict__.get("forward", _MISSING)
        module.__dict__[_HOOKS_ATTR] = {}
    hooks = module.__dict__[_HOOKS_ATTR]
    if name in hooks:
        raise ValueError(f"{type(module).__name__} already has the hook {name!r}.")
    hooks[name] = hook
    _rebuild_forward(module)


def remove_hook(module: nn.Module, name: str) -> None:
    """Unwrap ``hook`` ``name``; the last removal restores the module's ``__dict__`` exactly."""
    if _HOOKS_ATTR not in module.__dict__:
        return
    hooks = module.__dict__[_HOOKS_ATTR]
    hooks.pop(name, None)
    if hooks:
        _rebuild_forward(module)
        return
    saved = module.__dict__.pop(_SAVED_ATTR, _MISSING)
    module.__dict__.pop(_HOOKS_ATTR, None)
    module.__dict__.pop("forward", None)
    if saved is not _MISSING:
        module.__dict__["forward"] = saved


class StepTracker(SubmoduleHook):
    """Counts denoising steps of the top-level model and resets plugin states at each new generation.

    Attributes:
        step: index of the current step in the generation (0 at the first call).
        slot: index of the call within the step (calls with an equal timestep), so separate cond / uncond
            passes keep separate caches.
        timestep: the current call's (largest) timestep, or ``None``.
        grid: the image token grid ``(rows, cols)`` of the current call.
        calls: forward calls seen since the tracker was made (a call's identity, e.g. for per-call caches).
    """

    priority = -1000

    def __init__(self, model: nn.Module) -> None:
        self.grid_fn = model_spec(model).grid
        self.states: list[ResettableState] = []
        self.step = -1
        self.slot = 0
        self.timestep: float | None = None
        self.grid: tuple[int, int] = (1, 1)
        self.calls = 0

    def reset(self) -> None:
        """Forget the step count and every registered plugin state (the next call starts a generation)."""
        self.step, self.slot, self.timestep = -1, 0, None
        for state in self.states:
            state.reset()

    @torch.compiler.disable
    def observe(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        inputs = read_forward_inputs(module, args, kwargs)
        t = timestep_value(inputs)
        if self.step < 0 or (t is not None and self.timestep is not None and t > self.timestep):
            self.reset()
            self.step = 0
        elif t is not None and t == self.timestep:
            self.slot += 1
        else:
            self.step += 1
            self.slot = 0
        self.timestep = t
        self.grid = self.grid_fn(module, inputs)
        self.calls += 1

    def new_forward(self, module: nn.Module, forward: Any, *args: Any, **kwargs: Any) -> Any:
        self.observe(module, args, kwargs)
        return forward(*args, **kwargs)


def get_tracker(model: nn.Module) -> StepTracker | None:
    """The step tracker on ``model`` (``None`` when no plugin is applied)."""
    return model.__dict__.get(_HOOKS_ATTR, {}).get(_TRACKER_HOOK)


def attach_plugin(
    model: nn.Module,
    plugin: str,
    hooks: list[tuple[nn.Module, SubmoduleHook]],
    states: list[ResettableState],
) -> StepTracker:
    """Install a plugin's sub-module hooks and register its states with the model's tracker.

    Each hook gets the shared tracker as ``hook.tracker`` (step, slot, timestep and token grid of the call).
    """
    plugins = model.__dict__.get(_PLUGINS_ATTR, {})
    if plugin in plugins:
        raise ValueError(
            f"{plugin} is already applied to this {type(model).__name__}; call "
            "accelerando.accelerate_dit.remove_acceleration(model) first to apply it again with a new config."
        )
    tracker = get_tracker(model)
    if tracker is None:
        tracker = StepTracker(model)
        add_hook(model, _TRACKER_HOOK, tracker)
        model.__dict__[_PLUGINS_ATTR] = plugins
    for module, hook in hooks:
        hook.tracker = tracker
        add_hook(module, plugin, hook)
    plugins[plugin] = [module for module, _ in hooks]
    tracker.states.extend(states)
    return tracker


def remove_acceleration(model: nn.Module) -> nn.Module:
    """Remove every ``accelerate_dit`` plugin (ToMe, FORA) from ``model`` and restore it exactly; returns it.

    A model without plugins is returned unchanged.
    """
    plugins = model.__dict__.pop(_PLUGINS_ATTR, {})
    for plugin, modules in plugins.items():
        for module in modules:
            remove_hook(module, plugin)
    remove_hook(model, _TRACKER_HOOK)
    return model


def reset_acceleration_state(model: nn.Module) -> None:
    """Reset the plugin states of ``model`` (caches, step count), for custom sampling loops.

    Pipelines need not call it: a call whose timestep is larger than the previous one starts a new generation.
    """
    tracker = get_tracker(model)
    if tracker is not None:
        tracker.reset()


def applied_plugins(model: nn.Module) -> list[str]:
    """Names of the plugins applied to ``model``."""
    return list(model.__dict__.get(_PLUGINS_ATTR, {}))
