"""The speech client and ``accelerando say --server`` stay light: no torch, diffusers & co. imported.

Each check runs in a fresh interpreter (``sys.executable -c``), because this pytest process has
already imported torch (``conftest.py`` builds engines). ``say --server`` runs against a stub speech
server from the standard library's ``http.server`` that answers ``POST /v1/audio/speech`` with a
chunked, unknown-length WAV and ``GET /health``.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import accelerando.tts
from accelerando.tts.wav_stream import float_to_pcm16, pcm16_to_float, wav_header

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "diffusers", "librosa", "gradio", "transformers", "accelerate")
SAMPLE_RATE = 16000
AUDIO = (0.5 * np.sin(2 * np.pi * 440.0 * np.arange(1600) / SAMPLE_RATE)).astype(np.float32)


def _run_python(code: str, timeout: float = 120.0) -> dict:
    """Runs ``code`` in a fresh interpreter; its last stdout line is a JSON object, returned."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**_clean_env(), "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("ACCELERANDO_API_KEY", "PYTHONSTARTUP")}


_REPORT_HEAVY = (
    f"import json, sys; print(json.dumps({{'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))"
)


class _StubSpeechHandler(http.server.BaseHTTPRequestHandler):
    """``GET /health`` and ``POST /v1/audio/speech`` (a streamed WAV of :data:`AUDIO`, in chunks)."""

    protocol_version = "HTTP/1.1"
    requests: list[dict] = []

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def _send_json(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send_json(200, {"status": "ok", "sample_rate": SAMPLE_RATE})
        else:
            self._send_json(404, {"error": {"message": "not found", "code": "not_found"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path != "/v1/audio/speech":
            self._send_json(404, {"error": {"message": "not found", "code": "not_found"}})
            return
        type(self).requests.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.send_header("X-Sample-Rate", str(SAMPLE_RATE))
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        # As the real server does: an unknown-length header, then the PCM as it is made.
        pieces = [wav_header(SAMPLE_RATE)] + [float_to_pcm16(c) for c in np.array_split(AUDIO, 4)]
        for piece in pieces:
            self.wfile.write(f"{len(piece):X}\r\n".encode() + piece + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")


@pytest.fixture
def stub_server() -> Iterator[str]:
    """The stub speech server's base URL, on 127.0.0.1 with a free port, served from a thread."""
    _StubSpeechHandler.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StubSpeechHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_client_import_is_light():
    report = _run_python("import accelerando.tts.client\n" + _REPORT_HEAVY)
    assert report["heavy"] == []


def test_package_and_wav_stream_imports_are_light():
    report = _run_python("import accelerando, accelerando.tts, accelerando.tts.wav_stream\n" + _REPORT_HEAVY)
    assert report["heavy"] == []


def test_cli_parser_is_light():
    report = _run_python("from accelerando.cli import build_parser\nbuild_parser()\n" + _REPORT_HEAVY)
    assert report["heavy"] == []


def test_say_with_server_writes_the_audio_without_torch(stub_server: str, tmp_path: Path):
    out = tmp_path / "hello.wav"
    argv = ["say", "--server", stub_server, "Hello.", "--out", str(out), "--voice", "v1", "--speed", "1.5"]
    code = (
        "import json, sys\n"
        "from accelerando.cli import main\n"
        f"rc = main({argv!r})\n"
        f"print(json.dumps({{'rc': rc, 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))\n"
    )
    report = _run_python(code)
    assert report == {"rc": 0, "heavy": []}
    audio, sample_rate = sf.read(str(out), dtype="float32")
    assert sample_rate == SAMPLE_RATE
    np.testing.assert_allclose(audio, pcm16_to_float(float_to_pcm16(AUDIO)), atol=1.5 / 32767)
    assert _StubSpeechHandler.requests == [
        {"model": "accelerando-tts", "input": "Hello.", "speed": 1.5, "response_format": "wav", "voice": "v1"}
    ]


def test_client_health_and_stream_against_stub(stub_server: str):
    code = (
        "import json, sys\n"
        "import numpy as np\n"
        "from accelerando.tts.client import SpeechClient\n"
        f"client = SpeechClient({stub_server!r})\n"
        "health = client.health()\n"
        "rate, audio = client.synthesize('Hi.')\n"
        f"print(json.dumps({{'health': health, 'rate': rate, 'n': len(audio),"
        f" 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))\n"
    )
    report = _run_python(code)
    assert report == {
        "health": {"status": "ok", "sample_rate": SAMPLE_RATE},
        "rate": SAMPLE_RATE,
        "n": len(AUDIO),
        "heavy": [],
    }


def test_public_names_still_import():
    from accelerando.tts import (  # noqa: F401
        DEFAULT_SYMBOLS,
        IncrementalFastPitch,
        StreamingSynthesizer,
        StreamingVocoder,
        TextFrontend,
    )
    from accelerando.tts.engine import StreamingSynthesizer as EngineSynthesizer
    from accelerando.tts.fastpitch import IncrementalFastPitch as ModelClass
    from accelerando.tts.frontend import DEFAULT_SYMBOLS as symbols

    assert StreamingSynthesizer is EngineSynthesizer and IncrementalFastPitch is ModelClass
    assert DEFAULT_SYMBOLS is symbols
    assert set(accelerando.tts.__all__) <= set(dir(accelerando.tts))
    assert all(getattr(accelerando.tts, name) is not None for name in accelerando.tts.__all__)


def test_public_names_import_in_a_fresh_interpreter():
    code = (
        "import json\n"
        "import accelerando.tts as tts\n"
        "from accelerando.tts import StreamingSynthesizer, IncrementalFastPitch, TextFrontend, DEFAULT_SYMBOLS\n"
        "names = [StreamingSynthesizer.__name__, IncrementalFastPitch.__name__, TextFrontend.__name__]\n"
        "print(json.dumps({'names': names, 'symbols': len(DEFAULT_SYMBOLS) > 0,"
        " 'engine_module': tts.engine.__name__}))\n"
    )
    report = _run_python(code)
    assert report == {
        "names": ["StreamingSynthesizer", "IncrementalFastPitch", "TextFrontend"],
        "symbols": True,
        "engine_module": "accelerando.tts.engine",
    }


def test_unknown_attribute_raises_attribute_error_naming_it():
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = accelerando.tts.no_such_thing  # type: ignore[attr-defined]
    with pytest.raises(ImportError, match="no_such_thing"):
        from accelerando.tts import no_such_thing  # type: ignore[attr-defined]  # noqa: F401
    assert not hasattr(accelerando.tts, "not.a.module")
