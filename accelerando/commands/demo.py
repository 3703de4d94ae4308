"""``accelerando demo``: the Gradio app (Speak, Vocode, Instrument, Notes, Edit) on a local port.

Example::

    accelerando demo                      # http://127.0.0.1:7860
    accelerando demo --host 0.0.0.0 --port 8080
    GRADIO_SERVER_NAME=0.0.0.0 GRADIO_SERVER_PORT=8080 accelerando demo

No public share links: put the app behind your own proxy to publish it.
"""

from __future__ import annotations

import argparse
import os


def _port(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        port = int(value)
    except ValueError:
        raise ValueError(f"The port must be a number 1-65535, got {value!r}.") from None
    if not 0 < port < 65536:
        raise ValueError(f"The port must be a number 1-65535, got {port}.")
    return port


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from accelerando.demos.app import create_app, launch

    host = args.host or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    port = _port(args.port) or _port(os.environ.get("GRADIO_SERVER_PORT")) or 7860
    demo = create_app(device=args.device)
    print(f"accelerando demo on http://{host}:{port} (Ctrl+C stops it)")
    launch(demo, host=host, port=port)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from accelerando.cli import add_command

    parser = add_command(
        subparsers,
        "demo",
        help="run the Gradio demo app (Speak, Vocode, Instrument, Notes, Edit)",
        description=__doc__,
    )
    parser.add_argument(
        "--host", default=None, help="address to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1)"
    )
    parser.add_argument("--port", default=None, help="port (default: $GRADIO_SERVER_PORT or 7860)")
    parser.add_argument(
        "--device", default=None, choices=["cpu", "cuda"], help="default: the GPU when there is one"
    )
    parser.set_defaults(func=run)
