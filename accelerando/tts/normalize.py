"""English text normalization for the TTS front end: numbers, currency, abbreviations, symbols.

Written without ``num2words`` or any downloaded data. Covers what read-aloud text usually holds:
integers (with ``,`` thousands separators, negatives), decimals, ordinals (``21st``), years
(``1984`` → "nineteen eighty four"), currency (``$5.50``, ``£3``, ``€10``), percentages, and a
small table of abbreviations (``Mr.``, ``Dr.``, ``e.g.``, ...).

Example::

    >>> normalize_text("Dr. Smith paid $5.50 on the 21st of May, 1984.")
    'doctor Smith paid five dollars, fifty cents on the twenty first of May, nineteen eighty four.'
"""

from __future__ import annotations

import re
import unicodedata
import warnings

__all__ = ["ABBREVIATIONS", "normalize_text", "number_to_words", "ordinal_to_words", "year_to_words"]

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ["", "thousand", "million", "billion", "trillion", "quadrillion"]
_ORDINAL_EXCEPTIONS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}

# Abbreviations expanded when followed by a period (case-insensitive, whole words).
ABBREVIATIONS: dict[str, str] = {
    "mr": "mister",
    "mrs": "missus",
    "ms": "miss",
    "dr": "doctor",
    "drs": "doctors",
    "st": "saint",
    "jr": "junior",
    "sr": "senior",
    "prof": "professor",
    "rev": "reverend",
    "gen": "general",
    "col": "colonel",
    "capt": "captain",
    "lt": "lieutenant",
    "sgt": "sergeant",
    "maj": "major",
    "gov": "governor",
    "hon": "honorable",
    "esq": "esquire",
    "ltd": "limited",
    "co": "company",
    "inc": "incorporated",
    "mt": "mount",
    "ft": "fort",
    "vs": "versus",
    "etc": "et cetera",
    "approx": "approximately",
    "dept": "department",
}
_MULTI_ABBREVIATIONS = {"e.g.": "for example", "i.e.": "that is", "a.m.": "A M", "p.m.": "P M"}
_CURRENCIES = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
}
_SYMBOLS = {"%": " percent", "&": " and ", "+": " plus ", "=": " equals ", "@": " at "}
# Characters kept as they are for the phonemizer (letters and digits are always kept).
KEPT_PUNCTUATION = set(" .,!?;:'\"()-")
_QUOTES = {
    "“": '"',
    "”": '"',
    "„": '"',
    "«": '"',
    "»": '"',
    "‘": "'",
    "’": "'",
    "`": "'",
    "—": ", ",
    "–": ", ",
    "…": "...",
    "[": "(",
    "]": ")",
    "{": "(",
    "}": ")",
}


def _below_thousand(n: int) -> str:
    words = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words.append(f"{_ONES[hundreds]} hundred")
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_TENS[tens] + (f" {_ONES[ones]}" if ones else ""))
    elif rest or not hundreds:
        words.append(_ONES[rest])
    return " ".join(words)


def number_to_words(n: int) -> str:
    """Cardinal words for an integer: ``-1234`` → "minus one thousand two hundred thirty four"."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 1000:
        return _below_thousand(n)
    groups = []
    scale = 0
    while n:
        n, group = divmod(n, 1000)
        if group:
            if scale >= len(_SCALES):
                raise ValueError("number too large to read aloud")
            groups.append(_below_thousand(group) + (f" {_SCALES[scale]}" if _SCALES[scale] else ""))
        scale += 1
    return " ".join(reversed(groups))


def ordinal_to_words(n: int) -> str:
    """Ordinal words: ``21`` → "twenty first", ``100`` → "one hundredth"."""
    words = number_to_words(n)
    head, sep, last = words.rpartition(" ")
    if last in _ORDINAL_EXCEPTIONS:
        last = _ORDINAL_EXCEPTIONS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


def year_to_words(n: int) -> str:
    """Years read in pairs: 1984 → "nineteen eighty-four", 1900 → "nineteen hundred", 2005 →
    "two thousand five", 2019 → "twenty nineteen"."""
    if n % 1000 < 10 and n // 1000 in (1, 2) and n % 100 < 10 and (n // 100) % 10 == 0:
        return number_to_words(n)  # 1000-1009, 2000-2009
    high, low = divmod(n, 100)
    if low == 0:
        return f"{number_to_words(high)} hundred"
    low_words = number_to_words(low) if low >= 10 else f"oh {number_to_words(low)}"
    return f"{number_to_words(high)} {low_words}"


def _digits(s: str) -> str:
    return " ".join(_ONES[int(d)] for d in s)


def _expand_currency(match: re.Match) -> str:
    one, many, cent, cents = _CURRENCIES[match.group(1)]
    whole = int(match.group(2).replace(",", ""))
    frac = match.group(3)
    parts = [f"{number_to_words(whole)} {one if whole == 1 else many}"]
    if frac:
        sub = int((frac + "0")[:2])
        if sub:
            parts.append(f"{number_to_words(sub)} {cent if sub == 1 else cents}")
    return ", ".join(parts)


def _expand_number(match: re.Match) -> str:
    sign, whole, frac = match.group(1), match.group(2), match.group(3)
    whole_int = int(whole.replace(",", ""))
    if frac is None and not sign and "," not in whole and len(whole) == 4 and 1100 <= whole_int <= 2099:
        return year_to_words(whole_int)
    words = number_to_words(whole_int)
    if frac:
        words += " point " + _digits(frac)
    return ("minus " if sign else "") + words


def _expand_abbreviations(text: str) -> str:
    for abbr, full in _MULTI_ABBREVIATIONS.items():
        text = re.sub(re.escape(abbr), full, text, flags=re.IGNORECASE)
    pattern = r"\b(" + "|".join(ABBREVIATIONS) + r")\.(?=\s|$|,)"
    text = re.sub(pattern, lambda m: ABBREVIATIONS[m.group(1).lower()], text, flags=re.IGNORECASE)
    # "No. 5" → "number 5" only before a digit, so the word "no." at a sentence end is untouched.
    return re.sub(r"\bno\.\s*(?=\d)", "number ", text, flags=re.IGNORECASE)


def _ascii_fold(text: str) -> str:
    """Map fancy quotes/dashes to plain ones, strip accents (é → e) and drop what cannot be spoken.

    Dropped characters (emoji, other scripts, control characters) are named in one warning.
    """
    for src, dst in _QUOTES.items():
        text = text.replace(src, dst)
    kept, dropped = [], []
    for ch in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(ch):
            continue
        if ch.isascii() and (ch.isalnum() or ch in KEPT_PUNCTUATION or ch in _SYMBOLS):
            kept.append(ch)
        elif ch.isspace():
            kept.append(" ")
        elif ch in _CURRENCIES:
            kept.append(ch)
        else:
            dropped.append(ch)
            kept.append(" ")
    if dropped:
        names = ", ".join(sorted({repr(c) for c in dropped}))
        warnings.warn(f"TextFrontend dropped unsupported characters: {names}", stacklevel=3)
    return "".join(kept)


def normalize_text(text: str) -> str:
    """Normalize English text for phonemization (words for numbers, symbols and abbreviations).

    Letters keep their case; whitespace is collapsed; unsupported characters are dropped with a
    ``UserWarning`` naming them.
    """
    text = _ascii_fold(text)
    text = _expand_abbreviations(text)
    currency = "|".join(re.escape(c) for c in _CURRENCIES)
    text = re.sub(rf"({currency})\s?(\d[\d,]*)(?:\.(\d+))?", _expand_currency, text)
    text = re.sub(
        r"\b(\d[\d,]*)(st|nd|rd|th)\b",
        lambda m: ordinal_to_words(int(m.group(1).replace(",", ""))),
        text,
        flags=re.IGNORECASE,
    )
    text = re.sub(r"(?<![\w.])(-)?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?", _expand_number, text)
    for sym, words in _SYMBOLS.items():
        text = text.replace(sym, words)
    text = re.sub(r"\s+([,.!?;:])", r"\1", text)
    return re.sub(r"\s+", " ", text).strip()
