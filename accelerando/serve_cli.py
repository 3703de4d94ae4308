"""``accelerando serve`` (the speech API with uvicorn) and ``accelerando say`` (text → a WAV file).

accelerando serve --host 127.0.0.1 --port 8000 --model path/to/fastpitch --vocoder griffin-lim
accelerando say "Hello there." --out hello.wav                       # local engine
accelerando say "Hello there." --out hello.wav --server http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
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
        args.model, vocoder=args.vocoder, vocoder_steps=args.vocoder_steps
    )


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from accelerando.tts.server import create_app, websocket_impl

    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    app = create_app(
        _load_engine(args),
        api_key=api_key,
        max_concurrent=args.max_concurrent,
        max_input_chars=args.max_input_chars,
    )
    auth = "on" if api_key else "off"
    print(
        f"accelerando speech API on http://{args.host}:{args.port} (API key {auth}, {args.max_concurrent} streams)"
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, ws=websocket_impl())
    return 0


def run_say(args: argparse.Namespace) -> int:
    import numpy as np
    import soundfile as sf

    if args.server:
        from accelerando.tts.client import SpeechClient

        client = SpeechClient(args.server, api_key=args.api_key or os.environ.get(API_KEY_ENV) or None)
        sample_rate, audio = client.synthesize(args.text, voice=args.voice, speed=args.speed)
    else:
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
