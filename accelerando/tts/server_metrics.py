"""Metrics of the speech API (``GET /metrics``): counters, histograms, a status-recording middleware.

Prometheus text exposition (``accelerando_requests_total``, ``accelerando_errors_total``,
``accelerando_time_to_first_audio_seconds``, ``accelerando_real_time_factor``,
``accelerando_active_streams``, ``accelerando_engine_*``) or the same as JSON.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .engine import StreamingSynthesizer

__all__ = ["Histogram", "ServerMetrics", "StatusRecorder"]

_TTFA_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0)
_RTF_BUCKETS = (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)


class Histogram:
    """A Prometheus-style cumulative histogram."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.count += 1
        self.sum += value
        for i, edge in enumerate(self.buckets):
            if value <= edge:
                self.counts[i] += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "sum": self.sum,
            "buckets": dict(zip(map(str, self.buckets), self.counts)),
        }

    def render(self, name: str, help_: str) -> list[str]:
        lines = [f"# HELP {name} {help_}", f"# TYPE {name} histogram"]
        lines += [f'{name}_bucket{{le="{edge}"}} {n}' for edge, n in zip(self.buckets, self.counts)]
        lines += [
            f'{name}_bucket{{le="+Inf"}} {self.count}',
            f"{name}_sum {self.sum}",
            f"{name}_count {self.count}",
        ]
        return lines


class ServerMetrics:
    """Counters and histograms behind ``GET /metrics`` (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = {}
        self.errors: dict[str, int] = {}
        self.ttfa = Histogram(_TTFA_BUCKETS)
        self.rtf = Histogram(_RTF_BUCKETS)
        self.active_streams = 0

    def request(self, endpoint: str, status: int) -> None:
        with self.lock:
            self.requests[(endpoint, status)] = self.requests.get((endpoint, status), 0) + 1

    def error(self, code: str) -> None:
        with self.lock:
            self.errors[code] = self.errors.get(code, 0) + 1

    def to_dict(self, engine: StreamingSynthesizer) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": [
                    {"endpoint": e, "status": s, "count": n} for (e, s), n in sorted(self.requests.items())
                ],
                "errors": dict(self.errors),
                "time_to_first_audio_seconds": self.ttfa.to_dict(),
                "real_time_factor": self.rtf.to_dict(),
                "active_streams": self.active_streams,
                "engine": engine.stats.to_dict(),
            }

    def render(self, engine: StreamingSynthesizer) -> str:
        with self.lock:
            lines = [
                "# HELP accelerando_requests_total HTTP requests by endpoint and status.",
                "# TYPE accelerando_requests_total counter",
            ]
            lines += [
                f'accelerando_requests_total{{endpoint="{e}",status="{s}"}} {n}'
                for (e, s), n in sorted(self.requests.items())
            ]
            lines += [
                "# HELP accelerando_errors_total Error answers by code.",
                "# TYPE accelerando_errors_total counter",
            ]
            lines += [f'accelerando_errors_total{{code="{c}"}} {n}' for c, n in sorted(self.errors.items())]
            lines += self.ttfa.render(
                "accelerando_time_to_first_audio_seconds", "Request start to first audio chunk."
            )
            lines += self.rtf.render(
                "accelerando_real_time_factor", "Generation time / audio duration per stream."
            )
            lines += [
                "# TYPE accelerando_active_streams gauge",
                f"accelerando_active_streams {self.active_streams}",
            ]
        for key, value in engine.stats.to_dict().items():
            lines += [f"# TYPE accelerando_engine_{key} gauge", f"accelerando_engine_{key} {value}"]
        return "\n".join(lines) + "\n"


class StatusRecorder:
    """Pure ASGI middleware counting HTTP answers by route and status (streaming-safe)."""

    def __init__(self, app: Any, metrics: ServerMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                self.metrics.request(scope.get("path", "?"), message["status"])
            await send(message)

        await self.app(scope, receive, send_wrapper)
