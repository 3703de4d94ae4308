"""One loader for every accelerando checkpoint: a bundled name or a folder, the class read from its config.

As diffusers' auto classes do, :func:`load` reads ``config.json``'s ``_class_name`` (or ``model_index.json`` for a
pipeline) and calls that class's ``from_pretrained`` (safetensors only). It accepts:

- a bundled name (``"fregrad-speech"``, see :func:`accelerando.pretrained.list_pretrained`);
- a folder written by ``save_pretrained``;
- a training ``output_dir`` or ``checkpoint-N`` folder, whose ``model/`` sub-folder holds the model.

``expect`` restricts the classes (``expect=MEL_VOCODERS``) and makes a wrong folder a clear error naming what it
holds and what was wanted. :func:`load_mel_vocoder` adds ``"griffin-lim"`` and the measured default.

Example::

    from accelerando.pretrained.loading import MEL_VOCODERS, load

    vocoder = load("periodwave-turbo-s-speech", expect=MEL_VOCODERS)  # a PeriodWaveTurbo, in eval mode
    acoustic = load("fastpitch-speech")                                # an IncrementalFastPitch
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import accelerando.pretrained as _pretrained

__all__ = [
    "MEL_VOCODERS",
    "MODEL_CLASSES",
    "class_name",
    "load",
    "load_mel_vocoder",
    "model_class",
    "resolve",
]

# _class_name -> the module that exports it (imported only when that class is loaded).
MODEL_CLASSES: dict[str, str] = {
    "FreGrad": "accelerando.vocoders",
    "PeriodWave": "accelerando.vocoders",
    "PeriodWaveTurbo": "accelerando.vocoders",
    "NEWT": "accelerando.vocoders",
    "MelNEWT": "accelerando.vocoders",
    "GriffinLim": "accelerando.vocoders",
    "PriorGradBaseline": "accelerando.vocoders.fregrad.baseline",
    "IncrementalFastPitch": "accelerando.tts",
    "MelDiT": "accelerando.generation",
    "NoteClassifier": "accelerando.generation.classifier",
    "MelDiTPipeline": "accelerando.generation",
    "SIMVocoder": "accelerando.accelerate_dit.sim.vocoders",  # a one-step student of a vocoder
}
MEL_VOCODERS = ("FreGrad", "PeriodWave", "PeriodWaveTurbo", "MelNEWT", "SIMVocoder")
_MODEL_SUBFOLDER = "model"  # what training scripts write inside output_dir and each checkpoint


def resolve(name_or_path: str | Path) -> Path:
    """The checkpoint folder for a bundled name, a model folder, or a training output / checkpoint folder."""
    path = Path(name_or_path)
    bundled = _pretrained.PRETRAINED_DIR / str(name_or_path)
    for candidate in (path, bundled):
        if _marker(candidate):
            return candidate
        if _marker(candidate / _MODEL_SUBFOLDER):
            return candidate / _MODEL_SUBFOLDER
    available = ", ".join(_pretrained.list_pretrained()) or "none yet"
    raise FileNotFoundError(
        f"{str(name_or_path)!r} is neither a bundled checkpoint ({available}) nor a folder written by "
        "save_pretrained (config.json or model_index.json), nor a training output with a model/ sub-folder."
    )


def load(name_or_path: str | Path, expect: tuple[str, ...] | None = None, **kwargs: Any) -> Any:
    """Load the checkpoint with the class its config names; models come back in eval mode.

    Args:
        name_or_path: a bundled name or a folder (see :func:`resolve`).
        expect: class names that are acceptable here (``None``: any accelerando class).
        kwargs: passed to ``from_pretrained``.
    """
    folder = resolve(name_or_path)
    name = class_name(folder)
    if name not in MODEL_CLASSES:
        raise ValueError(
            f"{folder} holds a {name!r}, which is not an accelerando model; known: {', '.join(MODEL_CLASSES)}"
        )
    if expect is not None and name not in expect:
        raise ValueError(f"{folder} holds a {name!r}; expected one of: {', '.join(expect)}")
    model = model_class(name).from_pretrained(str(folder), **kwargs)
    return model.eval() if hasattr(model, "eval") else model


def load_mel_vocoder(name_or_path: str | Path | None = None) -> Any:
    """A mel vocoder: ``"griffin-lim"``, a bundled name, a folder, or None for the measured default."""
    from accelerando.pretrained.defaults import GRIFFIN_LIM, default_vocoder

    if name_or_path is None:
        name_or_path = default_vocoder().name
    if isinstance(name_or_path, str) and name_or_path.lower().replace("_", "-") in (
        GRIFFIN_LIM,
        "griffinlim",
        "gl",
    ):
        return model_class("GriffinLim")()
    try:
        return load(name_or_path, expect=MEL_VOCODERS)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{err} For the training-free vocoder pass 'griffin-lim'.") from err


def model_class(name: str) -> type:
    """The class registered as ``name`` in :data:`MODEL_CLASSES`, imported on first use.

    The loader sits in the core layer: it names model classes and imports them only when asked, so the
    models depend on the core and never the other way round (as diffusers' auto classes do).
    """
    if name not in MODEL_CLASSES:
        raise ValueError(f"{name!r} is not an accelerando model class; known: {', '.join(MODEL_CLASSES)}")
    return getattr(importlib.import_module(MODEL_CLASSES[name]), name)


def _marker(folder: Path) -> bool:
    return folder.is_dir() and ((folder / "config.json").is_file() or (folder / "model_index.json").is_file())


def class_name(folder: str | Path) -> str:
    """The ``_class_name`` in a checkpoint folder's ``config.json`` (or ``model_index.json``); ``""`` if none."""
    folder = Path(folder)
    config = folder / "config.json"
    if not config.is_file():
        config = folder / "model_index.json"
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{config} is not valid JSON: {err}") from err
    return str(data.get("_class_name", "")) if isinstance(data, dict) else ""
