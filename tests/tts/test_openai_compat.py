"""Real clients against a live speech server on 127.0.0.1: the official ``openai`` package and schemathesis.

The ``openai`` client streams every ``response_format`` (decoded by the ``ffmpeg`` command-line tool, not by
our own code), sends its bearer key, maps errors to its exception types; schemathesis fuzzes every
operation of the server's own ``/openapi.json`` within a bounded budget.
"""

from __future__ import annotations

import base64
import inspect
import json
import shutil
import subprocess
import time
import typing

import httpx
import hypothesis
import numpy as np
import openai
import pytest
import schemathesis
import scipy.signal
import soxr
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from openai import OpenAI
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accelerando.tts.audio_formats import FORMATS
from accelerando.tts.server import BackgroundServer, create_app
from accelerando.tts.wav_stream import pcm16_to_float

TEXT = "Hello world, this is a compatibility test. A second sentence follows here!"
API_KEY = "sk-test"
ENGINE_RATE = 22050  # the tiny engine's (LocalVocoder's) rate
DECODE_RATE = 24000  # ffmpeg resamples every format to OpenAI's pcm rate
LOSSY = ("mp3", "opus", "aac")
# Lowest peak correlation with the reference, by format. The tiny random vocoder makes noise-like audio,
# the worst case for a perceptual codec: 64 kbit/s AAC keeps 0.89 of it (the ffmpeg CLI's own AAC encoder
# at 64k too; 0.99 at 96k, 0.998 on a harmonic signal), MP3 0.96, Opus 0.975. Lossless formats reach 0.989
# only because ffmpeg's resampler (22050 -> 24000) differs from soxr's near Nyquist.
MIN_CORRELATION = {"mp3": 0.9, "opus": 0.9, "aac": 0.85, "flac": 0.98, "wav": 0.98, "pcm": 0.999}
FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"


@pytest.fixture(scope="module")
def server(tiny_engine):
    # "alloy" -> "bob" (not the default voice), so the client's OpenAI voice name is seen to take effect
    app = create_app(tiny_engine, api_key=API_KEY, max_input_chars=300, voice_aliases={"alloy": "bob"})
    with BackgroundServer(app) as live:
        yield live


@pytest.fixture(scope="module")
def client(server):
    with OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0, timeout=60) as c:
        yield c


def _ffmpeg_decode(data: bytes) -> np.ndarray:
    """float32 mono at 24 kHz of any file, decoded from stdin by the ffmpeg command-line tool."""
    if not shutil.which(FFMPEG):
        pytest.fail("the ffmpeg command-line tool is missing; `make system-deps` installs it")
    command = [FFMPEG, "-hide_banner", "-loglevel", "error", "-threads", "1", "-i", "pipe:0"]
    command += ["-f", "f32le", "-ac", "1", "-ar", str(DECODE_RATE), "pipe:1"]
    result = subprocess.run(command, input=data, capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return np.frombuffer(result.stdout, dtype="<f4")


def _best_correlation(decoded: np.ndarray, reference: np.ndarray, max_lag: int = 3000) -> float:
    """Peak normalized cross-correlation within ±``max_lag`` samples (codecs delay a little)."""
    n = min(len(decoded), len(reference))
    a, b = decoded[:n].astype(np.float64), reference[:n].astype(np.float64)
    lags = scipy.signal.correlation_lags(n, n)
    xcorr = scipy.signal.correlate(a, b, method="fft")[np.abs(lags) <= max_lag]
    return float(xcorr.max() / np.sqrt((a**2).sum() * (b**2).sum()))


def _sse_events(body: bytes) -> list[dict]:
    lines = body.decode().splitlines()
    return [json.loads(line[len("data: ") :]) for line in lines if line.startswith("data: ")]


# ---------------------------------------------------------------------------------------- openai client
@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_openai_client_streams_every_format(client, tiny_engine, fmt) -> None:
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=TEXT, response_format=fmt
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == FORMATS[fmt].media_type
        voice = response.headers["x-voice"]
        rate = int(response.headers["x-sample-rate"])
        data = b"".join(response.iter_bytes())
    assert voice == "bob"  # the alias table's voice for "alloy"
    if fmt == "pcm":  # OpenAI's pcm: headerless 16-bit little-endian mono at 24 kHz
        assert rate == DECODE_RATE and len(data) % 2 == 0
        decoded = pcm16_to_float(data)
    else:
        assert rate == (FORMATS[fmt].sample_rate or ENGINE_RATE)
        decoded = _ffmpeg_decode(data)
    whole = tiny_engine.synthesize(TEXT, voice=voice)
    reference = soxr.resample(whole, ENGINE_RATE, DECODE_RATE, "HQ")
    # the lossy codecs add priming and a padded last frame (20-50 ms); the others only resampling's rounding
    tolerance = 0.1 if fmt in LOSSY else 0.005
    assert abs(len(decoded) / DECODE_RATE - len(whole) / ENGINE_RATE) < tolerance
    assert _best_correlation(decoded, reference) > MIN_CORRELATION[fmt]


def test_openai_client_non_streaming_with_speed_and_instructions(client, tiny_engine) -> None:
    response = client.audio.speech.create(
        model="gpt-4o-mini-tts",
        voice="alloy",
        input=TEXT,
        response_format="wav",
        speed=1.5,
        instructions="Speak slowly.",  # accepted, no effect on the audio
    )
    assert response.response.status_code == 200 and response.response.headers["x-voice"] == "bob"
    decoded = _ffmpeg_decode(response.content)
    whole = tiny_engine.synthesize(TEXT, voice="bob", speed=1.5)
    assert len(whole) < 0.8 * len(tiny_engine.synthesize(TEXT, voice="bob"))  # 1.5x is shorter
    assert abs(len(decoded) / DECODE_RATE - len(whole) / ENGINE_RATE) < 0.005
    assert (
        _best_correlation(decoded, soxr.resample(whole, ENGINE_RATE, DECODE_RATE, "HQ"))
        > MIN_CORRELATION["wav"]
    )


def test_openai_client_errors(server, client) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        client.audio.speech.create(model="tts-1", voice="nobody", input="Hi.")
    assert bad.value.status_code == 400 and "nobody" in bad.value.message
    assert bad.value.code == "invalid_voice" and bad.value.param == "voice"

    wrong_key = OpenAI(base_url=f"{server.url}/v1", api_key="sk-wrong", max_retries=0, timeout=60)
    with wrong_key, pytest.raises(openai.AuthenticationError) as denied:
        wrong_key.audio.speech.create(model="tts-1", voice="alloy", input="Hi.")
    assert denied.value.status_code == 401 and denied.value.code == "invalid_api_key"


def _client_model_names() -> list[str]:
    from openai.types.audio.speech_model import SpeechModel

    return list(typing.get_args(SpeechModel))  # dated snapshots too (gpt-4o-mini-tts-2025-12-15)


@pytest.mark.parametrize("model", _client_model_names())
def test_every_model_name_the_client_knows_is_accepted(client, model) -> None:
    response = client.audio.speech.create(
        model=model, voice="alloy", input="Hi there.", response_format="wav"
    )
    assert response.response.status_code == 200 and response.content[:4] == b"RIFF"


def _client_has_stream_format() -> bool:
    from openai.resources.audio.speech import Speech

    return "stream_format" in inspect.signature(Speech.create).parameters


@pytest.mark.skipif(
    not _client_has_stream_format(),
    reason=f"openai {openai.__version__}'s audio.speech.create has no stream_format (newer clients do)",
)
def test_openai_client_sse_stream(client, tiny_engine) -> None:
    with client.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="alloy", input=TEXT, response_format="wav", stream_format="sse"
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _sse_events(b"".join(response.iter_bytes()))
    deltas = [e for e in events if e["type"] == "speech.audio.delta"]
    assert len(deltas) > 1 and events[-1]["type"] == "speech.audio.done"
    decoded = _ffmpeg_decode(b"".join(base64.b64decode(e["audio"]) for e in deltas))
    whole = tiny_engine.synthesize(TEXT, voice="bob")
    assert abs(len(decoded) / DECODE_RATE - len(whole) / ENGINE_RATE) < 0.005
    assert (
        _best_correlation(decoded, soxr.resample(whole, ENGINE_RATE, DECODE_RATE, "HQ"))
        > MIN_CORRELATION["wav"]
    )


def test_sse_done_event_usage_has_openai_fields(client) -> None:
    with client.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="alloy", input="Hi there.", stream_format="sse"
    ) as response:
        done = _sse_events(b"".join(response.iter_bytes()))[-1]
    assert done["type"] == "speech.audio.done"
    usage = done["usage"]
    assert {"input_tokens", "output_tokens", "total_tokens"} <= set(usage)
    assert all(isinstance(usage[k], int) for k in ("input_tokens", "output_tokens", "total_tokens"))
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


# ---------------------------------------------------------------------------------------- OpenAPI document
def test_openapi_declares_bearer_scheme_and_metrics_type(server) -> None:
    document = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    schemes = document["components"]["securitySchemes"]
    assert any(s["type"] == "http" and s["scheme"].lower() == "bearer" for s in schemes.values())
    for path, method in [("/v1/audio/speech", "post"), ("/v1/audio/voices", "get"), ("/metrics", "get")]:
        assert [set(r) for r in document["paths"][path][method]["security"]] == [set(schemes)], path
    assert "security" not in document["paths"]["/health"]["get"]
    metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert "text/plain; version=0.0.4" in metrics
    served = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)
    assert served.status_code == 200 and served.headers["content-type"].startswith(
        "text/plain; version=0.0.4"
    )
    assert "/v1/audio/speech/stream" not in document["paths"]  # the WebSocket route is not an operation


# ---------------------------------------------------------------------------------------- schemathesis
# Checks run on every generated case. status_code_conformance has its own deterministic test below (its
# known failures would end each operation's run at the first case); positive_data_acceptance does not
# apply: the schema cannot say which free-form voice/model names or texts are speakable, a 400 is right.
CHECKS = [
    not_a_server_error,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    ignored_auth,
]
FUZZ_EXAMPLES = 40  # per operation, schema-valid and schema-violating cases mixed
FUZZ_BUDGET_S = 45.0  # all operations together; cases generated past it are not sent


@pytest.fixture(scope="module")
def api_schema(server):
    config = schemathesis.Config.from_dict(
        {
            "auth": {"openapi": {"HTTPBearer": {"bearer": API_KEY}}},  # the declared scheme, by its name
            "request-timeout": 60,
        }
    )
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", config=config, timeout=30)
    return schema.exclude(path_regex=r"/stream$")  # the WebSocket route, should it ever be listed


def _fuzz(operation, deadline: float, sent: dict[str, int]) -> None:
    """Up to FUZZ_EXAMPLES cases of ``operation`` (none sent after ``deadline``), every check on each."""
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
    )

    @hypothesis.seed(20240601)  # CI runs the same bounded set of cases
    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the failure shows the exact request
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def fuzz(case) -> None:
        if time.monotonic() > deadline:
            return
        sent[operation.label] = sent.get(operation.label, 0) + 1
        case.call_and_validate(checks=CHECKS)

    fuzz()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:TextFrontend dropped unsupported characters:UserWarning")
def test_schemathesis_fuzzes_every_operation(api_schema) -> None:
    """Every operation of /openapi.json, fuzzed with schemathesis' schema-valid and -violating cases."""
    deadline = time.monotonic() + FUZZ_BUDGET_S
    sent: dict[str, int] = {}
    failures: list[str] = []
    for result in api_schema.get_all_operations():
        operation = result.ok()  # raises on an operation schemathesis cannot read: a schema bug too
        try:
            _fuzz(operation, deadline, sent)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as err:  # schemathesis' FailureGroup is a BaseExceptionGroup; collect them all
            failures.append(f"{operation.label}:\n{err}")
    assert not failures, "\n\n".join(failures)
    # the budget left every operation its cases (/health has no inputs: one case covers it)
    assert set(sent) == {"POST /v1/audio/speech", "GET /v1/audio/voices", "GET /health", "GET /metrics"}
    assert sent["POST /v1/audio/speech"] >= 20 and sent["GET /metrics"] >= 20, sent


def test_openapi_documents_the_statuses_the_server_sends(api_schema) -> None:
    auth = {"Authorization": f"Bearer {API_KEY}"}
    requests = [
        ("POST", "/v1/audio/speech", {"body": {"input": "Hi.", "voice": "nobody"}, "headers": auth}),  # 400
        ("POST", "/v1/audio/speech", {"body": {"input": "Hi."}}),  # 401
        ("GET", "/v1/audio/voices", {}),  # 401
        ("GET", "/metrics", {}),  # 401
        ("GET", "/metrics", {"query": {"format": "xml"}, "headers": auth}),  # 400
    ]
    failures = []
    for method, path, parts in requests:
        case = api_schema[path][method].Case(**parts)
        try:
            case.call_and_validate(checks=[status_code_conformance])
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as err:  # schemathesis' FailureGroup is a BaseExceptionGroup; collect them all
            failures.append(f"{method} {path} {parts}:\n{err}")
    assert not failures, "\n".join(failures)
