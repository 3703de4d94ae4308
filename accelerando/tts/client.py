"""A small Python client for the accelerando speech API (``accelerando serve``).

Example::

    from accelerando.tts.client import SpeechClient

    client = SpeechClient("http://127.0.0.1:8000", api_key=None)
    for chunk in client.stream("Hello there.", voice=None, speed=1.0):  # float32 chunks, as made
        play(chunk, client.sample_rate)
    client.save("Hello there.", "hello.wav")
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from .wav_stream import WAV_HEADER_BYTES, parse_wav, pcm16_to_float, wav_sample_rate

__all__ = ["SpeechAPIError", "SpeechClient"]


class SpeechAPIError(RuntimeError):
    """An error answer of the server: ``status``, ``code`` and the server's message."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(f"speech server answered {status}: {message}")
        self.status, self.code = status, code


class SpeechClient:
    """Talks to ``POST /v1/audio/speech``, ``GET /v1/audio/voices`` and ``GET /health``.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000``.
        api_key: sent as ``Authorization: Bearer <key>`` when given.
        timeout: seconds per network operation.
    """

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = timeout
        self.sample_rate: int | None = None

    def _client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=self.headers, timeout=self.timeout)

    @staticmethod
    def _raise_for_error(response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        response.read()
        try:
            error = response.json()["error"]
            raise SpeechAPIError(response.status_code, error["message"], error.get("code"))
        except (ValueError, KeyError, TypeError):
            raise SpeechAPIError(response.status_code, response.text[:200]) from None

    def health(self) -> dict[str, Any]:
        with self._client() as client:
            response = client.get("/health")
            self._raise_for_error(response)
            return response.json()

    def voices(self) -> list[str]:
        with self._client() as client:
            response = client.get("/v1/audio/voices")
            self._raise_for_error(response)
            return response.json()["voices"]

    def _body(self, text: str, voice: str | None, speed: float, response_format: str) -> dict[str, Any]:
        body: dict[str, Any] = {"model": "accelerando-tts", "input": text, "speed": speed}
        body["response_format"] = response_format
        if voice is not None:
            body["voice"] = voice
        return body

    def speech(
        self, text: str, voice: str | None = None, speed: float = 1.0, response_format: str = "wav"
    ) -> bytes:
        """The whole response body (a streamed WAV, raw s16le PCM or FLAC)."""
        with self._client() as client:
            response = client.post("/v1/audio/speech", json=self._body(text, voice, speed, response_format))
            self._raise_for_error(response)
            return response.content

    def stream(self, text: str, voice: str | None = None, speed: float = 1.0) -> Iterator[np.ndarray]:
        """float32 audio chunks as the server makes them, at the engine's own rate (a streamed WAV: its
        44-byte header gives :attr:`sample_rate`, the rest is s16le PCM)."""
        with self._client() as client:
            body = self._body(text, voice, speed, "wav")
            with client.stream("POST", "/v1/audio/speech", json=body) as response:
                self._raise_for_error(response)
                header, carry = b"", b""
                for data in response.iter_bytes():
                    if len(header) < WAV_HEADER_BYTES:
                        need = WAV_HEADER_BYTES - len(header)
                        header, data = header + data[:need], data[need:]
                        if len(header) < WAV_HEADER_BYTES:
                            continue
                        self.sample_rate = wav_sample_rate(header)
                    data = carry + data
                    usable = len(data) - len(data) % 2
                    carry = data[usable:]
                    if usable:
                        yield pcm16_to_float(data[:usable])

    def synthesize(self, text: str, voice: str | None = None, speed: float = 1.0) -> tuple[int, np.ndarray]:
        """``(sample_rate, float32 audio)`` of the whole utterance."""
        sample_rate, audio = parse_wav(self.speech(text, voice, speed, "wav"))
        self.sample_rate = sample_rate
        return sample_rate, audio

    def save(self, text: str, path: str | Path, voice: str | None = None, speed: float = 1.0) -> Path:
        """Write the utterance to ``path`` (format from the suffix: .wav, .flac; others via soundfile)."""
        import soundfile as sf

        sample_rate, audio = self.synthesize(text, voice, speed)
        sf.write(str(path), audio, sample_rate)
        return Path(path)
