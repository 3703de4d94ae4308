"""``accelerando info``: versions, device, threads and the bundled checkpoints.

The facts come from :func:`accelerando.system.collect_info`, which the benchmarks' results headers share.
"""

from __future__ import annotations

import argparse
import json

from accelerando.system import collect_info

__all__ = ["register", "run"]


def run(args: argparse.Namespace) -> int:
    info = collect_info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"accelerando {info['accelerando']}  (python {info['python']}, {info['platform']})")
    print(f"device: {info['device']}   cpus: {info['cpu_count']}   torch threads: {info['torch_threads']}")
    for name, version in info["versions"].items():
        print(f"  {name:<12} {version}")
    print("bundled checkpoints: " + (", ".join(info["pretrained"]) or "none yet"))
    print(f"default speech vocoder: {info['default_vocoder']['reason']}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from accelerando.cli import add_command

    parser = add_command(subparsers, "info", help="print versions, device, threads and bundled checkpoints")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(func=run)
