"""Clean English sentences from an offline text source (Debian's ``fortunes`` by default).

A sentence is kept when it starts with a capital letter, ends with ``.``, ``!`` or ``?``, has
3-25 words, holds only ASCII letters, digits, spaces and ``, ; ' -`` inside, has no all-capital
words of two or more letters (speech engines spell those out) and no number outside 0-999 (years would be read differently by different engines).
The normalized text expands the few abbreviations kept (Mr., Mrs., Ms., Dr., St.) and numbers
into words; for every other sentence it equals the text.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

DEFAULT_TEXT_DIR = Path("/usr/share/games/fortunes")
TEXT_PACKAGE = "fortunes"
MIN_WORDS, MAX_WORDS = 3, 25

ABBREVIATIONS = {"Mr.": "Mister", "Mrs.": "Missus", "Ms.": "Miz", "Dr.": "Doctor", "St.": "Saint"}
_SENTENCE_END = re.compile(
    r"(?<!\bMr\.)(?<!\bMrs\.)(?<!\bMs\.)(?<!\bDr\.)(?<!\bSt\.)(?<=[.!?])\s+(?=[A-Z0-9])"
)
_CLEAN = re.compile(r"[A-Z][A-Za-z0-9 ,;'\-]*[A-Za-z0-9][.!?]")
_ABBREV = re.compile(r"\b(Mrs|Mr|Ms|Dr|St)\.(?= )")
_NUMBER = re.compile(r"\b\d+\b")
_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_to_words(n: int) -> str:
    """English words for an integer in 0-9999 (``1984`` -> ``one thousand nine hundred eighty-four``)."""
    if not 0 <= n <= 9999:
        raise ValueError(f"number_to_words handles 0-9999; got {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else "-" + _ONES[n % 10])
    if n < 1000:
        return _ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + number_to_words(n % 100))
    return (
        number_to_words(n // 1000) + " thousand" + ("" if n % 1000 == 0 else " " + number_to_words(n % 1000))
    )


def normalize_text(sentence: str) -> str:
    """Expands the kept abbreviations and numbers into words; otherwise returns the sentence unchanged."""
    text = _ABBREV.sub(lambda m: ABBREVIATIONS[m.group(0)], sentence)
    return _NUMBER.sub(lambda m: number_to_words(int(m.group(0))), text)


def is_clean_sentence(sentence: str) -> bool:
    """True for a sentence the corpus may use (see the module docstring)."""
    words = sentence.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS or "--" in sentence or re.search(r"\b[A-Z]\.$", sentence):
        return False
    body = _ABBREV.sub(
        lambda m: m.group(1), sentence
    )  # the abbreviations' dots are the only inner dots allowed
    if not _CLEAN.fullmatch(body):
        return False
    for word in words:
        letters = re.sub(r"[^A-Za-z]", "", word)
        if len(letters) >= 2 and letters.isupper():
            return False
        digits = re.sub(r"[^0-9]", "", word)
        if digits and (len(digits) > 3 or not re.fullmatch(r"\d+[,;.!?]?", word)):
            return False
    return True


def split_sentences(entry: str) -> list[str]:
    """Splits one paragraph (a fortune, say) into sentences; drops a ``-- Author`` attribution."""
    entry = re.split(r"\n\s*--", entry)[0]
    text = " ".join(entry.split())
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def default_text_files(text_dir: Path = DEFAULT_TEXT_DIR) -> list[Path]:
    """The fortune files (no suffix) in ``text_dir``, sorted."""
    if not text_dir.is_dir():
        return []
    return sorted(
        p for p in text_dir.iterdir() if p.is_file() and not p.suffix and not p.name.startswith(".")
    )


def load_sentences(paths: Iterable[str | os.PathLike] | None = None) -> list[str]:
    """Unique clean sentences from ``paths`` (default: Debian's fortune files), in a fixed (sorted) order.

    Entries are separated by lines holding only ``%`` (the fortune format) or by blank lines.

    Raises:
        FileNotFoundError: the default source is not installed, or a given file does not exist.
        ValueError: the source holds no usable sentence.
    """
    files = [Path(p) for p in paths] if paths is not None else default_text_files()
    if not files:
        raise FileNotFoundError(
            f"No text source: {str(DEFAULT_TEXT_DIR)!r} holds no fortune files; install Debian's "
            f"`{TEXT_PACKAGE}` package (`sudo apt-get install {TEXT_PACKAGE}` or `make system-deps`) "
            "or pass --text FILE with plain English text."
        )
    sentences: set[str] = set()
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(
                f"Text source {str(path)!r} does not exist; pass an existing plain-text file."
            )
        raw = path.read_bytes().decode("utf-8", errors="replace")
        for entry in re.split(r"\n%\n|\n\s*\n", raw.replace("\r\n", "\n")):
            sentences.update(s for s in split_sentences(entry) if is_clean_sentence(s))
    if not sentences:
        names = ", ".join(str(p) for p in files[:3]) + (" ..." if len(files) > 3 else "")
        raise ValueError(
            f"Text source ({names}) holds no usable sentence ({MIN_WORDS}-{MAX_WORDS} words of plain "
            "ASCII English ending in . ! or ?); pass --text with a file of English prose."
        )
    return sorted(sentences)
