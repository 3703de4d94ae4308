"""Word timings from phoneme durations: one-to-one words, words espeak joins, pauses, offsets, the engine."""

from __future__ import annotations

import numpy as np
import pytest

from accelerando.tts.word_timing import WordTiming, sentence_word_timings, text_words


class FakeFrontend:
    """Symbols are single characters; a word's phonemes are its letters (espeak-like joins are simulated
    by the ids given to the function, not here)."""

    symbols = ["_", " ", ",", ".", *"abcdefghijklmnopqrstuvwxyz"]

    def normalize(self, text: str) -> str:
        return text

    def phonemize(self, text: str) -> str:
        return text.lower()

    def ids(self, phonemes: str) -> list[int]:
        return [self.symbols.index(c) for c in phonemes]


FE = FakeFrontend()


def test_text_words_keep_inner_apostrophes_and_drop_punctuation() -> None:
    assert text_words("I don't know, you're 2 late!") == ["I", "don't", "know", "you're", "2", "late"]


def test_one_phoneme_word_per_text_word_takes_its_symbols_span() -> None:
    ids = FE.ids("ab cd, e.")
    durations = [1, 2, 3, 4, 5, 6, 7, 8, 9]  # frames per symbol
    words = sentence_word_timings(FE, "ab cd, e.", ids, durations, start_frame=10, frames_per_second=10.0)
    # symbol starts: a 10, b 11, ' ' 13, c 16, d 20, ',' 25, ' ' 31, e 38, '.' 46
    assert words == [WordTiming("ab", 1.0, 1.3), WordTiming("cd", 1.6, 2.5), WordTiming("e", 3.8, 4.6)]


def test_joined_words_share_their_phoneme_word_by_phoneme_length() -> None:
    ids = FE.ids("ofthe people.")  # espeak joins "of the" into one phoneme word
    durations = [2] * len(ids)
    words = sentence_word_timings(FE, "of the people.", ids, durations, start_frame=0, frames_per_second=1.0)
    assert [w.word for w in words] == ["of", "the", "people"]
    assert words[0].start == 0 and words[1].start == pytest.approx(words[0].end)
    assert words[2].start >= words[1].end and words[2].end == 2 * (len(ids) - 1)  # the '.' is a pause
    starts = np.array([w.start for w in words])
    assert (np.diff(starts) > 0).all()


def test_nothing_speakable_gives_no_words() -> None:
    assert sentence_word_timings(FE, "...", FE.ids("..."), [1, 1, 1], 0, 1.0) == []


def test_engine_stream_announces_the_same_words_as_word_timings(tiny_engine) -> None:
    text = "Hello world. A second sentence follows here!"
    expected = tiny_engine.word_timings(text, voice="bob")
    assert [w.word for w in expected] == "Hello world A second sentence follows here".split()
    stream = tiny_engine.stream(text, voice="bob")
    samples, announced = 0, []
    for chunk in stream:
        announced += stream.take_words()
        samples += len(chunk)
    announced += stream.take_words()
    assert announced == expected and stream.take_words() == []
    assert expected[-1].end <= samples / tiny_engine.sample_rate + 1e-6
    assert all(b.start >= a.end for a, b in zip(expected, expected[1:]))
