"""TextFrontend: normalization, offline phonemization, symbol table, sentence splitting, errors."""

from __future__ import annotations

import json
import threading

import pytest

from accelerando.tts import DEFAULT_SYMBOLS, TextFrontend
from accelerando.tts.normalize import number_to_words, ordinal_to_words, year_to_words


@pytest.fixture(scope="module")
def fe() -> TextFrontend:
    return TextFrontend()


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (13, "thirteen"),
        (42, "forty two"),
        (100, "one hundred"),
        (1234, "one thousand two hundred thirty four"),
        (1_000_001, "one million one"),
        (-7, "minus seven"),
    ],
)
def test_number_to_words(n: int, words: str) -> None:
    assert number_to_words(n) == words


def test_ordinals_and_years() -> None:
    assert ordinal_to_words(1) == "first"
    assert ordinal_to_words(22) == "twenty second"
    assert ordinal_to_words(100) == "one hundredth"
    assert ordinal_to_words(12) == "twelfth"
    assert year_to_words(1984) == "nineteen eighty four"
    assert year_to_words(1900) == "nineteen hundred"
    assert year_to_words(2005) == "two thousand five"
    assert year_to_words(2019) == "twenty nineteen"
    assert year_to_words(1905) == "nineteen oh five"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Dr. Smith is here.", "doctor Smith is here."),
        ("Mr. and Mrs. Jones", "mister and missus Jones"),
        ("It costs $5.50.", "It costs five dollars, fifty cents."),
        ("£1 only", "one pound only"),
        ("pi is 3.14", "pi is three point one four"),
        ("1,234 people", "one thousand two hundred thirty four people"),
        ("the 21st century", "the twenty first century"),
        ("born in 1984.", "born in nineteen eighty four."),
        ("50% off", "fifty percent off"),
        ("e.g. this", "for example this"),
        ("No. 5 and no.", "number five and no."),
        ("“Quoted” — text…", '"Quoted", text...'),
        ("café", "cafe"),
    ],
)
def test_normalize(fe: TextFrontend, text: str, expected: str) -> None:
    assert fe.normalize(text) == expected


def test_phonemize_offline_matches_espeak(fe: TextFrontend) -> None:
    ph = fe.phonemize("Hello world")
    assert "həlˈoʊ" in ph and "wˈɜːld" in ph
    # Numbers are expanded by us; the IPA matches what espeak-ng gives for the digits.
    assert fe.phonemize("Hello world, 42 apples.") == "həlˈoʊ wˈɜːld, fˈɔːɹɾi tˈuː ˈæpəlz."


def test_encode_decode_round_trip(fe: TextFrontend) -> None:
    ids = fe.encode("Hello world, 42 apples.")
    assert ids and all(0 < i < fe.n_symbols for i in ids)
    assert fe.decode(ids) == fe.phonemize("Hello world, 42 apples.")


def test_unknown_characters_dropped_with_warning(fe: TextFrontend) -> None:
    with pytest.warns(UserWarning, match="😀"):
        ids = fe.encode("Hello 😀 world")
    with pytest.warns(UserWarning):
        assert ids == fe.encode("Hello \u4e2d world")
    with pytest.warns(UserWarning, match="'§'"):
        assert fe.phonemes_to_ids("a§b") == [fe.symbol_to_id["a"], fe.symbol_to_id["b"]]


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_is_a_clear_error(fe: TextFrontend, text: str) -> None:
    for fn in (fe.normalize, fe.phonemize, fe.encode, fe.split_sentences):
        with pytest.raises(ValueError, match="empty"):
            fn(text)


def test_only_unspeakable_text_is_an_error(fe: TextFrontend) -> None:
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="nothing to speak"):
        fe.encode("😀😀")


def test_split_sentences(fe: TextFrontend) -> None:
    text = "Hi there. Mr. Smith met J. Doe! Did he?\n\nNew paragraph without an end"
    assert fe.split_sentences(text) == [
        "Hi there.",
        "Mr. Smith met J. Doe!",
        "Did he?",
        "New paragraph without an end",
    ]
    long = ", ".join(["word"] * 100) + "."
    parts = fe.split_sentences(long, max_chars=60)
    assert len(parts) > 1 and all(len(p) <= 60 for p in parts)
    assert " ".join(parts) == long


def test_symbol_table_round_trip(fe: TextFrontend) -> None:
    assert fe.symbols[0] == "_" and len(set(DEFAULT_SYMBOLS)) == len(DEFAULT_SYMBOLS)
    data = json.loads(json.dumps(fe.to_dict()))
    fe2 = TextFrontend.from_dict(data)
    assert fe2.symbols == fe.symbols and fe2.language == fe.language
    assert fe2.encode("Testing, one two.") == fe.encode("Testing, one two.")
    with pytest.raises(ValueError, match="duplicate"):
        TextFrontend(symbols=["_", "a", "a"])


def test_phonemize_is_thread_safe(fe: TextFrontend) -> None:
    expected = fe.phonemize("The quick brown fox.")
    results: list[str] = []

    def work() -> None:
        for _ in range(3):
            results.append(fe.phonemize("The quick brown fox."))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 12
