"""Builds the instrument-note corpus (NSynth-like) and, with :mod:`.melodies`, the melody corpus.

``out/notes`` holds one fixed-length note per (GM program, MIDI pitch, velocity), rendered with
fluidsynth from the General MIDI soundfont at 22050 Hz::

    notes/wavs/<instrument>_<program:03d>-<pitch:03d>-<velocity:03d>.wav
    notes/manifest.csv   id,instrument,program,family,pitch,velocity,sample_rate,seconds
    notes/split.json     fixed train / validation / test ids (90 / 5 / 5 %, from the seed and ids)
    notes/corpus.json    written last, {"complete": true, ...}

Each note is held for ``hold_fraction`` of the clip and released inside it. All notes of one
(program, velocity) are rendered in one fluidsynth run, ``note_seconds + 1 s`` apart so that
release tails end before the next note, then cut into clips; that run is the resumable unit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelerando.data import _build
from accelerando.data._build import rows_to_csv
from accelerando.data.midi_render import (
    DEFAULT_SOUNDFONT,
    Instrument,
    check_render_dependencies,
    render_midi,
    resolve_instrument,
    to_tick,
    write_midi,
)

NOTE_SAMPLE_RATE = 22050
DEFAULT_NOTE_INSTRUMENTS = (
    "acoustic_grand_piano", "vibraphone", "church_organ", "acoustic_guitar_nylon", "electric_bass_finger",
    "violin", "cello", "string_ensemble", "trumpet", "alto_sax", "clarinet", "flute",
)  # fmt: skip
DEFAULT_VELOCITIES = (40, 80, 120)
NOTE_FIELDS = ("id", "instrument", "program", "family", "pitch", "velocity", "sample_rate", "seconds")
_GAP_SECONDS = 1.0


@dataclass(frozen=True)
class NoteUnit:
    """All notes of one instrument at one velocity: one fluidsynth run."""

    instrument: Instrument
    velocity: int
    pitches: tuple[int, ...]

    def note_id(self, pitch: int) -> str:
        return f"{self.instrument.name}_{self.instrument.program:03d}-{pitch:03d}-{self.velocity:03d}"


def plan_notes(
    instruments: list[Instrument], velocities: list[int], pitches: list[int] | None, pitch_step: int
) -> list[NoteUnit]:
    """One unit per (instrument, velocity); pitches are ``pitches`` or each instrument's range every ``pitch_step``."""
    for v in velocities:
        if not 1 <= v <= 127:
            raise ValueError(f"MIDI velocities are 1-127; got {v}")
    if pitches is not None and any(not 0 <= p <= 127 for p in pitches):
        raise ValueError(f"MIDI pitches are 0-127; got {pitches}")
    if pitch_step < 1:
        raise ValueError(f"pitch_step must be >= 1; got {pitch_step}")
    units = []
    for inst in instruments:
        grid = tuple(pitches) if pitches is not None else tuple(range(inst.low, inst.high + 1, pitch_step))
        units.extend(NoteUnit(inst, v, grid) for v in velocities)
    return units


def render_note_unit(
    unit: NoteUnit, wav_dir: Path, note_seconds: float, hold_fraction: float, soundfont: str
) -> int:
    """Renders the unit's notes unless all their wavs are valid; returns how many wavs it wrote."""
    import numpy as np

    from accelerando.audio import save_audio

    clip = int(round(note_seconds * NOTE_SAMPLE_RATE))
    targets = [wav_dir / f"{unit.note_id(p)}.wav" for p in unit.pitches]
    if all(_build.valid_audio_file(t, NOTE_SAMPLE_RATE) is not None for t in targets):
        return 0
    slot = note_seconds + _GAP_SECONDS
    events = []
    for k, pitch in enumerate(unit.pitches):
        start = to_tick(k * slot)
        events.append((start, 1, "note_on", pitch, unit.velocity))
        events.append((start + to_tick(note_seconds * hold_fraction), 0, "note_off", pitch, 0))
    midi_path = wav_dir / f".{unit.note_id(0)}.mid"
    try:
        write_midi(midi_path, unit.instrument.program, events)
        audio = render_midi(midi_path, NOTE_SAMPLE_RATE, soundfont)  # (T,)
    finally:
        midi_path.unlink(missing_ok=True)
    for k, target in enumerate(targets):
        start = int(round(k * slot * NOTE_SAMPLE_RATE))
        note = np.zeros(clip, dtype=np.float32)
        piece = audio[start : start + clip]
        note[: len(piece)] = piece
        save_audio(target, note, NOTE_SAMPLE_RATE)
    return len(targets)


def build_note_corpus(
    out: str | os.PathLike,
    instruments: list[str | int] | tuple[str | int, ...] = DEFAULT_NOTE_INSTRUMENTS,
    velocities: list[int] | tuple[int, ...] = DEFAULT_VELOCITIES,
    pitches: list[int] | None = None,
    pitch_step: int = 1,
    note_seconds: float = 1.5,
    hold_fraction: float = 0.75,
    seed: int = 0,
    jobs: int = 1,
    soundfont: str = DEFAULT_SOUNDFONT,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Builds (or finishes, or confirms) the note corpus in ``out``; returns its marker plus ``made_now``."""
    if not note_seconds > 0.1 or not 0 < hold_fraction <= 1:
        raise ValueError(
            f"need note_seconds > 0.1 and 0 < hold_fraction <= 1; got {note_seconds}, {hold_fraction}"
        )
    check_render_dependencies(soundfont)
    insts = [resolve_instrument(i) for i in instruments]
    units = plan_notes(insts, list(velocities), list(pitches) if pitches is not None else None, pitch_step)
    root = _build.prepare_output_dir(out)
    request = {
        "kind": "notes", "instruments": [i.name for i in insts], "velocities": list(velocities),
        "pitches": list(pitches) if pitches is not None else f"range/{pitch_step}", "note_seconds": note_seconds,
        "hold_fraction": hold_fraction, "seed": seed, "soundfont": str(soundfont), "sample_rate": NOTE_SAMPLE_RATE,
    }  # fmt: skip
    ids = [u.note_id(p) for u in units for p in u.pitches]
    wav_dir = root / "wavs"
    if _build.is_complete(root, request) and all((wav_dir / f"{i}.wav").is_file() for i in ids):
        return {**(_build.read_marker(root) or {}), "made_now": 0}
    _build.begin_build(root, ("manifest.csv", _build.SPLIT_FILE))
    wav_dir.mkdir(exist_ok=True)
    bar = _build.progress(len(ids), "instrument notes", unit="note") if show_progress else None
    try:
        made = _build.run_parallel(
            lambda u: render_note_unit(u, wav_dir, note_seconds, hold_fraction, str(soundfont)),
            units, jobs, (lambda u, _n: bar.update(len(u.pitches))) if bar is not None else None,
        )  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    # A soundfont can lack a sample for a pitch (FluidR3's violin at MIDI 94 renders silence): such
    # notes keep their file, so a rebuild does not redo them, but stay out of the manifest.
    silent = {i for i in ids if _is_silent(wav_dir / f"{i}.wav")}
    ids = [i for i in ids if i not in silent]
    rows = [
        {"id": u.note_id(p), "instrument": u.instrument.name, "program": u.instrument.program,
         "family": u.instrument.family, "pitch": p, "velocity": u.velocity, "sample_rate": NOTE_SAMPLE_RATE,
         "seconds": note_seconds}
        for u in units for p in u.pitches if u.note_id(p) not in silent
    ]  # fmt: skip
    splits = _build.write_splits(root, ids, seed)
    _build.atomic_write_text(root / "manifest.csv", rows_to_csv(rows, NOTE_FIELDS))
    summary = {"num_notes": len(ids), "split_sizes": {k: len(v) for k, v in splits.items()},
               "sample_rate": NOTE_SAMPLE_RATE, "hours": round(len(ids) * note_seconds / 3600, 4),
               "silent_notes_excluded": sorted(silent)}  # fmt: skip
    marker = _build.finish_build(root, request, summary, (wav_dir / f"{i}.wav" for i in ids))
    return {**marker, "made_now": sum(made)}


def _is_silent(path: Path, threshold: float = 1e-3) -> bool:
    import numpy as np
    import soundfile as sf

    return float(np.abs(sf.read(str(path), dtype="float32")[0]).max()) < threshold


def build_instrument_corpus(
    out: str | os.PathLike,
    parts: tuple[str, ...] = ("notes", "melodies"),
    seed: int = 0,
    jobs: int = 1,
    soundfont: str = DEFAULT_SOUNDFONT,
    show_progress: bool = True,
    note_options: dict[str, Any] | None = None,
    melody_options: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Builds ``out/notes`` and/or ``out/melodies``; returns each part's marker (plus ``made_now``)."""
    from accelerando.data.melodies import build_melody_corpus

    unknown = set(parts) - {"notes", "melodies"}
    if unknown or not parts:
        raise ValueError(f"parts must be a non-empty subset of ('notes', 'melodies'); got {parts!r}")
    check_render_dependencies(soundfont)
    root = _build.prepare_output_dir(out)
    result = {}
    common = {"seed": seed, "jobs": jobs, "soundfont": soundfont, "show_progress": show_progress}
    if "notes" in parts:
        result["notes"] = build_note_corpus(root / "notes", **common, **(note_options or {}))
    if "melodies" in parts:
        result["melodies"] = build_melody_corpus(root / "melodies", **common, **(melody_options or {}))
    return result
