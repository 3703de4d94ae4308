"""``accelerando serve`` (the speech API with uvicorn) and ``accelerando say`` (text → a WAV file).

``say --server`` only needs the light client (:mod:`accelerando.tts.client`); keep torch, diffusers and
the engine out of this module's top level and out of that path (``tests/tts/test_light_client.py``).

accelerando serve --host 127.0.0.1 --port 8000 --model path/to/fastpitch --vocoder griffin-lim
accelerando say "Hello there." --out hello.wav                       # local engine
accelerando say "Hello there." --out hello.wav --server http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import json
import os

API_KEY_ENV = "ACCELERANDO_API_KEY"


def _add_engine_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        help="Incremental FastPitch folder (default: the bundled fastpitch-* checkpoint)",
    )
    parser.add_argument(
        "--vocoder",
        default=None,
        help="'griffin-lim', a vocoder folder or a bundled name (default: chosen by the recorded held-out "
        "measurements: the best bundled vocoder that beats Griffin-Lim, else Griffin-Lim; `accelerando info` says which)",
    )
    parser.add_argument(
        "--vocoder-steps", type=int, default=None, help="diffusion vocoder steps (default: its own)"
    )


def _load_engine(args: argparse.Namespace):
    from accelerando.tts.engine import StreamingSynthesizer

    return StreamingSynthesizer.from_pretrained(
        args.model,
        vocoder=args.vocoder,
        vocoder_steps=args.vocoder_steps,
        batch_window_ms=getattr(args, "batch_window_ms", 0.0),
    )


SERVE_CONFIG_ENV = "ACCELERANDO_SERVE_CONFIG"


def _serve_settings(args: argparse.Namespace) -> dict:
    """What every worker needs to build the same app (JSON-able: it travels in an environment variable)."""
    from accelerando.tts.openai_names import parse_voice_aliases

    try:
        aliases = parse_voice_aliases(args.voice_alias)
    except ValueError as err:
        raise SystemExit(f"accelerando serve: {err}") from None
    return {
        "model": args.model,
        "vocoder": args.vocoder,
        "vocoder_steps": args.vocoder_steps,
        "api_key": args.api_key or os.environ.get(API_KEY_ENV) or None,
        "max_concurrent": args.max_concurrent,
        "max_input_chars": args.max_input_chars,
        "max_word_chars": args.max_word_chars,
        "voice_aliases": aliases,
        "threads": args.threads,
        "batch_window_ms": args.batch_window_ms,
    }


def build_app(settings: dict):
    """The speech app for ``settings`` (see :func:`_serve_settings`): loads the engine, then the routes."""
    from accelerando.tts.server import create_app

    if settings.get("threads"):
        import torch

        torch.set_num_threads(int(settings["threads"]))
    engine = _load_engine(
        argparse.Namespace(
            model=settings["model"],
            vocoder=settings["vocoder"],
            vocoder_steps=settings["vocoder_steps"],
            batch_window_ms=settings.get("batch_window_ms", 0.0),
        )
    )
    return create_app(
        engine,
        api_key=settings["api_key"],
        max_concurrent=settings["max_concurrent"],
        max_input_chars=settings["max_input_chars"],
        max_word_chars=settings["max_word_chars"],
        voice_aliases=settings["voice_aliases"],
    )


def app_from_environment():
    """uvicorn's app factory for ``--workers N``: each worker process builds its own engine and app."""
    return build_app(json.loads(os.environ[SERVE_CONFIG_ENV]))


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from accelerando.tts.server import websocket_impl

    if args.workers < 1:
        raise SystemExit(f"accelerando serve: --workers must be >= 1, got {args.workers}")
    settings = _serve_settings(args)
    auth = "on" if settings["api_key"] else "off"
    print(
        f"accelerando speech API on http://{args.host}:{args.port} (API key {auth}, {args.max_concurrent} "
        f"streams per worker, {args.workers} worker{'s' if args.workers > 1 else ''})"
    )
    common = dict(host=args.host, port=args.port, log_level=args.log_level, ws=websocket_impl())
    if args.workers == 1:
        uvicorn.run(build_app(settings), **common)
    else:  # uvicorn starts N processes; each imports the factory and loads its own engine
        os.environ[SERVE_CONFIG_ENV] = json.dumps(settings)
        uvicorn.run(
            "accelerando.commands.serve:app_from_environment", factory=True, workers=args.workers, **common
        )
    return 0


def run_say(args: argparse.Namespace) -> int:
    """Speaks ``args.text`` into ``args.out``: through ``--server`` (light: httpx, numpy, soundfile; no
    torch or diffusers) or with the local engine (imports torch)."""
    import soundfile as sf

    if args.server:
        from accelerando.tts.client import SpeechClient

        client = SpeechClient(args.server, api_key=args.api_key or os.environ.get(API_KEY_ENV) or None)
        sample_rate, audio = client.synthesize(args.text, voice=args.voice, speed=args.speed)
    else:
        import numpy as np

        engine = _load_engine(args)
        audio = np.concatenate(list(engine.stream(args.text, voice=args.voice, speed=args.speed)))
        sample_rate = engine.sample_rate
    sf.write(args.out, audio, sample_rate)
    print(f"wrote {args.out} ({len(audio) / sample_rate:.2f} s at {sample_rate} Hz)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from accelerando.cli import add_command

    serve = add_command(
        subparsers, "serve", help="run the streaming speech API (OpenAI-compatible) with uvicorn"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--api-key", default=None, help=f"require 'Authorization: Bearer KEY' (or set {API_KEY_ENV})"
    )
    serve.add_argument("--max-concurrent", type=int, default=4, help="streams at once; more get 429")
    serve.add_argument("--max-input-chars", type=int, default=4096)
    serve.add_argument(
        "--max-word-chars", type=int, default=50, help="longer words are a 400 (e.g. 'abc' * 500)"
    )
    serve.add_argument(
        "--voice-alias",
        action="append",
        default=None,
        metavar="NAME=VOICE",
        help="map an OpenAI voice name to one of ours, e.g. --voice-alias nova=kal (repeatable)",
    )
    serve.add_argument(
        "--workers", type=int, default=1, help="server processes (uvicorn workers), each with its own engine"
    )
    serve.add_argument(
        "--threads", type=int, default=None, help="torch threads per worker (default: torch's own)"
    )
    serve.add_argument(
        "--batch-window-ms",
        type=float,
        default=0.0,
        help="batch concurrent streams' vocoder blocks, waiting up to this long (MelNEWT only; 0: off; "
        "helps from about 8 streams on here)",
    )
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    _add_engine_args(serve)
    serve.set_defaults(func=run_serve)

    say = add_command(subparsers, "say", help="speak text into a WAV file (local engine, or --server URL)")
    say.add_argument("text", help="the text to speak")
    say.add_argument("--out", required=True, help="output audio file (.wav, .flac)")
    say.add_argument(
        "--server", default=None, help="URL of an `accelerando serve` (default: synthesize locally)"
    )
    say.add_argument("--voice", default=None)
    say.add_argument("--speed", type=float, default=1.0)
    say.add_argument("--api-key", default=None, help=f"for --server (or set {API_KEY_ENV})")
    _add_engine_args(say)
    say.set_defaults(func=run_say)
