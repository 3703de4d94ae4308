"""The ``accelerando`` command: one entry point with sub-commands.

Every sub-command's front end is ``accelerando/commands/<command>.py`` (see :mod:`accelerando.commands`).
Each exposes ``register(subparsers)``, which adds its parser and sets ``func`` to a callable taking the
parsed ``argparse.Namespace`` and returning an exit code. Command modules are imported when the parser is
built, so they keep heavy imports (torch, librosa, gradio) inside their ``run`` functions and
``accelerando --help`` stays fast. User commands take ``--kebab-case`` flags; ``accelerando train`` passes
its flags to the training scripts, which keep the diffusers examples' ``--snake_case`` names.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# The modules of ``accelerando.commands`` (each with ``register(subparsers)``), in the order --help lists them.
COMMANDS: tuple[str, ...] = ("info", "corpus", "bench", "train", "recipe", "edit", "synth", "serve", "demo")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every flag's default and keeps descriptions' line breaks."""


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every registered sub-command."""
    from accelerando import __version__

    parser = argparse.ArgumentParser(
        prog="accelerando",
        description="accelerando: fast generative audio (vocoders, streaming TTS, MelDiT, DiT acceleration).",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"accelerando {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMANDS:
        importlib.import_module(f"accelerando.commands.{name}").register(subparsers)
    return parser


def add_command(subparsers: argparse._SubParsersAction, name: str, help: str, description: str | None = None):
    """Adds one sub-command parser that shows defaults in ``--help``; returns it."""
    return subparsers.add_parser(
        name, help=help, description=description or help, formatter_class=_HelpFormatter
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as exc:
        # Users get one clear sentence, not a traceback; ACCELERANDO_DEBUG=1 shows the traceback.
        import os

        if os.environ.get("ACCELERANDO_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
