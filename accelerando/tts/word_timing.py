"""Word timings from the acoustic model's durations: when each word starts and ends in the output audio.

Incremental FastPitch predicts how many mel frames each phoneme symbol lasts (``EncoderOutput.durations``,
after the pace); the audio is those frames times the vocoder's hop. A word's time is the span of its
phoneme symbols. espeak-ng joins some short words into one phoneme word (``"of the"`` -> ``ʌvðə``), so
the words are matched to the phoneme symbols by their own phoneme lengths:

- when the sentence has as many phoneme words (runs of symbols between spaces that hold a letter) as
  text words, word *k* is phoneme word *k*;
- otherwise each text word is phonemized alone, and the text words share the sentence's letter symbols
  in proportion to their phoneme lengths, in order.

Pauses (spaces and punctuation symbols) belong to no word. Timings are monotonic (each word starts at or
after the previous one's end) and lie within the audio.

Example::

    from accelerando.tts.word_timing import sentence_word_timings

    words = sentence_word_timings(frontend, "Of the people.", ids, durations, start_frame=0,
                                  frames_per_second=22050 / 256)
    # [WordTiming(word='Of', start=0.08, end=0.21), ...]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["WordTiming", "sentence_word_timings", "text_words"]

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


@dataclass(frozen=True)
class WordTiming:
    """One word of the input and its ``start`` / ``end`` in the output audio (seconds)."""

    word: str
    start: float
    end: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def text_words(text: str) -> list[str]:
    """The words of (normalized) text: runs of letters and digits, with inner apostrophes."""
    return _WORD.findall(text)


def _letter_tokens(frontend: Any, ids: Sequence[int]) -> tuple[list[int], list[list[int]]]:
    """``(indices of letter symbols, phoneme words as lists of those indices)``."""
    letters: list[int] = []
    groups: list[list[int]] = [[]]
    for i, token in enumerate(ids):
        symbol = frontend.symbols[int(token)]
        if symbol == " ":
            groups.append([])
        elif symbol.isalpha():
            letters.append(i)
            groups[-1].append(i)
    return letters, [g for g in groups if g]


def sentence_word_timings(
    frontend: Any,
    sentence: str,
    ids: Sequence[int],
    durations: Sequence[int] | np.ndarray,
    start_frame: int,
    frames_per_second: float,
) -> list[WordTiming]:
    """The words of ``sentence`` with their times, from its phoneme ``ids`` and their frame ``durations``.

    ``start_frame`` is the sentence's first frame in the whole output (sentences follow each other).
    """
    words = text_words(frontend.normalize(sentence))
    durations = np.asarray(durations, dtype=np.int64).reshape(-1)[: len(ids)]
    if not words or durations.size == 0:
        return []
    starts = start_frame + np.concatenate([[0], np.cumsum(durations)[:-1]])
    ends = starts + durations
    letters, groups = _letter_tokens(frontend, ids)
    if not letters:
        return []
    if len(groups) == len(words):
        spans = [(g[0], g[-1]) for g in groups]
    else:
        weights = np.array([max(1, _phoneme_length(frontend, w)) for w in words], dtype=np.float64)
        bounds = np.rint(np.concatenate([[0], np.cumsum(weights)]) / weights.sum() * len(letters)).astype(int)
        spans = []
        for k in range(len(words)):
            lo = min(bounds[k], len(letters) - 1)
            hi = max(lo, bounds[k + 1] - 1)
            spans.append((letters[lo], letters[min(hi, len(letters) - 1)]))
    out, previous_end = [], float(start_frame)
    for word, (first, last) in zip(words, spans):
        start = max(float(starts[first]), previous_end)
        end = max(float(ends[last]), start)
        out.append(WordTiming(word, start / frames_per_second, end / frames_per_second))
        previous_end = end
    return out


def _phoneme_length(frontend: Any, word: str) -> int:
    try:
        return sum(ch.isalpha() for ch in frontend.phonemize(word))
    except ValueError:
        return len(word)
