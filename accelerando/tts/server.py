"""The speech API: OpenAI-shaped ``POST /v1/audio/speech`` (streamed), voices, health, metrics, WebSocket.

:func:`create_app` wraps a :class:`~accelerando.tts.engine.StreamingSynthesizer` in a FastAPI app
(``accelerando serve`` runs it with uvicorn):

- ``POST /v1/audio/speech`` — body ``{model, input, voice, response_format: wav|pcm|flac, speed:
  0.25–4.0, stream_format: audio|sse}``. ``audio`` + ``wav``/``pcm`` streams the body as chunks are
  made (WAV: a header with unknown-length ``0xFFFFFFFF`` sizes, then 16-bit mono PCM; ``pcm``:
  raw s16le at ``X-Sample-Rate``); ``flac`` is sent whole. ``sse`` sends ``data:`` events
  ``{"type": "speech.audio.delta", "audio": <base64>}`` then ``{"type": "speech.audio.done"}``;
  the decoded deltas concatenate to a file of ``response_format``.
- ``GET /v1/audio/voices``, ``GET /health``, ``GET /metrics`` (Prometheus text; ``?format=json``
  for JSON): requests by endpoint and status, errors by type, time-to-first-audio and real-time
  factor histograms, active streams and the engine's counters.
- ``WS /v1/audio/speech/stream`` — client sends ``{"type": "config", "voice", "speed"}`` (optional,
  first), ``{"type": "text", "text": ...}`` pieces and ``{"type": "done"}``; server sends ``{"type":
  "ready", "sample_rate", "format": "pcm_s16le"}``, binary PCM frames as complete sentences are
  spoken, then ``{"type": "done", "samples"}`` and closes. Errors come as ``{"type": "error",
  "error": {...}}`` followed by a close.

Every error is JSON ``{"error": {"message", "type", "param", "code"}}`` with a 4xx status for bad
input (401 without the API key when one is set, 429 above ``max_concurrent`` streams). A client
that disconnects cancels its generation within one chunk.
"""

from __future__ import annotations

import base64
import hmac
import json
import math
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import anyio
import numpy as np
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .engine import SpeechStream, StreamingSynthesizer
from .server_metrics import ServerMetrics, StatusRecorder
from .wav_stream import encode_flac, float_to_pcm16, wav_header

__all__ = ["ApiError", "BackgroundServer", "SpeechRequest", "create_app"]

MEDIA_TYPES = {"wav": "audio/wav", "pcm": "audio/pcm", "flac": "audio/flac"}


class SpeechRequest(BaseModel):
    """The OpenAI ``/v1/audio/speech`` request (unknown fields such as ``instructions`` are ignored)."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field("accelerando-tts", max_length=200, description="Accepted for compatibility.")
    input: str = Field(..., min_length=1, max_length=4096, description="Text to speak.")
    voice: str | None = Field(None, max_length=200, description="A name from /v1/audio/voices.")
    response_format: Literal["wav", "pcm", "flac"] = "wav"
    speed: float = Field(1.0, ge=0.25, le=4.0, allow_inf_nan=False)
    stream_format: Literal["audio", "sse"] = "audio"


class ApiError(Exception):
    """An error answered as ``{"error": {...}}`` with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        type_: str = "invalid_request_error",
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.type, self.param = status, message, code, type_, param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        if self.status == 429:
            headers = {"Retry-After": "1"}
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


# ---------------------------------------------------------------------------------------- helpers
def _next_chunk(stream: SpeechStream) -> np.ndarray | None:
    return next(stream, None)


def _validation_message(err: ValidationError | RequestValidationError) -> tuple[str, str | None]:
    first = err.errors()[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    message = first.get("msg", "invalid value")
    return (f"{param}: {message}" if param else message), param


class _Slots:
    """Counts streams in flight; ``acquire`` refuses (429) instead of queueing."""

    def __init__(self, limit: int, metrics: ServerMetrics) -> None:
        self.limit, self.metrics, self.active = limit, metrics, 0

    def acquire(self) -> Callable[[], None]:
        if self.active >= self.limit:
            raise ApiError(
                429,
                f"The server is busy ({self.limit} streams in progress); retry shortly.",
                "server_busy",
                "rate_limit_error",
            )
        self.active += 1
        self.metrics.active_streams = self.active
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.active -= 1
                self.metrics.active_streams = self.active

        return release


_SENTENCE_BOUNDARY = re.compile(r"[.!?;:]+[\"')\]]*\s+")


def split_ready_text(buffer: str, max_chars: int = 400) -> tuple[str, str]:
    """``(text ready to speak, rest)``: up to the last sentence end followed by whitespace."""
    ends = [m.end() for m in _SENTENCE_BOUNDARY.finditer(buffer)]
    if ends:
        return buffer[: ends[-1]], buffer[ends[-1] :]
    if len(buffer) > max_chars and " " in buffer:
        cut = buffer.rindex(" ") + 1
        return buffer[:cut], buffer[cut:]
    return "", buffer


# ---------------------------------------------------------------------------------------- app
def create_app(
    engine: StreamingSynthesizer,
    api_key: str | None = None,
    max_concurrent: int = 4,
    max_input_chars: int = 4096,
    model_name: str = "accelerando-tts",
) -> FastAPI:
    """The speech API around ``engine`` (see the module docstring for the endpoints)."""
    if max_concurrent < 1:
        raise ValueError(f"max_concurrent must be >= 1, got {max_concurrent}.")
    app = FastAPI(
        title="accelerando speech API",
        version="1.0",
        description="OpenAI-compatible streaming text-to-speech (Incremental FastPitch + a mel vocoder).",
    )
    metrics = ServerMetrics()
    slots = _Slots(max_concurrent, metrics)
    app.state.engine, app.state.metrics, app.state.slots = engine, metrics, slots
    app.add_middleware(StatusRecorder, metrics=metrics)

    def error_response(err: ApiError) -> JSONResponse:
        metrics.error(err.code)
        return err.response()

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, err: ApiError) -> JSONResponse:
        return error_response(err)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(err)
        return error_response(ApiError(400, message, "invalid_value", param=param))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        return error_response(
            ApiError(err.status_code, str(err.detail), codes.get(err.status_code, "http_error"))
        )

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, err: Exception) -> JSONResponse:
        return error_response(
            ApiError(500, f"Internal error: {type(err).__name__}", "internal_error", "server_error")
        )

    def check_auth(authorization: str | None) -> None:
        if api_key is None:
            return
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            raise ApiError(
                401,
                "Missing or invalid API key; send 'Authorization: Bearer <key>'.",
                "invalid_api_key",
                "authentication_error",
            )

    def parse_request(raw: bytes, content_type: str) -> SpeechRequest:
        if content_type.split(";")[0].strip().lower() != "application/json":
            raise ApiError(
                415,
                f"Content-Type must be application/json, got {content_type or 'none'!r}.",
                "unsupported_media_type",
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ApiError(
                400,
                f"The request body is not valid UTF-8 ({err.reason} at byte {err.start}).",
                "invalid_encoding",
            ) from None
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as err:
            raise ApiError(400, f"The request body is not valid JSON: {err}.", "invalid_json") from None
        if not isinstance(data, dict):
            raise ApiError(
                400, f"The request body must be a JSON object, got {type(data).__name__}.", "invalid_json"
            )
        if data.get("response_format") in ("mp3", "opus", "aac"):
            raise ApiError(
                400,
                f"response_format {data['response_format']!r} is not supported; use wav, pcm or flac.",
                "unsupported_format",
                param="response_format",
            )
        try:
            req = SpeechRequest.model_validate(data)
        except ValidationError as err:
            message, param = _validation_message(err)
            raise ApiError(400, message, "invalid_value", param=param) from None
        if not req.input.strip():
            raise ApiError(400, "input is empty; give some text to speak.", "empty_input", param="input")
        if len(req.input) > max_input_chars:
            raise ApiError(
                400,
                f"input has {len(req.input)} characters; the limit is {max_input_chars}.",
                "input_too_long",
                param="input",
            )
        if req.voice is not None and req.voice not in engine.voices:
            raise ApiError(
                400,
                f"Unknown voice {req.voice!r}; available voices: {', '.join(engine.voices)}.",
                "invalid_voice",
                param="voice",
            )
        return req

    async def start_stream(text: str, voice: str | None, speed: float) -> tuple[SpeechStream, np.ndarray]:
        """Start generation and wait for the first chunk, so bad text is still a 400."""
        try:
            stream = engine.stream(text, voice=voice, speed=speed)
        except ValueError as err:
            raise ApiError(400, str(err), "invalid_input", param="input") from None
        try:
            first = await anyio.to_thread.run_sync(_next_chunk, stream, abandon_on_cancel=True)
        except ValueError as err:
            stream.close()
            raise ApiError(400, str(err), "invalid_input", param="input") from None
        except BaseException:
            stream.close()
            raise
        if first is None:
            stream.close()
            raise ApiError(400, "The input produced no audio.", "invalid_input", param="input")
        return stream, first

    speech_schema = SpeechRequest.model_json_schema()
    speech_schema["properties"]["input"]["maxLength"] = max_input_chars

    @app.post(
        "/v1/audio/speech",
        summary="Text to speech (OpenAI shape), streamed",
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": speech_schema}}}
        },
        responses={
            200: {
                "content": {m: {} for m in [*MEDIA_TYPES.values(), "text/event-stream"]},
                "description": "Audio.",
            },
            400: {"description": "Bad input (JSON error body)."},
            401: {"description": "Missing or wrong API key."},
            415: {"description": "Content-Type is not application/json."},
            429: {"description": "Too many streams in progress."},
        },
    )
    async def speech(request: Request) -> Response:
        started = time.perf_counter()
        check_auth(request.headers.get("authorization"))
        req = parse_request(await request.body(), request.headers.get("content-type", ""))
        release = slots.acquire()
        try:
            stream, first = await start_stream(req.input, req.voice, req.speed)
        except BaseException:
            release()
            raise
        metrics.ttfa.observe(time.perf_counter() - started)
        rate = engine.sample_rate
        headers = {"X-Sample-Rate": str(rate), "Cache-Control": "no-cache"}
        samples = [0]
        complete = [False]

        def finish() -> None:
            stream.close()
            release()
            if complete[0] and samples[0]:
                metrics.rtf.observe((time.perf_counter() - started) / (samples[0] / rate))

        async def chunks() -> AsyncIterator[np.ndarray]:
            chunk: np.ndarray | None = first
            while chunk is not None:
                samples[0] += len(chunk)
                yield chunk
                if await request.is_disconnected():
                    return
                chunk = await anyio.to_thread.run_sync(_next_chunk, stream, abandon_on_cancel=True)
            complete[0] = True

        if req.response_format == "flac":
            try:
                parts = [c async for c in chunks()]
            finally:
                finish()
            body = encode_flac(np.concatenate(parts), rate)
            if req.stream_format == "sse":
                events = _sse_event({"type": "speech.audio.delta", "audio": base64.b64encode(body).decode()})
                events += _sse_event({"type": "speech.audio.done", "usage": _usage(req.input, samples[0])})
                return Response(events, media_type="text/event-stream", headers=headers)
            return Response(body, media_type=MEDIA_TYPES["flac"], headers=headers)

        async def audio_bytes() -> AsyncIterator[bytes]:
            header = wav_header(rate) if req.response_format == "wav" else b""
            async for chunk in chunks():
                yield header + float_to_pcm16(chunk)
                header = b""

        async def body() -> AsyncIterator[bytes]:
            try:
                if req.stream_format == "audio":
                    async for data in audio_bytes():
                        yield data
                else:
                    async for data in audio_bytes():
                        yield _sse_event(
                            {"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()}
                        )
                    if complete[0]:
                        yield _sse_event(
                            {"type": "speech.audio.done", "usage": _usage(req.input, samples[0])}
                        )
            finally:
                finish()

        media = MEDIA_TYPES[req.response_format] if req.stream_format == "audio" else "text/event-stream"
        return _ClosingStreamingResponse(body(), on_close=finish, media_type=media, headers=headers)

    @app.get("/v1/audio/voices", summary="Voices this server speaks")
    async def voices(request: Request) -> dict[str, Any]:
        check_auth(request.headers.get("authorization"))
        return {"voices": engine.voices, "default": engine.default_voice}

    @app.get("/health", summary="Liveness and capacity")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": model_name,
            "sample_rate": engine.sample_rate,
            "active_streams": slots.active,
            "max_concurrent": max_concurrent,
        }

    @app.get("/metrics", summary="Prometheus text metrics (?format=json for JSON)")
    async def metrics_endpoint(
        request: Request, format: Literal["prometheus", "json"] = "prometheus"
    ) -> Response:
        check_auth(request.headers.get("authorization"))
        if format == "json":
            return JSONResponse(metrics.to_dict(engine))
        return PlainTextResponse(metrics.render(engine), media_type="text/plain; version=0.0.4")

    @app.websocket("/v1/audio/speech/stream")
    async def speech_ws(websocket: WebSocket) -> None:
        await websocket.accept()
        release: Callable[[], None] | None = None
        stream: SpeechStream | None = None
        try:
            try:
                check_auth(websocket.headers.get("authorization"))
                release = slots.acquire()
            except ApiError as err:
                metrics.error(err.code)
                await websocket.send_json({"type": "error", **err.body()})
                await websocket.close(code=1008 if err.status == 401 else 1013)
                return
            voice: str | None = None
            speed = 1.0
            buffer, total, got_text = "", 0, False
            await websocket.send_json(
                {"type": "ready", "sample_rate": engine.sample_rate, "format": "pcm_s16le"}
            )
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                try:
                    event = _ws_event(message)
                    kind = event.get("type")
                    if kind == "config":
                        if got_text:
                            raise ApiError(400, "config must come before any text.", "invalid_message")
                        voice, speed = _ws_config(event, engine)
                        continue
                    if kind == "text":
                        piece = event.get("text")
                        if not isinstance(piece, str):
                            raise ApiError(
                                400, "A text message needs a string 'text'.", "invalid_message", param="text"
                            )
                        got_text = True
                        buffer += piece
                        if len(buffer) > max_input_chars:
                            raise ApiError(
                                400, f"Buffered text exceeds {max_input_chars} characters.", "input_too_long"
                            )
                        ready, buffer = split_ready_text(buffer)
                    elif kind == "done":
                        ready, buffer = buffer, ""
                    else:
                        raise ApiError(
                            400,
                            f"Unknown message type {kind!r}; use config, text or done.",
                            "invalid_message",
                        )
                except ApiError as err:
                    metrics.error(err.code)
                    await websocket.send_json({"type": "error", **err.body()})
                    await websocket.close(code=1008)
                    return
                if ready.strip() and re.search(r"\w", ready):
                    try:
                        stream = engine.stream(ready, voice=voice, speed=speed)
                    except ValueError:
                        stream = None  # nothing speakable in this piece (e.g. only symbols)
                    while stream is not None:
                        chunk = await anyio.to_thread.run_sync(_next_chunk, stream, abandon_on_cancel=True)
                        if chunk is None:
                            stream = None
                            break
                        total += len(chunk)
                        await websocket.send_bytes(float_to_pcm16(chunk))
                if kind == "done":
                    await websocket.send_json(
                        {"type": "done", "samples": total, "sample_rate": engine.sample_rate}
                    )
                    await websocket.close(code=1000)
                    return
        except (WebSocketDisconnect, RuntimeError, OSError):
            return  # the client went away; `finally` cancels generation
        finally:
            if stream is not None:
                stream.close()
            if release is not None:
                release()

    return app


def _ws_event(message: dict[str, Any]) -> dict[str, Any]:
    text = message.get("text")
    if text is None:
        raise ApiError(
            400, "Send JSON text messages (config, text, done), not binary frames.", "invalid_message"
        )
    try:
        event = json.loads(text)
    except json.JSONDecodeError:
        raise ApiError(400, "Messages must be JSON objects.", "invalid_json") from None
    if not isinstance(event, dict):
        raise ApiError(400, "Messages must be JSON objects.", "invalid_json")
    return event


def _ws_config(event: dict[str, Any], engine: StreamingSynthesizer) -> tuple[str | None, float]:
    voice = event.get("voice")
    if voice is not None and voice not in engine.voices:
        raise ApiError(
            400,
            f"Unknown voice {voice!r}; available voices: {', '.join(engine.voices)}.",
            "invalid_voice",
            param="voice",
        )
    speed = event.get("speed", 1.0)
    if (
        isinstance(speed, bool)
        or not isinstance(speed, (int, float))
        or not math.isfinite(speed)
        or not 0.25 <= speed <= 4.0
    ):
        raise ApiError(
            400, f"speed must be a number in 0.25–4.0, got {speed!r}.", "invalid_value", param="speed"
        )
    return voice, float(speed)


def _sse_event(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def _usage(text: str, samples: int) -> dict[str, int]:
    return {"input_tokens": len(text), "output_samples": samples}


class _ClosingStreamingResponse(StreamingResponse):
    """A StreamingResponse that always runs ``on_close`` (also when the send is cancelled)."""

    def __init__(self, content: Any, on_close: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.on_close = on_close

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()


def websocket_impl() -> str:
    """uvicorn's ``ws`` setting: the sans-I/O websockets protocol where available (no deprecation)."""
    from uvicorn.config import WS_PROTOCOLS

    return "websockets-sansio" if "websockets-sansio" in WS_PROTOCOLS else "auto"


class BackgroundServer:
    """uvicorn serving ``app`` in a daemon thread (tests, benchmarks, notebooks).

    ``port=0`` picks a free port; :attr:`url` is set once started. Use as a context manager::

        with BackgroundServer(create_app(engine)) as server:
            SpeechClient(server.url).save("Hello.", "hello.wav")
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        import socket

        import uvicorn

        if port == 0:
            with socket.socket() as sock:
                sock.bind((host, 0))
                port = sock.getsockname()[1]
        self.host, self.port = host, port
        self.url = f"http://{host}:{port}"
        config = uvicorn.Config(app, host=host, port=port, log_level=log_level, ws=websocket_impl())
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
