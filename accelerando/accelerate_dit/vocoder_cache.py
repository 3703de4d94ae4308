"""Deep-feature caching across ODE solver steps for PeriodWave (after DeepCache and FORA).

PeriodWave (arXiv 2408.07547) runs one period-aware U-Net per period at every network evaluation; its mel
encoding is already computed once per utterance (``encode_mel``). Along the ODE the U-Net's deep, low-rate
features change slowly, so this plugin runs them only at refresh evaluations and reuses them in between, while the
shallow, full-rate layers (and the time embedding, the final block, the solver) always run. ``depth`` chooses the
cached branch of :class:`~accelerando.vocoders.periodwave.modules.PeriodUNet`:

- ``"mid"``: the mid block's output (mid block skipped; every down block still runs for the skips);
- ``"up1"``: the first up block's output (the third down block, the mid block and the first up block skipped);
- ``"up2"``: the second up block's output (only the first down block and the last up block run).

Refresh every ``interval`` network evaluations (after ``warmup`` evaluations that always compute), counted per
generation (a new ``encode_mel`` result, or a time that goes back, starts one). Between refreshes the cache is
reused as is (``forecast="none"``, FORA-style) or extrapolated to the current time along the line through the last
two refreshes (``"taylor1"``, the FORA plugin's first-order forecast in the timestep). Cached evaluations replace
the skipped blocks' forwards; the model's own ``forward`` runs unchanged, so ``interval=1`` is exactly the plain
model. Works with every sampler of ``periodwave.model.SAMPLERS`` (it counts evaluations, not solver steps).

Example::

    import torch
    from accelerando.accelerate_dit.vocoder_cache import PeriodWaveCacheConfig, apply_periodwave_cache
    from accelerando.vocoders import PeriodWave

    model = PeriodWave.from_preset("tiny").eval()
    cache = apply_periodwave_cache(model, PeriodWaveCacheConfig(interval=2, depth="up2"))
    wav = model.synthesize(torch.randn(1, 80, 16) - 5, num_steps=8, generator=torch.Generator().manual_seed(0))
    print(cache.state.computed, cache.state.reused)  # U-Net deep passes run / reused
    cache.remove()  # the plain model again
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from accelerando.accelerate_dit._hooks import _PLUGINS_ATTR, SubmoduleHook, add_hook, remove_hook
from accelerando.vocoders import PeriodWave

__all__ = [
    "DEPTHS",
    "FORECASTS",
    "PERIODWAVE_CACHE_HOOK",
    "PeriodWaveCache",
    "PeriodWaveCacheConfig",
    "PeriodWaveCacheState",
    "apply_periodwave_cache",
]

PERIODWAVE_CACHE_HOOK = "periodwave_cache"
FORECASTS = ("none", "taylor1")
# depth -> (skipped U-Net sub-modules in forward order; the last one's output is the cached feature)
DEPTHS: dict[str, tuple[str, ...]] = {
    "mid": ("mid",),
    "up1": ("downs.2", "mid", "ups.0"),
    "up2": ("downs.1", "downs.2", "mid", "ups.0", "ups.1"),
}


@dataclass
class PeriodWaveCacheConfig:
    """Settings of PeriodWave's deep-feature cache (module docstring; FORA, arXiv 2407.01425; DeepCache,
    arXiv 2312.00858).

    Attributes:
        interval: refresh every ``interval`` network evaluations (``1``: exactly the plain model).
        depth: the cached branch, ``"mid"``, ``"up1"`` or ``"up2"`` (the default: the most work skipped; on the
            bundled PeriodWave-Turbo its drift was close to the others', ``benchmarks/vocoder_plugins.py``).
        forecast: ``"none"`` (reuse the cache) or ``"taylor1"`` (first-order forecast in the time).
        warmup: the first evaluations of each generation always compute.

    Example::

        cache = apply_periodwave_cache(model, PeriodWaveCacheConfig(interval=3, forecast="taylor1"))
        wav = model.synthesize(mel, num_steps=16, method="midpoint")
        cache.remove()
    """

    interval: int = 2
    depth: str = "up2"
    forecast: str = "none"
    warmup: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.interval, bool) or not isinstance(self.interval, int) or self.interval < 1:
            raise ValueError(f"interval must be an integer >= 1; got {self.interval!r}.")
        if self.depth not in DEPTHS:
            raise ValueError(f"depth must be one of {list(DEPTHS)}; got {self.depth!r}.")
        if self.forecast not in FORECASTS:
            raise ValueError(f"forecast must be one of {FORECASTS}; got {self.forecast!r}.")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"warmup must be an integer >= 0; got {self.warmup!r}.")


class PeriodWaveCacheState:
    """Per-generation bookkeeping: evaluation index, current time, and per-period caches with their times."""

    def __init__(self) -> None:
        self.reset()
        self.computed = 0
        self.reused = 0

    def reset(self) -> None:
        """Forget the generation (the next evaluation starts a new one and refreshes)."""
        self.evaluation = -1
        self.time: float | None = None
        self.key: Any = None
        self.refresh = True
        # period -> [(time, feature), ...] of the last two refreshes, oldest first
        self.cache: dict[int, list[tuple[float, torch.Tensor]]] = {}
        self.period: int | None = None

    def begin(self, key: Any, time: float, config: PeriodWaveCacheConfig) -> None:
        """Called at each network evaluation with the conditioning's identity and the time."""
        if self.key is not key or self.time is None or time < self.time:
            self.reset()
            self.key = key
        self.evaluation += 1
        self.time = time
        k = self.evaluation
        self.refresh = k < config.warmup or (k - config.warmup) % config.interval == 0


class _ModelHook(SubmoduleHook):
    """On ``PeriodWave.forward``: starts each network evaluation (time, generation)."""

    priority = -100

    def __init__(self, state: PeriodWaveCacheState, config: PeriodWaveCacheConfig) -> None:
        self.state, self.config = state, config

    def new_forward(self, module: nn.Module, forward: Any, *args: Any, **kwargs: Any) -> Any:
        names = ("x_t", "t", "mel", "cond")
        inputs = {**dict(zip(names, args)), **kwargs}
        key = inputs.get("cond") if inputs.get("cond") is not None else inputs.get("mel")
        t = torch.as_tensor(inputs["t"]).reshape(-1)
        self.state.begin(key, float(t[0]), self.config)
        return forward(*args, **kwargs)


class _UNetHook(SubmoduleHook):
    """On ``PeriodUNet.forward``: records which period this call is."""

    def __init__(self, state: PeriodWaveCacheState) -> None:
        self.state = state

    def new_forward(self, module: nn.Module, forward: Any, *args: Any, **kwargs: Any) -> Any:
        self.state.period = int(args[1] if len(args) > 1 else kwargs["period"])
        return forward(*args, **kwargs)


class _SkipHook(SubmoduleHook):
    """On a skipped block: runs (and, for the last one, stores) at refreshes; otherwise is skipped.

    A skipped block that is not the last passes its first input through (its output only feeds other skipped
    blocks); the last returns the cached feature or its forecast.
    """

    def __init__(self, state: PeriodWaveCacheState, config: PeriodWaveCacheConfig, last: bool) -> None:
        self.state, self.config, self.last = state, config, last

    def _entry(self, like: torch.Tensor | None) -> list[tuple[float, torch.Tensor]] | None:
        entry = self.state.cache.get(self.state.period)  # type: ignore[arg-type]
        if entry is None or (like is not None and entry[-1][1].shape[0] != like.shape[0]):
            return None
        return entry

    def new_forward(self, module: nn.Module, forward: Any, *args: Any, **kwargs: Any) -> Any:
        state = self.state
        first = args[0] if args else next(iter(kwargs.values()))
        if not state.refresh and self._entry(first) is not None:
            if not self.last:
                return first
            state.reused += 1
            return self._serve(self._entry(first))  # type: ignore[arg-type]
        out = forward(*args, **kwargs)
        if self.last:
            self._store(out)
        return out

    def _store(self, out: torch.Tensor) -> None:
        state = self.state
        entry = state.cache.get(state.period, [])  # type: ignore[arg-type]
        if entry and entry[-1][1].shape != out.shape:
            entry = []
        keep = [e for e in entry if e[0] != state.time][-1:]  # previous refresh at another time
        state.cache[state.period] = [*keep, (float(state.time), out.detach())]  # type: ignore[index]
        state.computed += 1

    def _serve(self, entry: list[tuple[float, torch.Tensor]]) -> torch.Tensor:
        t1, y1 = entry[-1]
        if self.config.forecast == "none" or len(entry) < 2:
            return y1
        t0, y0 = entry[-2]
        return torch.add(y1, y1 - y0, alpha=(float(self.state.time) - t1) / (t1 - t0))


class PeriodWaveCache:
    """The handle ``apply_periodwave_cache`` returns: ``state`` (counters), ``reset()`` and ``remove()``."""

    def __init__(self, model: PeriodWave, config: PeriodWaveCacheConfig, state: PeriodWaveCacheState) -> None:
        self.model, self.config, self.state = model, config, state

    def reset(self) -> None:
        """Start a new generation at the next evaluation (also automatic on a new mel encoding)."""
        self.state.reset()

    def remove(self) -> PeriodWave:
        """Unwrap every hook; the model is exactly the plain one again. Returns it."""
        plugins = self.model.__dict__.get(_PLUGINS_ATTR, {})
        for module in plugins.pop(PERIODWAVE_CACHE_HOOK, []):
            remove_hook(module, PERIODWAVE_CACHE_HOOK)
        if not plugins:
            self.model.__dict__.pop(_PLUGINS_ATTR, None)
        return self.model


def apply_periodwave_cache(model: PeriodWave, config: PeriodWaveCacheConfig | None = None) -> PeriodWaveCache:
    """Cache the deep U-Net features of a ``PeriodWave`` / ``PeriodWaveTurbo`` across solver evaluations.

    Returns the handle (``.remove()`` restores the model; ``accelerate_dit.remove_acceleration(model)`` too).
    Raises ``TypeError`` for another class and ``ValueError`` when the cache is already applied.
    """
    if not isinstance(model, PeriodWave):
        raise TypeError(
            f"apply_periodwave_cache works on PeriodWave and PeriodWaveTurbo; got {type(model).__name__}."
        )
    plugins = model.__dict__.setdefault(_PLUGINS_ATTR, {})
    if PERIODWAVE_CACHE_HOOK in plugins:
        raise ValueError("The PeriodWave cache is already applied; call .remove() on its handle first.")
    config = config or PeriodWaveCacheConfig()
    state = PeriodWaveCacheState()
    unet = model.unet
    names = DEPTHS[config.depth]
    hooks: list[tuple[nn.Module, SubmoduleHook]] = [
        (model, _ModelHook(state, config)),
        (unet, _UNetHook(state)),
    ]
    for i, name in enumerate(names):
        hooks.append((unet.get_submodule(name), _SkipHook(state, config, last=i == len(names) - 1)))
    for module, hook in hooks:
        add_hook(module, PERIODWAVE_CACHE_HOOK, hook)
    plugins[PERIODWAVE_CACHE_HOOK] = [module for module, _ in hooks]
    return PeriodWaveCache(model, config, state)
