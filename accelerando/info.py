"""``accelerando info``: versions, device, threads and the bundled checkpoints."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import sys
from typing import Any

_PACKAGES = ("torch", "diffusers", "accelerate", "safetensors", "librosa", "soundfile", "gradio", "fastapi")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def collect_info() -> dict[str, Any]:
    """Everything ``accelerando info`` prints, as a dict (also used by benchmarks' JSON)."""
    import torch

    from accelerando import __version__
    from accelerando.pretrained import list_pretrained
    from accelerando.pretrained.defaults import default_vocoder

    if torch.cuda.is_available():
        device = f"cuda ({torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} device(s))"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device = "mps"
    else:
        device = "cpu"
    return {
        "accelerando": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "versions": {name: _version(name) for name in _PACKAGES},
        "pretrained": list_pretrained(),
        "default_vocoder": {"name": (choice := default_vocoder()).name, "reason": choice.reason},
    }


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
