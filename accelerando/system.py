"""What this installation is: versions, device, threads, bundled checkpoints and the default vocoder.

Core-layer facts shared by ``accelerando info`` (the command) and every benchmark's results header
(:func:`accelerando.metrics.report.environment`).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from typing import Any

__all__ = ["collect_info", "package_version"]

_PACKAGES = ("torch", "diffusers", "accelerate", "safetensors", "librosa", "soundfile", "gradio", "fastapi")


def package_version(package: str) -> str:
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
        "versions": {name: package_version(name) for name in _PACKAGES},
        "pretrained": list_pretrained(),
        "default_vocoder": {"name": (choice := default_vocoder()).name, "reason": choice.reason},
    }
