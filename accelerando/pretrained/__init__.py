"""Small default checkpoints that ship with the package, one folder each.

A checkpoint folder holds what its class writes with ``save_pretrained`` (a model: ``config.json`` +
safetensors; a diffusers pipeline: ``model_index.json`` + one sub-folder per component) and a
``README.md`` model card.
"""

from __future__ import annotations

from pathlib import Path

PRETRAINED_DIR = Path(__file__).resolve().parent


_MARKERS = ("config.json", "model_index.json")


def _is_checkpoint(path: Path) -> bool:
    return path.is_dir() and any((path / marker).is_file() for marker in _MARKERS)


def list_pretrained() -> list[str]:
    """Names of the bundled checkpoints (folders holding a ``config.json`` or ``model_index.json``), sorted."""
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if _is_checkpoint(p))


def pretrained_path(name: str) -> Path:
    """The folder of bundled checkpoint ``name``; a clear error lists the available names."""
    path = PRETRAINED_DIR / name
    if not _is_checkpoint(path):
        available = ", ".join(list_pretrained()) or "none yet"
        raise FileNotFoundError(f"no bundled checkpoint named {name!r}; available: {available}")
    return path
