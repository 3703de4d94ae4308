"""Text to speech: an offline text front end and Incremental FastPitch (text → mel, streamed).

- :class:`TextFrontend`: normalization, espeak-ng phonemes (offline), a fixed symbol table,
  sentence splitting for streaming.
- :class:`IncrementalFastPitch`: FastPitch 1.1 with a learned aligner and chunked decoding.
- :class:`StreamingSynthesizer`: text → streamed float32 audio (seamless chunked vocoding); the
  speech API around it is :func:`accelerando.tts.server.create_app` (``accelerando serve``).

Example::

    import torch
    from accelerando.tts import IncrementalFastPitch, TextFrontend

    fe = TextFrontend()
    model = IncrementalFastPitch.from_preset("small").eval()
    mel, durations = model.infer(torch.tensor([fe.encode("Hello world.")]))  # (1, 80, frames)
"""

from .engine import StreamingSynthesizer, StreamingVocoder
from .fastpitch import IncrementalFastPitch
from .frontend import DEFAULT_SYMBOLS, TextFrontend

__all__ = [
    "DEFAULT_SYMBOLS",
    "IncrementalFastPitch",
    "StreamingSynthesizer",
    "StreamingVocoder",
    "TextFrontend",
]
