"""OpenAI's names on the speech API: its voice names mapped to ours, and the model names it accepts.

OpenAI clients send ``voice`` from OpenAI's list and ``model`` ``tts-1`` / ``tts-1-hd`` /
``gpt-4o-mini-tts``. The server accepts those and its own names. Each OpenAI voice is spoken by one of the
bundled voices, by apparent gender and, within it, by the lowest measured word error rate (``slt`` for the
female-sounding voices, ``kal`` for the male-sounding ones; ``fable``'s British accent by ``espeak-en-gb``,
and ``ballad``, ``verse`` by ``ked`` for variety). The table is a default: ``accelerando serve
--voice-alias nova=kal`` (or ``create_app(voice_aliases=...)``) changes it. An alias whose voice the
loaded model does not have speaks with the model's default voice.

| OpenAI voice | our voice |
| --- | --- |
| alloy, coral, marin, nova, sage | slt |
| shimmer | espeak-en-us-f |
| ash, cedar, echo, onyx | kal |
| ballad, verse | ked |
| fable | espeak-en-gb |
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["OPENAI_MODELS", "OPENAI_VOICES", "parse_voice_aliases", "voice_aliases"]

OPENAI_MODELS: tuple[str, ...] = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")

OPENAI_VOICES: dict[str, str] = {
    "alloy": "slt",
    "ash": "kal",
    "ballad": "ked",
    "cedar": "kal",
    "coral": "slt",
    "echo": "kal",
    "fable": "espeak-en-gb",
    "marin": "slt",
    "nova": "slt",
    "onyx": "kal",
    "sage": "slt",
    "shimmer": "espeak-en-us-f",
    "verse": "ked",
}


def voice_aliases(
    voices: list[str], default_voice: str, overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``{alias: voice}`` for a model with ``voices``: :data:`OPENAI_VOICES` updated by ``overrides``.

    An override must name one of ``voices`` (``ValueError`` otherwise); a default alias whose voice the
    model lacks maps to ``default_voice``. A model voice's own name is never shadowed by an alias.
    """
    table = dict(OPENAI_VOICES)
    for alias, voice in (overrides or {}).items():
        if voice not in voices:
            raise ValueError(
                f"Voice alias {alias}={voice}: unknown voice {voice!r}; available: {', '.join(voices)}."
            )
        table[alias] = voice
    return {a: (v if v in voices else default_voice) for a, v in table.items() if a not in voices}


def parse_voice_aliases(items: list[str] | None) -> dict[str, str]:
    """``["nova=kal", ...]`` (the ``--voice-alias`` flag) -> ``{"nova": "kal"}``; ``ValueError`` on bad items."""
    out = {}
    for item in items or []:
        alias, sep, voice = item.partition("=")
        if not sep or not alias.strip() or not voice.strip():
            raise ValueError(f"--voice-alias {item!r}: expected NAME=VOICE, e.g. nova=slt.")
        out[alias.strip()] = voice.strip()
    return out
