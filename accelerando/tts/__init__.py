"""Text to speech: an offline text front end and Incremental FastPitch (text → mel, streamed).

- :class:`TextFrontend`: normalization, espeak-ng phonemes (offline), a fixed symbol table,
  sentence splitting for streaming.
- :class:`IncrementalFastPitch`: FastPitch 1.1 with a learned aligner and chunked decoding.
- :class:`StreamingSynthesizer`: text → streamed float32 audio (seamless chunked vocoding); the
  speech API around it is :func:`accelerando.tts.server.create_app` (``accelerando serve``).
- :class:`~accelerando.tts.client.SpeechClient`: a light client of that API (httpx and numpy only).

Names and sub-modules are imported lazily (PEP 562), so ``import accelerando.tts.client`` does not
load torch or diffusers; ``from accelerando.tts import StreamingSynthesizer`` imports the engine then.

Example::

    import torch
    from accelerando.tts import IncrementalFastPitch, TextFrontend

    fe = TextFrontend()
    model = IncrementalFastPitch.from_preset("small").eval()
    mel, durations = model.infer(torch.tensor([fe.encode("Hello world.")]))  # (1, 80, frames)
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and IDEs only; at run time __getattr__ imports these on first use
    from .engine import StreamingSynthesizer, StreamingVocoder
    from .fastpitch import IncrementalFastPitch
    from .frontend import DEFAULT_SYMBOLS, TextFrontend

# Public name -> the sub-module (relative to this package) that defines it.
_EXPORTS: dict[str, str] = {
    "DEFAULT_SYMBOLS": "frontend",
    "IncrementalFastPitch": "fastpitch",
    "StreamingSynthesizer": "engine",
    "StreamingVocoder": "engine",
    "TextFrontend": "frontend",
}

__all__ = [
    "DEFAULT_SYMBOLS",
    "IncrementalFastPitch",
    "StreamingSynthesizer",
    "StreamingVocoder",
    "TextFrontend",
]


def __getattr__(name: str) -> Any:
    """Imports a public name's module on first use; ``accelerando.tts.<submodule>`` works too."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value  # later look-ups skip __getattr__
        return value
    if (
        name.isidentifier()
        and not name.startswith("__")
        and importlib.util.find_spec(f"{__name__}.{name}") is not None
    ):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
