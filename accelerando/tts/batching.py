"""Dynamic batching of concurrent speech streams' vocoder blocks: one model call for many streams.

Each stream of :class:`~accelerando.tts.engine.StreamingSynthesizer` runs in its own producer thread and
vocodes its mel chunk by chunk. With a vocoder that carries its state from block to block
(:class:`accelerando.vocoders.MelNEWT`), a :class:`RenderBatcher` takes every stream's ``render(mel,
state)`` call, waits up to ``window_s`` for the other active streams' calls (never when it already holds one
from each), and renders the compatible ones (same chunk length, same stage) as one batch
(:func:`~accelerando.vocoders.newt.mel_newt.batch_states`). Each stream gets exactly the audio and state
that its own call would have given, so batching changes the speed, not the sound (tested).

Example::

    from accelerando.tts import StreamingSynthesizer

    engine = StreamingSynthesizer.from_pretrained(vocoder="newt-speech", batch_window_ms=5)

Measured on the 2-core CPU this project is developed on, with the bundled newt-speech (trainings paused;
``benchmarks/speech_server.py``): aggregate audio seconds per wall second 42 / 50 / 52 at 1 / 4 / 8 streams
batched, against 44 / 57 / 42 with one call per stream (the streams' own threads already keep both cores busy,
and MelNEWT's cost grows with the samples rendered: a batch of 8 costs 5.7 single calls). Batching wins from
about 8 streams on, so the engine leaves it off unless asked (``accelerando serve --batch-window-ms 5``).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

__all__ = ["RenderBatcher"]


class _Request:
    __slots__ = ("mel", "state", "done", "result", "error")

    def __init__(self, mel: torch.Tensor, state: Any) -> None:
        self.mel, self.state = mel, state
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class RenderBatcher:
    """Merges concurrent ``render(mel, state)`` calls of a block-streaming vocoder into batched calls.

    Args:
        model: a vocoder with ``render(mel, state) -> (audio, state, ...)`` whose states
            :func:`~accelerando.vocoders.newt.mel_newt.batch_states` can merge (MelNEWT).
        window_s: how long the first waiting call may wait for the other active streams' calls.
        max_batch: the most streams in one call.

    Streams say that they are running with :meth:`active` (a context manager), so that the batcher knows how
    many calls to expect; :attr:`calls` and :attr:`rendered` count model calls and stream blocks.
    """

    def __init__(self, model: Any, window_s: float = 0.005, max_batch: int = 16) -> None:
        if window_s < 0 or max_batch < 1:
            raise ValueError(f"window_s must be >= 0 and max_batch >= 1; got {window_s}, {max_batch}")
        from accelerando.vocoders.newt.mel_newt import batch_states, split_state, state_signature

        self._batch, self._split, self._signature = batch_states, split_state, state_signature
        self.model, self.window_s, self.max_batch = model, window_s, max_batch
        self._cond = threading.Condition()
        self._pending: list[_Request] = []
        self._streams = 0
        self.calls = 0
        self.rendered = 0
        self._worker = threading.Thread(target=self._loop, name="render-batcher", daemon=True)
        self._worker.start()

    @contextmanager
    def active(self) -> Iterator[None]:
        """Count one running stream while the block runs."""
        with self._cond:
            self._streams += 1
        try:
            yield
        finally:
            with self._cond:
                self._streams -= 1
                self._cond.notify_all()

    def render(self, mel: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """``(audio, next state)`` of one stream's block, rendered together with other streams' blocks."""
        request = _Request(mel, state)
        with self._cond:
            self._pending.append(request)
            self._cond.notify_all()
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.result

    # ------------------------------------------------------------------ worker
    def _take(self) -> list[_Request]:
        with self._cond:
            while not self._pending:
                self._cond.wait()
            deadline = time.monotonic() + self.window_s
            while len(self._pending) < min(max(self._streams, 1), self.max_batch):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            taken, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            return taken

    def _loop(self) -> None:
        while True:
            groups: dict[Any, list[_Request]] = defaultdict(list)
            for request in self._take():
                key = (request.mel.shape[1:], request.mel.dtype, self._signature(request.state))
                groups[key].append(request)
            for requests in groups.values():
                try:
                    with torch.inference_mode():
                        mel = torch.cat([r.mel for r in requests])
                        audio, state = self.model.render(mel, self._batch([r.state for r in requests]))[:2]
                    states = self._split(state, [r.state for r in requests])
                    start = 0
                    for request, new_state in zip(requests, states):
                        size = request.mel.shape[0]
                        request.result = (audio[start : start + size], new_state)
                        start += size
                    self.calls += 1
                    self.rendered += len(requests)
                except BaseException as err:  # handed to the waiting streams
                    for request in requests:
                        request.error = err
                for request in requests:
                    request.done.set()
