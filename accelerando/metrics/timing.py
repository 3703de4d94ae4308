"""Speed measurement: real-time factor, latency and interleaved A/B comparisons.

Definitions used throughout accelerando:

- **RTF** (real-time factor) = compute time / duration of the audio produced. Below 1 is faster
  than real time.
- **xRT** (times real time) = 1 / RTF = seconds of audio produced per second of compute, the
  figure PeriodWave and Vocos report ("×real-time").

Every measurement warms up first, runs under ``torch.inference_mode``, synchronises CUDA around each
call, reports the median with the inter-quartile range, min and max, and records the hardware
(CPU model, device, torch threads) because absolute times are only meaningful with the machine
named. On a shared CPU prefer :func:`compare_speed`, which interleaves the sides in one process.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _device_name(device: str | None) -> str:
    import torch

    if device is None:
        return "cpu"
    if str(device).startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return str(device)


def _sync(device: str | None) -> None:
    import torch

    if device is not None and str(device).startswith("cuda") and torch.cuda.is_available():
        torch.cuda.synchronize(torch.device(device))


@dataclass
class TimingResult:
    """Summary of repeated timings (seconds) plus the machine they were taken on.

    ``rtf`` and ``xrt`` are set when the audio duration is known (see the module docstring).
    """

    median_s: float
    iqr_s: float
    min_s: float
    max_s: float
    mean_s: float
    times_s: list[float]
    warmup: int
    repeats: int
    torch_threads: int
    cpu: str
    device: str
    audio_seconds: float | None = None
    rtf: float | None = None
    xrt: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_times(
        cls, times: list[float], warmup: int, device: str | None = None, audio_seconds: float | None = None
    ) -> TimingResult:
        """Summarises raw per-call times; needs at least one time."""
        import torch

        if not times:
            raise ValueError("no timings were recorded; run the timed code at least once")
        arr = np.asarray(times, dtype=np.float64)
        q1, median, q3 = np.percentile(arr, [25, 50, 75])
        rtf = xrt = None
        if audio_seconds is not None:
            if audio_seconds <= 0:
                raise ValueError(f"audio_seconds must be positive; got {audio_seconds}")
            rtf = float(median) / audio_seconds
            xrt = math.inf if rtf == 0 else 1.0 / rtf
        return cls(
            median_s=float(median),
            iqr_s=float(q3 - q1),
            min_s=float(arr.min()),
            max_s=float(arr.max()),
            mean_s=float(arr.mean()),
            times_s=[float(t) for t in arr],
            warmup=warmup,
            repeats=len(times),
            torch_threads=torch.get_num_threads(),
            cpu=cpu_model(),
            device=_device_name(device),
            audio_seconds=audio_seconds,
            rtf=rtf,
            xrt=xrt,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = asdict(self)
        out["cpu_count"] = os.cpu_count()
        return out


def _timed_call(fn: Callable[[], Any], device: str | None) -> float:
    import torch

    with torch.inference_mode():
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        return time.perf_counter() - start


class LatencyTimer:
    """Times a callable, or a block of code, with warm-up and robust statistics.

    Example::

        timer = LatencyTimer(warmup=2, repeats=10)
        result = timer.measure(lambda: model.synthesize(mel))
        print(result.median_s, result.iqr_s)

        # or time blocks yourself (e.g. first-chunk latency of a stream); the first ``warmup``
        # recordings are discarded
        for _ in range(12):
            with timer.record():
                next(iter(engine.stream(text)))
        result = timer.result()
    """

    def __init__(self, warmup: int = 2, repeats: int = 10, device: str | None = None) -> None:
        if warmup < 0 or repeats < 1:
            raise ValueError(f"warmup must be >= 0 and repeats >= 1; got warmup={warmup}, repeats={repeats}")
        self.warmup = warmup
        self.repeats = repeats
        self.device = device
        self._times: list[float] = []
        self._seen = 0

    @property
    def times_s(self) -> list[float]:
        """The kept (post-warm-up) recordings in seconds, oldest first."""
        return list(self._times)

    def reset(self) -> None:
        """Forgets recorded times (and the warm-up count)."""
        self._times.clear()
        self._seen = 0

    @contextlib.contextmanager
    def record(self) -> Iterator[None]:
        """Times the ``with`` block under ``torch.inference_mode``; warm-up blocks are not kept."""
        import torch

        with torch.inference_mode():
            _sync(self.device)
            start = time.perf_counter()
            yield
            _sync(self.device)
            elapsed = time.perf_counter() - start
        self._seen += 1
        if self._seen > self.warmup:
            self._times.append(elapsed)

    def result(self, audio_seconds: float | None = None) -> TimingResult:
        """Summary of the kept recordings."""
        return TimingResult.from_times(list(self._times), self.warmup, self.device, audio_seconds)

    def measure(self, fn: Callable[[], Any], audio_seconds: float | None = None) -> TimingResult:
        """Calls ``fn()`` ``warmup`` times untimed, then ``repeats`` times timed."""
        self.reset()
        for _ in range(self.warmup + self.repeats):
            with self.record():
                fn()
        return self.result(audio_seconds)


def measure_rtf(
    fn: Callable[[], Any], audio_seconds: float, warmup: int = 2, repeats: int = 5, device: str | None = None
) -> TimingResult:
    """Real-time factor of ``fn()``, which produces ``audio_seconds`` of audio per call.

    Returns a :class:`TimingResult` whose ``rtf`` = median compute time / ``audio_seconds`` and
    ``xrt`` = 1 / ``rtf``.
    """
    return LatencyTimer(warmup, repeats, device).measure(fn, audio_seconds)


def compare_speed(
    fns: dict[str, Callable[[], Any]],
    repeats: int = 5,
    warmup: int = 1,
    device: str | None = None,
    audio_seconds: float | None = None,
) -> dict[str, Any]:
    """Times several callables alternately (A, B, A, B, ...) in this process.

    Interleaving spreads drifts in machine load evenly over the sides, so the *ratio* is a fact
    even on a shared CPU. The first key is the baseline. Returns::

        {"order": [...], "results": {name: TimingResult.to_dict()},
         "ratio_to_baseline": {name: median_name / median_baseline},
         "speedup_over_baseline": {name: median_baseline / median_name}}
    """
    if len(fns) < 2:
        raise ValueError(f"compare_speed needs at least two callables; got {len(fns)}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1; got {repeats}")
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            _timed_call(fns[name], device)
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(repeats):
        # Alternate the starting side too, so neither always runs right after the other.
        order = names if rep % 2 == 0 else names[::-1]
        for name in order:
            times[name].append(_timed_call(fns[name], device))
    results = {name: TimingResult.from_times(times[name], warmup, device, audio_seconds) for name in names}
    base = results[names[0]].median_s
    return {
        "order": names,
        "results": {name: result.to_dict() for name, result in results.items()},
        "ratio_to_baseline": {
            name: r.median_s / base if base > 0 else math.nan for name, r in results.items()
        },
        "speedup_over_baseline": {
            name: base / r.median_s if r.median_s > 0 else math.inf for name, r in results.items()
        },
    }
