"""Which checkpoints the demo app has, and a lazy, thread-safe cache of the loaded models.

Checkpoints are named by role (the keys of :data:`ROLES`). :func:`discover_checkpoints` finds the
bundled folders under ``accelerando/pretrained/`` at start-up; ``create_app(checkpoints=...)`` may
pass explicit folders instead (tests pass tiny random models). A tab whose role has no folder shows
:func:`missing_message` instead of failing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "MEL_VOCODER_ROLES",
    "ROLES",
    "ModelCache",
    "discover_checkpoints",
    "missing_message",
    "pick_device",
]

# role -> (what it is, the command that trains one)
ROLES: dict[str, tuple[str, str]] = {
    "fastpitch": ("Incremental FastPitch", "accelerando train fastpitch"),
    "fregrad": ("FreGrad vocoder", "accelerando train fregrad"),
    "periodwave": ("PeriodWave vocoder", "accelerando train periodwave"),
    "periodwave_turbo": ("PeriodWave-Turbo vocoder", "accelerando train periodwave-turbo"),
    "meldit": ("MelDiT notes pipeline", "accelerando train meldit"),
    "meldit_sim": ("SIM one-step MelDiT", "accelerate launch -m accelerando.accelerate_dit.sim.train"),
    "newt": ("NEWT instrument", "accelerando train newt"),
    "mel_newt": ("MelNEWT speech vocoder", "accelerando recipe newt-speech"),
}
MEL_VOCODER_ROLES = (
    "mel_newt",
    "periodwave_turbo",
    "fregrad",
    "periodwave",
)  # the roles that are mel vocoders


def missing_message(role: str) -> str:
    """The in-UI sentence for a role without a checkpoint."""
    what, command = ROLES[role]
    return (
        f"No bundled {what} checkpoint yet; train one with `{command} ...` "
        f"(or pass its folder to `create_app(checkpoints={{'{role}': PATH}})`)."
    )


def _class_name(folder: Path) -> str:
    try:
        return str(json.loads((folder / "config.json").read_text(encoding="utf-8")).get("_class_name", ""))
    except (OSError, ValueError):
        return ""


def discover_checkpoints(root: str | Path | None = None) -> dict[str, Any]:
    """Role -> folder for every checkpoint under ``root`` (default: the bundled ``pretrained/``).

    ``newt`` maps to ``{instrument: folder}`` from folders named ``newt-<instrument>``. Vocoders
    are told apart by their config's ``_class_name`` (a ``periodwave-*`` folder may hold a Turbo).
    """
    if root is None:
        from accelerando.pretrained import PRETRAINED_DIR

        root = PRETRAINED_DIR
    found: dict[str, Any] = {}
    root = Path(root)
    if not root.is_dir():
        return found
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        name = folder.name.lower()
        if (folder / "model_index.json").is_file() and name.startswith("meldit"):
            found.setdefault("meldit", folder)
            continue
        if not (folder / "config.json").is_file():
            continue
        cls = _class_name(folder)
        if name.startswith("fastpitch"):
            found.setdefault("fastpitch", folder)
        elif cls == "FreGrad" or (name.startswith("fregrad") and not cls):
            found.setdefault("fregrad", folder)
        elif cls == "PeriodWaveTurbo" or name.startswith("periodwave-turbo"):
            found.setdefault("periodwave_turbo", folder)
        elif cls == "PeriodWave" or name.startswith("periodwave"):
            found.setdefault("periodwave", folder)
        elif name.startswith(("meldit-sim", "sim-")) and cls == "MelDiT":
            found.setdefault("meldit_sim", folder)
        elif cls == "MelNEWT":
            found.setdefault("mel_newt", folder)
        elif name.startswith("newt-"):
            found.setdefault("newt", {})[folder.name[len("newt-") :]] = folder
    return found


def pick_device() -> str:
    """``"cuda"`` when a GPU is there, else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class ModelCache:
    """Loads each model once, on first use, and hands out a per-model lock for running it.

    Models are shared by every request; acceleration hooks (ToMe, FORA) change them in place, so a
    request holds :meth:`lock` for the model while it runs.
    """

    def __init__(self, checkpoints: Mapping[str, Any], device: str | None = None) -> None:
        self.checkpoints = dict(checkpoints)
        self.device = device or pick_device()
        self._models: dict[str, Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def has(self, role: str, name: str | None = None) -> bool:
        """True when a checkpoint for ``role`` (and instrument ``name`` for ``newt``) is known."""
        entry = self.checkpoints.get(role)
        if name is not None:
            return isinstance(entry, Mapping) and name in entry
        return bool(entry)

    def path(self, role: str, name: str | None = None) -> Path:
        entry = self.checkpoints[role]
        return Path(entry[name] if name is not None else entry)

    def lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def get(self, key: str, load: Callable[[], Any]) -> Any:
        """The model cached under ``key``, loaded with ``load()`` the first time."""
        with self.lock(f"load:{key}"):
            if key not in self._models:
                model = load()
                if hasattr(model, "to") and hasattr(model, "eval"):
                    model = model.to(self.device).eval()
                self._models[key] = model
            return self._models[key]
