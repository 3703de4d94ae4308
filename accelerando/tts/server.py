"""The speech API: OpenAI-shaped ``POST /v1/audio/speech`` (streamed), voices, health, metrics, WebSocket.

:func:`create_app` wraps a :class:`~accelerando.tts.engine.StreamingSynthesizer` in a FastAPI app
(``accelerando serve`` runs it with uvicorn). The routes live at module level on :data:`router`; the
app's settings, engine, metrics and stream slots are one :class:`SpeechServer` on ``app.state.speech``;
the API key is checked by a FastAPI dependency (declared in the OpenAPI document as a bearer scheme);
HTTP and WebSocket requests run through one :class:`SpeechSession`.

- ``POST /v1/audio/speech`` — body ``{model, input, voice, instructions, response_format, speed,
  stream_format}`` as OpenAI's: ``response_format`` mp3 (default), opus, aac, flac, wav or pcm, each
  encoded as the audio is made and streamed (:mod:`accelerando.tts.audio_formats` has each format's
  sample rate; ``pcm`` is 24 kHz s16le as OpenAI documents, ``X-Sample-Rate`` says the rate);
  ``stream_format: sse`` sends ``data:`` events ``{"type": "speech.audio.delta", "audio": <base64>}``,
  ``{"type": "speech.word_timings", "words": [{"word", "start", "end"}, ...]}`` (seconds in the output
  audio, from the acoustic model's durations; OpenAI clients ignore the type) and finally
  ``{"type": "speech.audio.done", "usage": ...}``; the decoded deltas concatenate to a file of
  ``response_format``. ``voice``: ours or an OpenAI name (:mod:`accelerando.tts.openai_names`); none
  takes the best-measured voice. ``model``: ``tts-1``, ``tts-1-hd``, ``gpt-4o-mini-tts`` or ours.
  ``instructions`` is accepted and does not change the audio (the voices have no style control).
  Types are strict (``"speed": "1.5"`` or ``true`` is a 400), the same over HTTP and WebSocket; a word
  longer than ``max_word_chars`` letters is a 400.
- ``GET /v1/audio/voices`` (voices, OpenAI aliases, the default), ``GET /health``, ``GET /metrics``
  (Prometheus text; ``?format=json`` for JSON): requests by endpoint and status, errors by type,
  time-to-first-audio and real-time factor histograms, active streams and the engine's counters.
- ``WS /v1/audio/speech/stream`` — client sends ``{"type": "config", "voice", "speed"}`` (optional,
  first), ``{"type": "text", "text": ...}`` pieces and ``{"type": "done"}``; server sends ``{"type":
  "ready", "sample_rate", "format": "pcm_s16le"}``, ``{"type": "words", "words": [...]}`` and binary
  PCM frames (at the engine's rate) as complete sentences are spoken, then ``{"type": "done",
  "samples"}`` and closes. Errors come as ``{"type": "error", "error": {...}}`` followed by a close.

Every error is JSON ``{"error": {"message", "type", "param", "code"}}`` with a 4xx status for bad
input (401 without the API key when one is set, 429 above ``max_concurrent`` streams, 405 with
``Allow``). A client that disconnects cancels its generation within one chunk.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Request, Security, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection

from .audio_formats import FORMATS, AudioEncoder
from .engine import SpeechStream, StreamingSynthesizer
from .openai_names import OPENAI_MODELS
from .openai_names import voice_aliases as alias_table
from .server_metrics import ServerMetrics, StatusRecorder
from .wav_stream import float_to_pcm16

__all__ = [
    "ApiError",
    "BackgroundServer",
    "SpeechRequest",
    "SpeechServer",
    "SpeechSession",
    "VoiceOptions",
    "create_app",
    "router",
]

MEDIA_TYPES = {name: info.media_type for name, info in FORMATS.items()}
ResponseFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]


class VoiceOptions(BaseModel):
    """What both transports accept about the voice (strict types: ``"1.5"`` or ``true`` is no speed).

    ``voice`` may also be OpenAI's voice object ``{"id": "slt"}``.
    """

    model_config = ConfigDict(extra="ignore", strict=True)

    @field_validator("voice", mode="before")
    @classmethod
    def _voice_object(cls, value: Any) -> Any:
        if isinstance(value, dict) and set(value) == {"id"} and isinstance(value["id"], str):
            return value["id"]
        return value

    voice: str | None = Field(
        None, max_length=200, description="A voice or an OpenAI voice name from /v1/audio/voices."
    )
    speed: float = Field(1.0, ge=0.25, le=4.0, allow_inf_nan=False, description="Pace; 2.0 is twice as fast.")


class SpeechRequest(VoiceOptions):
    """The OpenAI ``/v1/audio/speech`` request (unknown fields are ignored)."""

    model: str = Field(
        "accelerando-tts", max_length=200, description=f"Ours or OpenAI's: {', '.join(OPENAI_MODELS)}."
    )
    input: str = Field(..., min_length=1, max_length=4096, description="Text to speak.")
    instructions: str | None = Field(
        None,
        max_length=4096,
        description="Accepted for compatibility with OpenAI; it does not change the audio (no style control).",
    )
    response_format: ResponseFormat = Field(
        "mp3", description="mp3 (as OpenAI), opus, aac, flac, wav or pcm."
    )
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
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.type, self.param = status, message, code, type_, param
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        headers = dict(self.headers)
        if self.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if self.status == 429:
            headers["Retry-After"] = "1"
        return JSONResponse(self.body(), status_code=self.status, headers=headers or None)


def _validation_error(err: ValidationError | RequestValidationError) -> ApiError:
    first = err.errors()[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    message = first.get("msg", "invalid value")
    return ApiError(400, f"{param}: {message}" if param else message, "invalid_value", param=param)


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


_LONG_WORD = re.compile(r"[^\W_]+")
_DATED_OPENAI_MODEL = re.compile(rf"(?:{'|'.join(map(re.escape, OPENAI_MODELS))})-\d{{4}}-\d{{2}}-\d{{2}}")


@dataclass
class SpeechServer:
    """One server's engine, settings and shared state (``app.state.speech``); every route reads it."""

    engine: StreamingSynthesizer
    api_key: str | None = None
    max_concurrent: int = 4
    max_input_chars: int = 4096
    max_word_chars: int = 50
    model_name: str = "accelerando-tts"
    aliases: dict[str, str] = field(default_factory=dict)
    metrics: ServerMetrics = field(default_factory=ServerMetrics)

    def __post_init__(self) -> None:
        if self.max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, got {self.max_concurrent}.")
        if self.max_word_chars < 1:
            raise ValueError(f"max_word_chars must be >= 1, got {self.max_word_chars}.")
        self.slots = _Slots(self.max_concurrent, self.metrics)

    @property
    def model_names(self) -> list[str]:
        return list(dict.fromkeys([self.model_name, "accelerando-tts", "accelerando", *OPENAI_MODELS]))

    def check_key(self, token: str | None) -> None:
        if self.api_key is None:
            return
        if token is None or not hmac.compare_digest(token.strip().encode(), self.api_key.encode()):
            raise ApiError(
                401,
                "Missing or invalid API key; send 'Authorization: Bearer <key>'.",
                "invalid_api_key",
                "authentication_error",
            )

    def check_authorization_header(self, authorization: str | None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        self.check_key(token if scheme.lower() == "bearer" else None)

    def resolve_voice(self, voice: str | None) -> str:
        """Our voice for ``voice`` (ours, an OpenAI alias, or None for the best-measured one)."""
        if voice is None:
            return self.engine.default_voice
        if voice in self.engine.voices:
            return voice
        if voice in self.aliases:
            return self.aliases[voice]
        raise ApiError(
            400,
            f"Unknown voice {voice!r}; available voices: {', '.join(self.engine.voices)} "
            f"(and OpenAI's: {', '.join(self.aliases)}).",
            "invalid_voice",
            param="voice",
        )

    def check_model(self, model: str) -> None:
        """Ours or OpenAI's (also a dated snapshot such as ``gpt-4o-mini-tts-2025-12-15``); 400 otherwise."""
        if model not in self.model_names and not _DATED_OPENAI_MODEL.fullmatch(model):
            raise ApiError(
                400,
                f"Unknown model {model!r}; accepted: {', '.join(self.model_names)}.",
                "invalid_model",
                param="model",
            )

    def check_text(self, text: str, param: str = "input") -> None:
        if not text.strip():
            raise ApiError(400, f"{param} is empty; give some text to speak.", "empty_input", param=param)
        if len(text) > self.max_input_chars:
            raise ApiError(
                400,
                f"{param} has {len(text)} characters; the limit is {self.max_input_chars}.",
                "input_too_long",
                param=param,
            )
        self.check_words(text, param)

    def check_words(self, text: str, param: str = "input") -> None:
        """400 when ``text`` has a word longer than ``max_word_chars`` letters (e.g. ``"abc" * 500``)."""
        longest = max(_LONG_WORD.findall(text), key=len, default="")
        if len(longest) > self.max_word_chars:
            raise ApiError(
                400,
                f"{param} has a {len(longest)}-letter word ({longest[:20]!r}...); words are limited to "
                f"{self.max_word_chars} letters: split it with spaces or spell it out.",
                "word_too_long",
                param=param,
            )


def speech_server(connection: HTTPConnection) -> SpeechServer:
    """The :class:`SpeechServer` of the app serving ``connection`` (a FastAPI dependency)."""
    return connection.app.state.speech


_bearer = HTTPBearer(auto_error=False, description="The server's API key (`accelerando serve --api-key`).")


def require_api_key(
    server: SpeechServer = Depends(speech_server),
    credentials: HTTPAuthorizationCredentials | None = Security(_bearer),
) -> None:
    """401 unless the request carries ``Authorization: Bearer <key>`` (when the server has a key)."""
    server.check_key(credentials.credentials if credentials is not None else None)


def _next_chunk(stream: SpeechStream) -> np.ndarray | None:
    return next(stream, None)


class SpeechSession:
    """One text's synthesis, for HTTP and WebSocket alike.

    :meth:`start` starts the engine stream and waits for the first audio (so bad text is still a 400);
    iterating yields ``("words", [WordTiming, ...])`` and ``("audio", float32 chunk)`` events as they
    come (words before their audio; times offset by ``offset_samples``, for a WebSocket's later
    sentences); :meth:`close` cancels generation and is safe to call twice.
    """

    def __init__(
        self, server: SpeechServer, text: str, voice: str, speed: float, offset_samples: int = 0
    ) -> None:
        self.server, self.text, self.voice, self.speed = server, text, voice, speed
        self.offset = offset_samples / server.engine.sample_rate
        self.stream: SpeechStream | None = None
        self.first: np.ndarray | None = None
        self.samples = 0
        self.complete = False

    async def start(self) -> None:
        try:
            self.stream = self.server.engine.stream(self.text, voice=self.voice, speed=self.speed)
            self.first = await anyio.to_thread.run_sync(_next_chunk, self.stream, abandon_on_cancel=True)
        except ValueError as err:
            self.close()
            raise ApiError(400, str(err), "invalid_input", param="input") from None
        except BaseException:
            self.close()
            raise
        if self.first is None:
            self.close()
            raise ApiError(400, "The input produced no audio.", "invalid_input", param="input")

    def _words(self) -> list[dict[str, Any]]:
        assert self.stream is not None
        return [
            {"word": w.word, "start": round(w.start + self.offset, 4), "end": round(w.end + self.offset, 4)}
            for w in self.stream.take_words()
        ]

    async def events(self, disconnected: Callable[[], Any] | None = None) -> AsyncIterator[tuple[str, Any]]:
        if self.stream is None:
            raise RuntimeError("SpeechSession.start() must come first.")
        chunk = self.first
        while chunk is not None:
            words = self._words()
            if words:
                yield "words", words
            self.samples += len(chunk)
            yield "audio", chunk
            if disconnected is not None and await disconnected():
                return
            chunk = await anyio.to_thread.run_sync(_next_chunk, self.stream, abandon_on_cancel=True)
        words = self._words()
        if words:
            yield "words", words
        self.complete = True

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


def _sse_event(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def _usage(text: str, samples: int, hop_length: int) -> dict[str, int]:
    """OpenAI's usage shape: input tokens = characters, output tokens = audio frames (``hop_length``
    samples each); ``output_samples`` is ours."""
    output = -(-samples // hop_length)
    return {
        "input_tokens": len(text),
        "output_tokens": output,
        "total_tokens": len(text) + output,
        "output_samples": samples,
    }


async def _parse_speech_request(request: Request, server: SpeechServer) -> SpeechRequest:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(
            415,
            f"Content-Type must be application/json, got {content_type or 'none'!r}.",
            "unsupported_media_type",
        )
    raw = await request.body()
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
    try:
        req = SpeechRequest.model_validate(data)
    except ValidationError as err:
        raise _validation_error(err) from None
    server.check_model(req.model)
    server.check_text(req.input)
    return req


def _speech_openapi() -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": SpeechRequest.model_json_schema()}},
        }
    }


router = APIRouter()


@router.post(
    "/v1/audio/speech",
    summary="Text to speech (OpenAI shape), streamed",
    dependencies=[Depends(require_api_key)],
    openapi_extra=_speech_openapi(),
    responses={
        200: {
            "content": {m: {} for m in [*dict.fromkeys(MEDIA_TYPES.values()), "text/event-stream"]},
            "description": "Audio in response_format, streamed as it is made (or SSE events).",
        },
        400: {"description": "Bad input (JSON error body)."},
        401: {"description": "Missing or wrong API key."},
        415: {"description": "Content-Type is not application/json."},
        429: {"description": "Too many streams in progress."},
    },
)
async def speech(request: Request, server: SpeechServer = Depends(speech_server)) -> Response:
    started = time.perf_counter()
    req = await _parse_speech_request(request, server)
    voice = server.resolve_voice(req.voice)
    release = server.slots.acquire()
    session = SpeechSession(server, req.input, voice, req.speed)
    try:
        await session.start()
    except BaseException:
        release()
        raise
    metrics, rate = server.metrics, server.engine.sample_rate
    metrics.ttfa.observe(time.perf_counter() - started)
    encoder = AudioEncoder(req.response_format, rate)
    headers = {"X-Sample-Rate": str(encoder.output_rate), "X-Voice": voice, "Cache-Control": "no-cache"}
    sse = req.stream_format == "sse"

    def finish() -> None:
        session.close()
        encoder.close()
        release()
        if session.complete and session.samples:
            metrics.rtf.observe((time.perf_counter() - started) / (session.samples / rate))

    def delta(data: bytes) -> bytes:
        if not sse:
            return data
        return _sse_event({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()})

    async def body() -> AsyncIterator[bytes]:
        try:
            async for kind, item in session.events(request.is_disconnected):
                if kind == "words":
                    if sse:
                        yield _sse_event({"type": "speech.word_timings", "words": item})
                    continue
                data = encoder.encode(item)  # about a millisecond a chunk: no thread, no race with close()
                if data:
                    yield delta(data)
            if session.complete:
                data = encoder.finish()
                if data:
                    yield delta(data)
                if sse:
                    yield _sse_event(
                        {
                            "type": "speech.audio.done",
                            "usage": _usage(req.input, session.samples, server.engine.hop_length),
                        }
                    )
        finally:
            finish()

    media = encoder.media_type if not sse else "text/event-stream"
    return _ClosingStreamingResponse(body(), on_close=finish, media_type=media, headers=headers)


@router.get("/v1/audio/voices", summary="Voices this server speaks", dependencies=[Depends(require_api_key)])
async def voices(server: SpeechServer = Depends(speech_server)) -> dict[str, Any]:
    return {"voices": server.engine.voices, "aliases": server.aliases, "default": server.engine.default_voice}


@router.get("/health", summary="Liveness and capacity")
async def health(server: SpeechServer = Depends(speech_server)) -> dict[str, Any]:
    return {
        "status": "ok",
        "model": server.model_name,
        "sample_rate": server.engine.sample_rate,
        "active_streams": server.slots.active,
        "max_concurrent": server.max_concurrent,
    }


@router.get(
    "/metrics",
    summary="Prometheus text metrics (?format=json for JSON)",
    dependencies=[Depends(require_api_key)],
    response_class=PlainTextResponse,
    responses={
        200: {
            "description": "Prometheus text exposition (or JSON with ?format=json).",
            "content": {"text/plain; version=0.0.4": {}, "application/json": {}},
        }
    },
)
async def metrics_endpoint(
    server: SpeechServer = Depends(speech_server), format: Literal["prometheus", "json"] = "prometheus"
) -> Response:
    if format == "json":
        return JSONResponse(server.metrics.to_dict(server.engine))
    return PlainTextResponse(server.metrics.render(server.engine), media_type="text/plain; version=0.0.4")


@router.websocket("/v1/audio/speech/stream")
async def speech_ws(websocket: WebSocket) -> None:
    server: SpeechServer = websocket.app.state.speech
    await websocket.accept()
    release: Callable[[], None] | None = None
    session: SpeechSession | None = None
    try:
        try:
            server.check_authorization_header(websocket.headers.get("authorization"))
            release = server.slots.acquire()
        except ApiError as err:
            server.metrics.error(err.code)
            await websocket.send_json({"type": "error", **err.body()})
            await websocket.close(code=1008 if err.status == 401 else 1013)
            return
        options = VoiceOptions()
        voice = server.resolve_voice(None)
        buffer, total, got_text = "", 0, False
        rate = server.engine.sample_rate
        await websocket.send_json({"type": "ready", "sample_rate": rate, "format": "pcm_s16le"})
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
                    try:
                        options = VoiceOptions.model_validate(event)
                    except ValidationError as err:
                        raise _validation_error(err) from None
                    voice = server.resolve_voice(options.voice)
                    continue
                if kind == "text":
                    piece = event.get("text")
                    if not isinstance(piece, str):
                        raise ApiError(
                            400, "A text message needs a string 'text'.", "invalid_message", param="text"
                        )
                    got_text = True
                    buffer += piece
                    server.check_words(buffer, param="text")
                    if len(buffer) > server.max_input_chars:
                        raise ApiError(
                            400,
                            f"Buffered text exceeds {server.max_input_chars} characters.",
                            "input_too_long",
                        )
                    ready, buffer = split_ready_text(buffer)
                elif kind == "done":
                    ready, buffer = buffer, ""
                else:
                    raise ApiError(
                        400, f"Unknown message type {kind!r}; use config, text or done.", "invalid_message"
                    )
                if ready.strip():
                    server.check_text(ready, param="text")
            except ApiError as err:
                server.metrics.error(err.code)
                await websocket.send_json({"type": "error", **err.body()})
                await websocket.close(code=1008)
                return
            if ready.strip() and re.search(r"\w", ready):
                session = SpeechSession(server, ready, voice, options.speed, offset_samples=total)
                try:
                    await session.start()
                except ApiError:
                    session = None  # nothing speakable in this piece (e.g. only symbols)
                if session is not None:
                    async for what, item in session.events():
                        if what == "words":
                            await websocket.send_json({"type": "words", "words": item})
                        else:
                            total += len(item)
                            await websocket.send_bytes(float_to_pcm16(item))
                    session = None
            if kind == "done":
                await websocket.send_json({"type": "done", "samples": total, "sample_rate": rate})
                await websocket.close(code=1000)
                return
    except (WebSocketDisconnect, RuntimeError, OSError):
        return  # the client went away; `finally` cancels generation
    finally:
        if session is not None:
            session.close()
        if release is not None:
            release()


# ---------------------------------------------------------------------------------------- app
async def _api_error(request: Request, err: ApiError) -> JSONResponse:
    request.app.state.speech.metrics.error(err.code)
    return err.response()


async def _request_validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
    return await _api_error(request, _validation_error(err))


async def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
    codes = {404: "not_found", 405: "method_not_allowed"}
    code = codes.get(err.status_code, "http_error")
    return await _api_error(request, ApiError(err.status_code, str(err.detail), code, headers=err.headers))


async def _internal_error(request: Request, err: Exception) -> JSONResponse:
    return await _api_error(
        request, ApiError(500, f"Internal error: {type(err).__name__}", "internal_error", "server_error")
    )


def create_app(
    engine: StreamingSynthesizer,
    api_key: str | None = None,
    max_concurrent: int = 4,
    max_input_chars: int = 4096,
    model_name: str = "accelerando-tts",
    max_word_chars: int = 50,
    voice_aliases: Mapping[str, str] | None = None,
) -> FastAPI:
    """The speech API around ``engine`` (see the module docstring for the endpoints).

    ``voice_aliases`` overrides entries of the OpenAI voice table (:mod:`accelerando.tts.openai_names`).
    """
    server = SpeechServer(
        engine,
        api_key=api_key,
        max_concurrent=max_concurrent,
        max_input_chars=max_input_chars,
        max_word_chars=max_word_chars,
        model_name=model_name,
        aliases=alias_table(engine.voices, engine.default_voice, voice_aliases),
    )
    app = FastAPI(
        title="accelerando speech API",
        version="1.0",
        description="OpenAI-compatible streaming text-to-speech (Incremental FastPitch + a mel vocoder).",
    )
    app.state.speech = server
    app.state.engine, app.state.metrics, app.state.slots = engine, server.metrics, server.slots
    app.add_middleware(StatusRecorder, metrics=server.metrics)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
    app.include_router(router)
    _document_errors(app.openapi(), max_input_chars)
    return app


_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": "string"},
            },
        }
    },
}


def _document_errors(schema: dict[str, Any], max_input_chars: int) -> None:
    """Make the OpenAPI document say what the server sends: every 4xx has the ``{"error": ...}`` body, bad
    parameters are a 400 (not FastAPI's 422, which this server never sends), routes behind the key may
    answer 401, and the speech route's 200 is audio or SSE only."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = _ERROR_SCHEMA
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, item in schema["paths"].items():
        for operation in item.values():
            responses = operation["responses"]
            if responses.pop("422", None) is not None or path == "/v1/audio/speech":
                responses.setdefault("400", {"description": "Bad input."})
            if operation.get("security"):
                responses.setdefault("401", {"description": "Missing or wrong API key."})
            for status, response in responses.items():
                if status.startswith("4"):
                    response["content"] = error
    for name in ("HTTPValidationError", "ValidationError"):
        schema["components"]["schemas"].pop(name, None)
    speech = schema["paths"]["/v1/audio/speech"]["post"]
    speech["responses"]["200"]["content"].pop("application/json", None)
    speech["requestBody"]["content"]["application/json"]["schema"]["properties"]["input"]["maxLength"] = (
        max_input_chars
    )


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
