"""Small default checkpoints that ship with the package, one folder each.

A checkpoint folder holds ``config.json``, ``diffusion_pytorch_model.safetensors`` (or the files
its class writes with ``save_pretrained``) and a ``README.md`` model card.
"""

from __future__ import annotations

from pathlib import Path

PRETRAINED_DIR = Path(__file__).resolve().parent


def list_pretrained() -> list[str]:
    """Names of the bundled checkpoints (folders holding a ``config.json``), sorted."""
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if p.is_dir() and (p / "config.json").is_file())


def pretrained_path(name: str) -> Path:
    """The folder of bundled checkpoint ``name``; a clear error lists the available names."""
    path = PRETRAINED_DIR / name
    if not (path / "config.json").is_file():
        available = ", ".join(list_pretrained()) or "none yet"
        raise FileNotFoundError(f"no bundled checkpoint named {name!r}; available: {available}")
    return path
