"""Builds an LJSpeech-style multi-speaker speech corpus with Debian's festival and espeak-ng voices.

Layout of ``out``::

    wavs/<id>.wav     22050 Hz mono PCM-16, peak-normalised to 0.9
    metadata.csv      id|text|normalized text|speaker   (no header; speaker = voice name)
    split.json        fixed train / validation / test ids (90 / 5 / 5 %, from the seed and ids)
    corpus.json       written last: {"complete": true, "request": {...}, hours, counts, ...}

Sentences come from :mod:`accelerando.data.text_source`, shuffled with ``seed``; sentence ``k`` of
the shuffled list is spoken by voice ``voices[k % len(voices)]`` and gets the id
``<voice>_<k:05d>``. Utterances are made in that order until their total duration reaches
``hours``, so a build with the same seed and voices always yields the same corpus, and a larger
``hours`` extends a smaller build.
"""

from __future__ import annotations

import math
import os
import random
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelerando.data import _build
from accelerando.data.text_source import load_sentences, normalize_text

SAMPLE_RATE = 22050
PEAK = 0.9
_TYPICAL_SECONDS = 3.0  # a first guess of one utterance's duration, refined as the build goes


@dataclass(frozen=True)
class Voice:
    """One speaker: a festival voice (``engine="festival"``) or an espeak-ng voice."""

    name: str
    engine: str
    ident: str  # festival voice function or espeak-ng voice id
    package: str
    description: str
    check_file: str | None = None  # a file the voice package installs


_FESTIVAL_DIR = "/usr/share/festival/voices"
VOICES: dict[str, Voice] = {
    v.name: v
    for v in (
        Voice(
            "kal",
            "festival",
            "voice_kal_diphone",
            "festvox-kallpc16k",
            "US male, diphone, 16 kHz",
            f"{_FESTIVAL_DIR}/english/kal_diphone",
        ),
        Voice(
            "ked",
            "festival",
            "voice_ked_diphone",
            "festvox-kdlpc16k",
            "US male, diphone, 16 kHz",
            f"{_FESTIVAL_DIR}/english/ked_diphone",
        ),
        Voice(
            "slt",
            "festival",
            "voice_cmu_us_slt_arctic_hts",
            "festvox-us-slt-hts",
            "US female, HTS (CMU ARCTIC slt), 32 kHz",
            f"{_FESTIVAL_DIR}/us/cmu_us_slt_arctic_hts",
        ),
        Voice("espeak-en-us", "espeak", "en-us", "espeak-ng", "espeak-ng American English, male"),
        Voice(
            "espeak-en-us-f", "espeak", "en-us+f3", "espeak-ng", "espeak-ng American English, female variant"
        ),
        Voice("espeak-en-gb", "espeak", "en-gb", "espeak-ng", "espeak-ng British English, male"),
        Voice(
            "espeak-en-gb-f", "espeak", "en-gb+f2", "espeak-ng", "espeak-ng British English, female variant"
        ),
        Voice("espeak-en-rp", "espeak", "en-gb-x-rp", "espeak-ng", "espeak-ng Received Pronunciation"),
        Voice("espeak-en-scotland", "espeak", "en-gb-scotland", "espeak-ng", "espeak-ng Scottish English"),
    )
}
VOICE_ALIASES = {"kdl": "ked", "espeak-en": "espeak-en-gb"}
DEFAULT_VOICES = ("kal", "ked", "slt", "espeak-en-us", "espeak-en-us-f", "espeak-en-gb")


@dataclass(frozen=True)
class Utterance:
    """One planned corpus item."""

    id: str
    text: str
    normalized: str
    voice: str


def resolve_voices(names: str | list[str] | tuple[str, ...]) -> list[str]:
    """Validates a comma list (or sequence) of voice names; returns canonical names in order."""
    items = [n.strip() for n in names.split(",")] if isinstance(names, str) else [n.strip() for n in names]
    items = [VOICE_ALIASES.get(n, n) for n in items if n]
    unknown = [n for n in items if n not in VOICES]
    if unknown or not items:
        raise ValueError(
            f"Unknown or empty voice list {names!r}; available voices: {', '.join(VOICES)} "
            f"(aliases: {', '.join(f'{a}={b}' for a, b in VOICE_ALIASES.items())})"
        )
    return list(dict.fromkeys(items))


def check_speech_dependencies(voices: list[str], default_text: bool = True) -> None:
    """Raises a clear error naming the Debian package of every missing program or voice."""
    from accelerando.data.text_source import DEFAULT_TEXT_DIR, TEXT_PACKAGE

    binaries: dict[str, str] = {}
    files: dict[str, str] = {}
    for name in voices:
        voice = VOICES[name]
        if voice.engine == "festival":
            binaries["text2wave"] = "festival"
        else:
            binaries["espeak-ng"] = "espeak-ng"
        if voice.check_file:
            files[voice.check_file] = voice.package
    if default_text:
        files[str(DEFAULT_TEXT_DIR / "fortunes")] = TEXT_PACKAGE
    _build.check_system_dependencies(binaries, files)


def plan_utterances(sentences: list[str], voices: list[str], seed: int) -> list[Utterance]:
    """Every sentence, shuffled by ``seed``, each assigned a voice round-robin."""
    order = sorted(sentences)
    random.Random(seed).shuffle(order)
    plan = []
    for k, text in enumerate(order):
        voice = voices[k % len(voices)]
        plan.append(Utterance(f"{voice}_{k:05d}", text, normalize_text(text), voice))
    return plan


def synthesize(text: str, voice: Voice, path: Path) -> None:
    """Speaks ``text`` with ``voice`` into the wav file ``path`` (the engine's native rate)."""
    if voice.engine == "festival":
        stderr = _build.run_tool(
            ["text2wave", "-eval", f"({voice.ident})", "-o", str(path)],
            f"festival voice {voice.name}",
            timeout=120,
            input_text=text + "\n",
        )
        if "SIOD ERROR" in stderr or "unbound variable" in stderr:
            raise RuntimeError(
                f"festival voice {voice.name} failed ({stderr.strip()[-300:]}); "
                + _build.install_hint([voice.package])
            )
    else:
        _build.run_tool(
            ["espeak-ng", "-v", voice.ident, "-w", str(path), "--", text],
            f"espeak-ng voice {voice.name}",
            timeout=120,
        )


def make_utterance(utt: Utterance, wav_dir: Path) -> tuple[float, bool]:
    """Writes ``wav_dir/<id>.wav`` unless a valid one exists; returns (duration in s, made now)."""
    from accelerando.audio import load_audio, save_audio

    target = wav_dir / f"{utt.id}.wav"
    duration = _build.valid_audio_file(target, SAMPLE_RATE)
    if duration is not None:
        return duration, False
    with tempfile.TemporaryDirectory(prefix="accelerando-tts-") as tmp:
        raw = Path(tmp) / "raw.wav"
        synthesize(utt.text, VOICES[utt.voice], raw)
        if _build.valid_audio_file(raw, None) is None:
            raise RuntimeError(f"voice {utt.voice} wrote no audio for {utt.id!r} ({utt.text!r})")
        wav = load_audio(raw, SAMPLE_RATE)  # (T,) resampled to 22050 Hz
    peak = float(wav.abs().max())
    if peak <= 1e-4:
        raise RuntimeError(f"voice {utt.voice} produced silence for {utt.id!r} ({utt.text!r})")
    save_audio(target, wav * (PEAK / peak), SAMPLE_RATE)
    return wav.numel() / SAMPLE_RATE, True


def build_speech_corpus(
    out: str | os.PathLike,
    hours: float = 1.0,
    voices: str | list[str] | tuple[str, ...] = DEFAULT_VOICES,
    seed: int = 0,
    jobs: int = 1,
    text_files: list[str] | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Builds (or finishes, or confirms) the speech corpus at ``out``; returns its ``corpus.json`` dict.

    The returned dict also holds ``"made_now"``: the number of listed wavs synthesized by this call
    (0 when the corpus was already complete).
    """
    if not hours > 0:
        raise ValueError(f"hours must be > 0; got {hours!r}")
    names = resolve_voices(voices)
    check_speech_dependencies(names, default_text=text_files is None)
    root = _build.prepare_output_dir(out)
    request = {
        "kind": "speech",
        "hours": float(hours),
        "voices": names,
        "seed": int(seed),
        "text": [str(Path(p).resolve()) for p in text_files] if text_files else "fortunes",
        "sample_rate": SAMPLE_RATE,
    }
    if _build.is_complete(root, request) and all(
        (root / "wavs" / f"{i}.wav").is_file() for i in _read_ids(root)
    ):
        return {**(_build.read_marker(root) or {}), "made_now": 0}

    _build.begin_build(root, ("metadata.csv", _build.SPLIT_FILE))
    plan = plan_utterances(load_sentences(text_files), names, seed)
    wav_dir = root / "wavs"
    wav_dir.mkdir(exist_ok=True)
    target = hours * 3600.0
    listed: list[Utterance] = []
    total, made, pos = 0.0, 0, 0
    done = [0.0]
    bar = (
        _build.progress(int(target), f"speech corpus ({', '.join(names)})", unit="s")
        if show_progress
        else None
    )
    try:
        while total < target and pos < len(plan):
            mean = total / len(listed) if listed else _TYPICAL_SECONDS
            size = max(jobs, min(256, math.ceil((target - total) / mean)))
            chunk = plan[pos : pos + size]
            pos += len(chunk)

            def _tick(_utt: Utterance, result: tuple[float, bool]) -> None:
                if bar is not None:  # whole seconds of audio made, capped at the target
                    done[0] += result[0]
                    bar.update(min(int(done[0]), int(target)) - bar.n)

            results = _build.run_parallel(lambda u: make_utterance(u, wav_dir), chunk, jobs, _tick)
            for utt, (duration, new) in zip(chunk, results):
                if total < target:
                    listed.append(utt)
                    total += duration
                    made += new
                else:  # made in the last batch beyond the target: keep the folder equal to the metadata
                    (wav_dir / f"{utt.id}.wav").unlink(missing_ok=True)
    finally:
        if bar is not None:
            bar.close()
    if total < target:
        print(
            f"warning: the text source ran out after {total / 3600:.3f} h of the {hours:g} h asked for",
            file=sys.stderr,
        )

    rows = [f"{u.id}|{u.text}|{u.normalized}|{u.voice}" for u in listed]
    ids = [u.id for u in listed]
    splits = _build.write_splits(root, ids, seed)
    _build.atomic_write_text(root / "metadata.csv", "\n".join(rows) + "\n")
    summary = {
        "num_utterances": len(listed),
        "hours": round(total / 3600.0, 4),
        "speakers": {v: sum(u.voice == v for u in listed) for v in names},
        "split_sizes": {k: len(v) for k, v in splits.items()},
        "sample_rate": SAMPLE_RATE,
    }
    marker = _build.finish_build(root, request, summary, (wav_dir / f"{i}.wav" for i in ids))
    return {**marker, "made_now": made}


def _read_ids(root: Path) -> list[str]:
    path = root / "metadata.csv"
    if not path.is_file():
        return ["<metadata.csv missing>"]
    return [line.split("|", 1)[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
