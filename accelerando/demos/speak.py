"""The Speak tab: text → streamed speech (Incremental FastPitch + a chosen vocoder), with TTFA and RTF."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from accelerando.demos.checkpoints import ModelCache
from accelerando.demos.common import LIMITS, Limits, to_int16, user_errors
from accelerando.demos.vocoding import load_variant, variant_by_name

__all__ = ["CHUNK_SECONDS", "EARLY_CHUNKS", "load_engine", "speak_stream", "voices"]

CHUNK_SECONDS = 1.0  # Gradio's guide: streamed audio chunks of about a second or more
# Engine chunks sent as soon as they are computed, before the CHUNK_SECONDS batching starts. The page
# asks for the stream's HLS playlist when the first chunk arrives; Gradio's encoder has rarely emitted
# anything by then, and the frames it emits for a chunk reach the playlist with the next chunk, while
# hls.js polls an empty playlist again after 1 s, then 2 s. So the first two go out as they come.
# Measured in Chromium on the bundled checkpoints (CPU, warm), click to first sound: Griffin-Lim
# 1.5-2.4 s → 1.3-1.6 s, FreGrad 6 steps 1.5-1.7 s → 1.3-1.4 s, an engine slowed to RTF 1.3
# 3.6-3.9 s → 1.7-3.2 s.
EARLY_CHUNKS = 2
_TAIL = 0.01  # seconds of silence sent with the final stats when no audio is left to send


def _acoustic(cache: ModelCache) -> Any:
    from accelerando.tts import IncrementalFastPitch

    path = cache.path("fastpitch")
    return cache.get("fastpitch", lambda: IncrementalFastPitch.from_pretrained(str(path)))


def voices(cache: ModelCache) -> list[str]:
    """Voice names of the FastPitch checkpoint (loads it)."""
    names = _acoustic(cache).config.speakers
    return list(names) if names else [f"speaker_{i}" for i in range(_acoustic(cache).config.n_speakers)]


def load_engine(vocoder_name: str, cache: ModelCache) -> Any:
    """A :class:`StreamingSynthesizer` of the FastPitch checkpoint and the vocoder ``vocoder_name``."""
    from accelerando.tts import StreamingSynthesizer

    variant = variant_by_name(vocoder_name, cache)
    acoustic = _acoustic(cache)
    vocoder = load_variant(variant, cache, acoustic.config.n_mels)
    return cache.get(
        f"engine:{variant.name}",
        lambda: StreamingSynthesizer(acoustic, vocoder, vocoder_steps=variant.num_steps),
    )


def _stats(
    first: float | None, compute: float, audio_seconds: float, done: bool, loading: float = 0.0
) -> str:
    """The stats line: server-side figures only (the player's own time to first sound is measured in
    the browser, see ``accelerando.demos.app``)."""
    first_text = "–" if first is None else f"{first * 1000:.0f} ms"
    if first is not None and loading >= 0.05:
        first_text += f" (incl. {loading:.1f} s loading the models)"
    rtf = compute / audio_seconds if audio_seconds > 0 else float("nan")
    state = "done" if done else "streaming…"
    return (
        f"**{state}** · first audio computed on the server after **{first_text}** · "
        f"audio: {audio_seconds:.2f} s · compute: {compute:.2f} s · RTF: **{rtf:.3f}** "
        "(below 1 is faster than real time)"
    )


def speak_stream(
    text: str | None,
    voice: str | None,
    speed: float,
    vocoder_name: str,
    cache: ModelCache,
    limits: Limits = LIMITS,
) -> Iterator[tuple[tuple[int, np.ndarray], str]]:
    """Yield ``((sr, int16 chunk), stats markdown)`` while speech is made.

    The first :data:`EARLY_CHUNKS` chunks of the engine go out as soon as they are computed, the rest
    in chunks of about :data:`CHUNK_SECONDS`. "First audio computed" counts from the request reaching
    this function, so it includes loading the models on first use; compute and RTF count synthesis
    only. It is a server figure: the page shows the time to first sound at the player beside it. The
    last yield carries the final figures. Bad text, voice or speed raise ``ValueError`` before any
    audio.
    """
    received = time.perf_counter()
    text = (text or "").strip()
    if not text:
        raise ValueError("Please type some text to speak.")
    if len(text) > limits.max_text_chars:
        raise ValueError(f"The text has {len(text)} characters; the limit is {limits.max_text_chars}.")
    if speed is None or not 0.25 <= float(speed) <= 4.0:
        raise ValueError(f"Speed must be between 0.25 and 4.0, got {speed!r}.")
    engine = load_engine(vocoder_name, cache)
    if voice and voice not in engine.voices:
        raise ValueError(f"Unknown voice {voice!r}; choose one of: {', '.join(engine.voices)}.")
    sr = engine.sample_rate
    block = int(CHUNK_SECONDS * sr)
    start = time.perf_counter()
    loading = start - received
    first: float | None = None
    produced = 0
    chunks = 0
    pending: list[np.ndarray] = []
    pending_len = 0
    stream = engine.stream(text, voice=voice or None, speed=float(speed))
    try:
        for chunk in stream:
            if len(chunk) == 0:
                continue
            if first is None:
                first = time.perf_counter() - received
            chunks += 1
            produced += len(chunk)
            pending.append(chunk)
            pending_len += len(chunk)
            if chunks <= EARLY_CHUNKS or pending_len >= block:
                audio = np.concatenate(pending)
                pending, pending_len = [], 0
                compute = time.perf_counter() - start
                yield (sr, to_int16(audio)), _stats(first, compute, produced / sr, False, loading)
    finally:
        stream.close()
    compute = time.perf_counter() - start
    tail = np.concatenate(pending) if pending else np.zeros(int(_TAIL * sr), dtype=np.float32)
    yield (sr, to_int16(tail)), _stats(first, compute, produced / sr, True, loading)


@user_errors
def speak_tab(
    text: str | None, voice: str | None, speed: float, vocoder_name: str, cache: ModelCache
) -> Iterator[tuple[tuple[int, np.ndarray], str]]:
    """The Speak tab's handler (a generator for ``gr.Audio(streaming=True)``)."""
    yield from speak_stream(text, voice, speed, vocoder_name, cache)
