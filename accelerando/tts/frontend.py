"""Text front end: normalization, offline espeak-ng phonemization, a fixed symbol table, sentences.

Phonemes come from espeak-ng through phonemizer-fork, with the library and voice data shipped in
the ``espeakng-loader`` wheel, so nothing is downloaded at run time. The symbol table is fixed (pad,
punctuation, IPA letters and stress marks, space) and saved with the model
(``IncrementalFastPitch`` keeps ``symbols`` in its config) so ids never drift between training and
inference.

Example::

    from accelerando.tts import TextFrontend

    fe = TextFrontend()
    fe.phonemize("Hello world, 42 apples.")  # 'həlˈoʊ wˈɜːld, fˈɔːɹɾi tˈuː ˈæpəlz.'
    ids = fe.encode("Hello world.")  # [ids in fe.symbols]
    fe.split_sentences("Hi there. Mr. Smith is here!")  # ['Hi there.', 'Mr. Smith is here!']
"""

from __future__ import annotations

import re
import threading
import warnings
from collections.abc import Sequence
from typing import Any

from .normalize import ABBREVIATIONS, normalize_text

__all__ = ["DEFAULT_SYMBOLS", "PAD", "TextFrontend"]

PAD = "_"
_PUNCTUATION = list(";:,.!?¡¿—…\"«»“”()'-")
_LETTERS = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_IPA = list(
    "ɑɐɒæɓʙβɔɕçɗɖðʤəɘɚɛɜɝɞɟʄɡɠɢʛɦɧħɥʜɨɪʝɭɬɫɮʟɱɯɰŋɳɲɴøɵɸθœɶʘɹɺɾɻʀʁɽʂʃʈʧʉʊʋⱱʌɣɤʍχʎʏʑʐʒʔʡʕʢǀǁǂǃ"
    "ˈˌːˑʼʴʰʱʲʷˠˤ˞↓↑→↗↘ᵻ"
) + ["\u0303", "\u0329"]  # combining tilde (nasal), combining vertical line (syllabic)
# Index 0 is the pad symbol; the order never changes once a model has been trained on it.
DEFAULT_SYMBOLS: tuple[str, ...] = (PAD, *_PUNCTUATION, " ", *_LETTERS, *_IPA)

# espeak-ng (a C library with global state) is set up once per process and never called from two
# threads at the same time.
_ESPEAK_LOCK = threading.Lock()
_ESPEAK_READY = False


def _setup_espeak() -> None:
    global _ESPEAK_READY
    if _ESPEAK_READY:
        return
    import espeakng_loader
    from phonemizer.backend.espeak.wrapper import EspeakWrapper

    EspeakWrapper.set_library(espeakng_loader.get_library_path())
    EspeakWrapper.set_data_path(espeakng_loader.get_data_path())
    _ESPEAK_READY = True


_SENTENCE_END = re.compile(r"([.!?]+[\"')]*)(\s+)")


class TextFrontend:
    """Text → phoneme ids, offline (espeak-ng via phonemizer-fork + espeakng-loader).

    Args:
        language: an espeak-ng voice code (``"en-us"``, ``"en-gb"``). Number and abbreviation
            expansion is English; other languages get the same punctuation handling only.
        symbols: the symbol table; defaults to :data:`DEFAULT_SYMBOLS`. Index 0 must be the pad.
    """

    def __init__(self, language: str = "en-us", symbols: Sequence[str] | None = None) -> None:
        self.language = language
        self.symbols: list[str] = list(DEFAULT_SYMBOLS if symbols is None else symbols)
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("The symbol table has duplicate entries; every symbol must appear once.")
        self.symbol_to_id = {s: i for i, s in enumerate(self.symbols)}
        self._backend: Any = None

    # ------------------------------------------------------------------ symbol table
    @property
    def pad_id(self) -> int:
        return 0

    @property
    def n_symbols(self) -> int:
        return len(self.symbols)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (language + symbol table) to save with a model."""
        return {"language": self.language, "symbols": list(self.symbols)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextFrontend:
        """Rebuild the front end saved by :meth:`to_dict`."""
        return cls(language=data.get("language", "en-us"), symbols=data["symbols"])

    # ------------------------------------------------------------------ text
    @staticmethod
    def _check_text(text: str) -> None:
        if not isinstance(text, str):
            raise ValueError(f"Text must be a str, got {type(text).__name__}.")
        if not text.strip():
            raise ValueError(f"Text is empty or whitespace only ({text!r}); give at least one word.")

    def normalize(self, text: str) -> str:
        """Expand numbers, currency, symbols and abbreviations; drop unsupported characters (warning)."""
        self._check_text(text)
        return normalize_text(text)

    def split_sentences(self, text: str, max_chars: int = 300) -> list[str]:
        """Split raw text into sentences for streaming, one synthesis unit each.

        Splits after ``.``, ``!``, ``?`` (and closing quotes) followed by whitespace, and at blank
        lines, but not after known abbreviations (``Mr.``) or single initials (``J.``). Sentences
        longer than ``max_chars`` are split further at ``,;:`` and then at spaces.
        """
        self._check_text(text)
        sentences: list[str] = []
        for paragraph in re.split(r"\n\s*\n", text):
            pieces = _SENTENCE_END.split(paragraph.strip())
            current = ""
            # re.split with two groups gives [text, end, space, text, end, space, ..., text]
            for i in range(0, len(pieces), 3):
                current += pieces[i]
                if i + 1 < len(pieces):
                    current += pieces[i + 1]
                    last_word = re.findall(r"(\w+)\W*$", current)
                    word = last_word[0].lower() if last_word else ""
                    if pieces[i + 1].startswith(".") and (word in ABBREVIATIONS or len(word) == 1):
                        current += " "
                        continue
                    sentences.append(current.strip())
                    current = ""
            if current.strip():
                sentences.append(current.strip())
        out: list[str] = []
        for sentence in sentences:
            out.extend(self._split_long(" ".join(sentence.split()), max_chars))
        return [s for s in out if re.search(r"\w", s)]

    @staticmethod
    def _split_long(sentence: str, max_chars: int) -> list[str]:
        if len(sentence) <= max_chars:
            return [sentence]
        parts: list[str] = []
        current = ""
        for clause in re.split(r"(?<=[,;:])\s+", sentence):
            for word in clause.split(" ") if len(clause) > max_chars else [clause]:
                if current and len(current) + 1 + len(word) > max_chars:
                    parts.append(current)
                    current = word
                else:
                    current = f"{current} {word}" if current else word
        if current:
            parts.append(current)
        return parts

    # ------------------------------------------------------------------ phonemes
    def _get_backend(self) -> Any:
        if self._backend is None:
            from phonemizer.backend import EspeakBackend

            _setup_espeak()
            self._backend = EspeakBackend(
                self.language,
                preserve_punctuation=True,
                with_stress=True,
                language_switch="remove-flags",
            )
        return self._backend

    def phonemize(self, text: str) -> str:
        """Normalized text → IPA string with stress marks and punctuation kept."""
        normalized = self.normalize(text)
        if not re.search(r"\w", normalized):
            raise ValueError(f"Text {text!r} has nothing to speak after normalization.")
        with _ESPEAK_LOCK:
            backend = self._get_backend()
            phonemes = backend.phonemize([normalized], strip=True, njobs=1)[0]
        return re.sub(r"\s+", " ", phonemes).strip()

    def phonemes_to_ids(self, phonemes: str) -> list[int]:
        """Map an IPA string to ids; symbols outside the table are dropped with a warning naming them."""
        ids, unknown = [], []
        for ch in phonemes:
            idx = self.symbol_to_id.get(ch)
            if idx is None or idx == self.pad_id:
                unknown.append(ch)
            else:
                ids.append(idx)
        if unknown:
            names = ", ".join(sorted({repr(c) for c in unknown}))
            warnings.warn(f"TextFrontend dropped symbols outside its table: {names}", stacklevel=2)
        return ids

    def encode(self, text: str) -> list[int]:
        """Text → phoneme ids (never empty: raises ``ValueError`` when nothing is speakable)."""
        ids = self.phonemes_to_ids(self.phonemize(text))
        if not ids:
            raise ValueError(f"Text {text!r} produced no known phoneme symbols.")
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Ids → symbol string (the inverse of :meth:`phonemes_to_ids`; pads are skipped)."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.symbols):
                raise ValueError(f"Symbol id {i} is outside the table (0..{len(self.symbols) - 1}).")
            if i != self.pad_id:
                out.append(self.symbols[i])
        return "".join(out)
