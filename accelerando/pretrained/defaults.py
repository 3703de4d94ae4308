"""Which bundled vocoder and voice are the defaults, chosen from recorded held-out measurements.

``benchmarks/speech_intelligibility.py --record`` writes ``vocoder_evaluation.json`` beside the bundled
checkpoints: for Griffin-Lim and every bundled mel vocoder, copy synthesis (festival speech -> mel -> vocoder:
WER, M-STFT, PESQ-wb, V/UV F1) and text-to-speech (text -> FastPitch -> vocoder: WER), and the TTS WER of each
voice. A neural vocoder becomes the default only when it is at least as good as Griffin-Lim there:

- copy-synthesis WER and TTS WER within :data:`WER_MARGIN` of Griffin-Lim's; when the evaluation also holds
  the TTS WER on the development sentences (``wer_tts_dev``: the sentences checkpoints are chosen on), there
  too, so a checkpoint that was lucky on one set of 36 sentences does not become the default;
- M-STFT no worse and PESQ-wb no lower than Griffin-Lim's; V/UV F1 at least :data:`MIN_VUV_F1`.

Among those the lowest TTS WER wins. Otherwise (or with no recorded file) Griffin-Lim is the default, and
:attr:`DefaultChoice.reason` says why in a sentence the UI can show.

Example::

    from accelerando.pretrained.defaults import default_vocoder

    choice = default_vocoder()
    print(choice.name, "-", choice.reason)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import accelerando.pretrained as _pretrained
from accelerando.fileio import atomic_write_text

__all__ = [
    "EVALUATION_FILE",
    "GRIFFIN_LIM",
    "MIN_VUV_F1",
    "WER_MARGIN",
    "DefaultChoice",
    "default_vocoder",
    "default_voice",
    "qualifies",
    "read_evaluation",
    "record_evaluation",
]

EVALUATION_FILE = "vocoder_evaluation.json"
GRIFFIN_LIM = "griffin-lim"
WER_MARGIN = 0.05  # the "within 0.05 of Griffin-Lim's WER"
MIN_VUV_F1 = 0.8
_FLOOR_KEYS = ("wer_copy", "wer_tts", "mstft", "pesq_wb")


@dataclass(frozen=True)
class DefaultChoice:
    """The chosen default: ``name`` (a bundled vocoder or ``"griffin-lim"``), a one-sentence ``reason``."""

    name: str
    reason: str
    measured: dict[str, Any] = field(default_factory=dict)


def read_evaluation(folder: str | Path | None = None) -> dict[str, Any] | None:
    """The recorded evaluation (``{"vocoders": {name: row}, "voices": {voice: wer}, ...}``) or None."""
    path = Path(folder or _pretrained.PRETRAINED_DIR) / EVALUATION_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def record_evaluation(payload: dict[str, Any], folder: str | Path | None = None) -> Path:
    """Write ``payload`` (see :func:`read_evaluation`) atomically beside the bundled checkpoints."""
    rows = payload.get("vocoders", {})
    if GRIFFIN_LIM not in rows:
        raise ValueError(f"an evaluation needs the {GRIFFIN_LIM!r} row as the floor; got rows {sorted(rows)}")
    missing = [k for k in _FLOOR_KEYS if rows[GRIFFIN_LIM].get(k) is None]
    if missing:
        raise ValueError(f"the {GRIFFIN_LIM!r} row needs numbers for {', '.join(missing)}")
    target = Path(folder or _pretrained.PRETRAINED_DIR) / EVALUATION_FILE
    return atomic_write_text(target, json.dumps(payload, indent=2))


def qualifies(row: dict[str, Any], floor: dict[str, Any]) -> list[str]:
    """The ways ``row`` falls short of the Griffin-Lim ``floor`` (an empty list: it may be the default)."""
    short = []
    keys = ["wer_copy", "wer_tts"] + (["wer_tts_dev"] if floor.get("wer_tts_dev") is not None else [])
    for key in keys:
        if row.get(key) is None or row[key] > floor[key] + WER_MARGIN:
            label = key.replace("_", " ").replace(" dev", " (development sentences)")
            short.append(f"{label} {_fmt(row.get(key))} vs {_fmt(floor[key])}")
    if row.get("mstft") is None or row["mstft"] > floor["mstft"]:
        short.append(f"M-STFT {_fmt(row.get('mstft'))} vs {_fmt(floor['mstft'])}")
    if row.get("pesq_wb") is None or row["pesq_wb"] < floor["pesq_wb"]:
        short.append(f"PESQ-wb {_fmt(row.get('pesq_wb'))} vs {_fmt(floor['pesq_wb'])}")
    if row.get("vuv_f1") is None or row["vuv_f1"] < MIN_VUV_F1:
        short.append(f"V/UV F1 {_fmt(row.get('vuv_f1'))} < {MIN_VUV_F1}")
    return short


def default_vocoder(folder: str | Path | None = None) -> DefaultChoice:
    """The default mel vocoder of the engine, the server, ``accelerando say`` and the demo (module docstring)."""
    evaluation = read_evaluation(folder)
    bundled = (
        set(_pretrained.list_pretrained())
        if folder is None
        else {p.name for p in Path(folder).iterdir() if p.is_dir()}
    )
    if evaluation is None:
        return DefaultChoice(
            GRIFFIN_LIM,
            "Griffin-Lim: no held-out measurement of the bundled vocoders is recorded "
            f"({EVALUATION_FILE}), so none can be shown to beat it.",
        )
    rows = evaluation.get("vocoders", {})
    floor = rows.get(GRIFFIN_LIM, {})
    if any(floor.get(k) is None for k in _FLOOR_KEYS):
        return DefaultChoice(
            GRIFFIN_LIM, f"Griffin-Lim: {EVALUATION_FILE} has no complete Griffin-Lim row to compare with."
        )
    verdicts = {
        name: qualifies(row, floor) for name, row in rows.items() if name != GRIFFIN_LIM and name in bundled
    }
    good = sorted((rows[n]["wer_tts"], rows[n]["wer_copy"], n) for n, short in verdicts.items() if not short)
    if good:
        name = good[0][2]
        return DefaultChoice(
            name,
            f"{name}: the best measured vocoder that holds Griffin-Lim's floor on held-out speech (WER within "
            f"{WER_MARGIN:g}: {_fmt(rows[name]['wer_tts'])} text-to-speech vs {_fmt(floor['wer_tts'])}; M-STFT "
            f"{_fmt(rows[name]['mstft'])} vs {_fmt(floor['mstft'])}, PESQ-wb {_fmt(rows[name]['pesq_wb'])} vs "
            f"{_fmt(floor['pesq_wb'])}).",
            rows[name],
        )
    if not verdicts:
        return DefaultChoice(
            GRIFFIN_LIM, "Griffin-Lim: no bundled neural vocoder has a recorded measurement.", floor
        )
    best = min(
        verdicts, key=lambda n: rows[n].get("wer_copy") if rows[n].get("wer_copy") is not None else 1.0
    )
    return DefaultChoice(
        GRIFFIN_LIM,
        f"Griffin-Lim: no bundled neural vocoder beats it on held-out speech yet (best, {best}: "
        f"{'; '.join(verdicts[best])}).",
        floor,
    )


def default_voice(voices: list[str], folder: str | Path | None = None) -> str | None:
    """The voice among ``voices`` with the lowest recorded TTS WER; the first voice when none is recorded."""
    if not voices:
        return None
    evaluation = read_evaluation(folder) or {}
    measured = {v: w for v, w in evaluation.get("voices", {}).items() if v in voices and w is not None}
    return min(measured, key=measured.__getitem__) if measured else voices[0]


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.2f}"
