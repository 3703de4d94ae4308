"""Intelligibility: an offline speech recogniser and word error rate.

- :func:`transcribe` -- English speech → lowercase words with PocketSphinx and the en-us acoustic model,
  dictionary and language model that its PyPI wheel ships (no download, no network)
- :func:`word_error_rate` -- corpus-level WER with jiwer after :func:`normalize_words`
  (case, punctuation and spacing removed; apostrophes inside words kept)

PocketSphinx is a small HMM/GMM recogniser from 2010s CMU Sphinx, far weaker than modern ASR: its WER
on clean festival speech is well above zero, so the figures are for comparing systems on the same
sentences (a vocoder against its reference), not absolute intelligibility. ``pocketsphinx`` and
``jiwer`` are imported on first use (``pip install -e .[dev]``), so ``import accelerando.metrics``
does not need them.

Example::

    from accelerando.metrics.intelligibility import transcribe, word_error_rate

    hyp = transcribe(wav, 22050)                        # "the cat sat on the mat"
    print(word_error_rate(["The cat sat on the mat."], [hyp]))
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from accelerando.metrics.signal import ArrayLike, as_numpy_1d

__all__ = ["RECOGNIZER_SAMPLE_RATE", "normalize_words", "transcribe", "word_error_rate"]

RECOGNIZER_SAMPLE_RATE = 16000  # the en-us model's rate
_PEAK = 0.9
_LOCK = threading.Lock()  # a pocketsphinx Decoder is not safe to share between threads
_VARIANT = re.compile(r"\(\d+\)$")  # pronunciation variants such as "the(2)"
_NOT_WORD = re.compile(r"[^a-z0-9' ]+")


def _missing(package: str) -> ImportError:
    return ImportError(
        f"{package} is needed for the intelligibility metrics; install the dev extra "
        f"(`pip install -e .[dev]`) or `pip install {package}`."
    )


@lru_cache(maxsize=1)
def _decoder() -> Any:
    """The PocketSphinx decoder with its bundled default en-us model (built once, ~1 s)."""
    try:
        from pocketsphinx import Decoder
    except ImportError as err:
        raise _missing("pocketsphinx") from err
    return Decoder(samprate=RECOGNIZER_SAMPLE_RATE, logfn="/dev/null")


def _check_sample_rate(sample_rate: Any) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive int in Hz; got {sample_rate!r}")
    return int(sample_rate)


def transcribe(wav: ArrayLike, sample_rate: int) -> str:
    """The words PocketSphinx hears in a mono English utterance, lowercase, separated by single spaces.

    ``wav`` is a float waveform ``(T,)`` (NumPy or torch; ``(1, T)`` is accepted) at ``sample_rate``.
    It is resampled to 16 kHz with :func:`accelerando.audio.resample` and peak-normalised to 0.9 (so
    the result does not depend on the output level of a vocoder). Silence gives ``""``.

    Raises:
        ValueError: a sample rate that is not a positive int, an empty or multi-channel waveform,
            NaN / infinite samples.
        ImportError: pocketsphinx is not installed.
    """
    from accelerando.audio import resample

    sample_rate = _check_sample_rate(sample_rate)
    audio = as_numpy_1d(wav, "wav")
    if audio.size == 0:
        raise ValueError("wav is empty")
    if not np.all(np.isfinite(audio)):
        raise ValueError("wav has NaN or infinite samples")
    audio = resample(audio.astype(np.float32), sample_rate, RECOGNIZER_SAMPLE_RATE).numpy()
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak < 1e-6:
        return ""
    pcm = np.clip(audio * (_PEAK / peak) * 32767.0, -32768, 32767).astype("<i2").tobytes()
    with _LOCK:
        decoder = _decoder()
        decoder.start_utt()
        decoder.process_raw(pcm, no_search=False, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
    words = hyp.hypstr.split() if hyp is not None else []
    return " ".join(_VARIANT.sub("", w).lower() for w in words)


def normalize_words(text: str) -> str:
    """Lowercase words without punctuation: ``"Hello, World!"`` → ``"hello world"``.

    Hyphens and slashes split words; apostrophes inside a word stay (``"don't"``), quotes around one go.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a str; got {type(text).__name__}")
    text = _NOT_WORD.sub(" ", text.lower().replace("-", " ").replace("/", " "))
    return " ".join(w.strip("'") for w in text.split() if w.strip("'"))


def word_error_rate(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus-level word error rate: (substitutions + deletions + insertions) / reference words.

    ``refs[i]`` is what was said in utterance ``i`` and ``hyps[i]`` what was recognised; both are
    normalised with :func:`normalize_words` first. Pass one pair for the WER of one utterance. May
    exceed 1 when the recogniser inserts words.

    Raises:
        ValueError: no references, ``refs`` and ``hyps`` of different lengths, a reference with no
            words after normalisation.
        TypeError: an item that is not a ``str`` (or ``refs`` / ``hyps`` given as one string).
    """
    if isinstance(refs, str) or isinstance(hyps, str):
        raise TypeError("refs and hyps must be lists of strings, not a single string")
    refs, hyps = list(refs), list(hyps)
    if not refs:
        raise ValueError("word_error_rate needs at least one reference")
    if len(refs) != len(hyps):
        raise ValueError(f"refs and hyps must have the same length; got {len(refs)} and {len(hyps)}")
    norm_refs = [normalize_words(r) for r in refs]
    norm_hyps = [normalize_words(h) for h in hyps]
    empty = [i for i, r in enumerate(norm_refs) if not r]
    if empty:
        raise ValueError(f"reference(s) {empty[:5]} have no words after normalisation")
    try:
        import jiwer
    except ImportError as err:
        raise _missing("jiwer") from err
    return float(jiwer.wer(norm_refs, norm_hyps))
