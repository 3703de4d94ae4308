"""The Speak tab: text → streamed speech (Incremental FastPitch + a chosen vocoder), with TTFA and RTF."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from accelerando.demos.checkpoints import ModelCache
from accelerando.demos.common import LIMITS, Limits, to_int16, user_errors
from accelerando.demos.vocoding import load_variant, variant_by_name

__all__ = ["CHUNK_SECONDS", "load_engine", "speak_stream", "voices"]

CHUNK_SECONDS = 1.0  # Gradio's guide: streamed audio chunks of about a second or more
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


def _stats(ttfa: float | None, compute: float, audio_seconds: float, done: bool) -> str:
    first = "–" if ttfa is None else f"{ttfa * 1000:.0f} ms"
    rtf = compute / audio_seconds if audio_seconds > 0 else float("nan")
    state = "done" if done else "streaming…"
    return (
        f"**{state}** · time to first audio: **{first}** · audio: {audio_seconds:.2f} s · "
        f"compute: {compute:.2f} s · RTF: **{rtf:.3f}** (below 1 is faster than real time)"
    )


def speak_stream(
    text: str | None,
    voice: str | None,
    speed: float,
    vocoder_name: str,
    cache: ModelCache,
    limits: Limits = LIMITS,
) -> Iterator[tuple[tuple[int, np.ndarray], str]]:
    """Yield ``((sr, int16 chunk of about CHUNK_SECONDS), stats markdown)`` while speech is made.

    The last yield carries the final time to first audio and real-time factor. Bad text, voice or
    speed raise ``ValueError`` before any audio.
    """
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
    ttfa: float | None = None
    produced = 0
    pending: list[np.ndarray] = []
    pending_len = 0
    stream = engine.stream(text, voice=voice or None, speed=float(speed))
    try:
        for chunk in stream:
            if ttfa is None:
                ttfa = time.perf_counter() - start
            produced += len(chunk)
            pending.append(chunk)
            pending_len += len(chunk)
            if pending_len >= block:
                audio = np.concatenate(pending)
                pending, pending_len = [], 0
                compute = time.perf_counter() - start
                yield (sr, to_int16(audio)), _stats(ttfa, compute, produced / sr, False)
    finally:
        stream.close()
    compute = time.perf_counter() - start
    tail = np.concatenate(pending) if pending else np.zeros(int(_TAIL * sr), dtype=np.float32)
    yield (sr, to_int16(tail)), _stats(ttfa, compute, produced / sr, True)


@user_errors
def speak_tab(
    text: str | None, voice: str | None, speed: float, vocoder_name: str, cache: ModelCache
) -> Iterator[tuple[tuple[int, np.ndarray], str]]:
    """The Speak tab's handler (a generator for ``gr.Audio(streaming=True)``)."""
    yield from speak_stream(text, voice, speed, vocoder_name, cache)
