"""Local corpora and dataset classes.

- ``speech_corpus``: :func:`build_speech_corpus` (festival + espeak-ng voices -> LJSpeech-style folder).
- ``instrument_corpus`` / ``melodies``: :func:`build_instrument_corpus`, :func:`build_note_corpus`,
  :func:`build_melody_corpus` (fluidsynth + the GM soundfont; notes with labels, melodies with exact f0).
- ``datasets``: :class:`LJSpeechDataset`, :class:`LibriTTSDataset`, :class:`AudioSegmentDataset`.
- ``instrument_datasets``: :class:`NoteDataset`, :class:`MelodyDataset`.
- The command ``accelerando corpus speech|instruments`` is :mod:`accelerando.commands.corpus`.

Names are imported lazily, so ``import accelerando.data`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "build_speech_corpus": "speech_corpus",
    "build_instrument_corpus": "instrument_corpus",
    "build_note_corpus": "instrument_corpus",
    "build_melody_corpus": "melodies",
    "LJSpeechDataset": "datasets",
    "LibriTTSDataset": "datasets",
    "AudioSegmentDataset": "datasets",
    "NoteDataset": "instrument_datasets",
    "MelodyDataset": "instrument_datasets",
    "MissingSystemDependencyError": "_build",
    "check_system_dependencies": "_build",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
