"""Monophonic melodies with vibrato and legato glides, rendered with fluidsynth, with exact f0.

Each melody is a random walk on a major scale inside the instrument's range. Consecutive notes are
mostly legato (the next note starts as the last one ends; half of those transitions glide with a
pitch bend over the last 60 ms), otherwise separated by a short rest. Notes of 0.3 s or longer get
vibrato (4.5-6.5 Hz, 0.1-0.35 semitone depth) after a 0.15 s delay, faded in over 0.2 s.
Vibrato and glides are pitch-bend messages in the MIDI (range ``BEND_RANGE`` semitones, set by RPN).

The f0 track is computed from the same tick-rounded note and bend events: frame ``i`` is the value
at ``t = (i + 0.5) * hop / sr`` (the centre of samples ``[i*hop, (i+1)*hop)``, as on the mel
framing), ``f0 = 440 * 2 ** ((note + bend - 69) / 12)``. ``voiced`` is true while a note is held;
between notes (and before the first) f0 holds the neighbouring note's pitch so that it stays
continuous for f0-driven synthesizers. Loudness is measured from the rendered audio with
:func:`accelerando.audio.extract_loudness` on the same framing.

Layout of ``out``::

    midi/<id>.mid
    16000/wavs/<id>.wav      16000/controls/<id>.npz   (NEWT; hop ``control_hop``, default 128)
    22050/wavs/<id>.wav      22050/controls/<id>.npz   (mel models; hop 256, frames == mel frames)
    manifest.csv             id,instrument,program,seconds,num_notes,low_pitch,high_pitch
    split.json, corpus.json

A controls ``.npz`` holds ``f0_hz`` (float32), ``voiced`` (bool), ``loudness_db`` (float32), each
``(T // hop,)``, and ``hop_length``, ``sample_rate``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from accelerando.data import _build
from accelerando.data._build import rows_to_csv
from accelerando.data.midi_render import (
    DEFAULT_SOUNDFONT,
    TICKS_PER_SECOND,
    Instrument,
    bend_semitones,
    bend_value,
    check_render_dependencies,
    render_midi,
    resolve_instrument,
    to_tick,
    write_midi,
)

DEFAULT_MELODY_INSTRUMENTS = ("violin", "flute", "trumpet", "cello", "clarinet", "alto_sax")
RATES_AND_HOPS = {16000: 128, 22050: 256}  # the 16 kHz hop is replaced by ``control_hop``
LOUDNESS_N_FFT = 1024
MELODY_FIELDS = ("id", "instrument", "program", "seconds", "num_notes", "low_pitch", "high_pitch")
_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
_DURATIONS = np.array([0.2, 0.3, 0.4, 0.6, 0.8, 1.2])
_BEND_STEP = 0.005  # seconds between pitch-bend messages during vibrato and glides
_GLIDE = 0.06


@dataclass(frozen=True)
class Note:
    pitch: int
    start: float
    end: float
    velocity: int


def generate_notes(instrument: Instrument, seconds: float, rng: np.random.Generator) -> list[Note]:
    """A random monophonic phrase of about ``seconds`` (starting at 0.3 s)."""
    tonic = int(rng.integers(0, 12))
    scale = np.array([p for p in range(instrument.low, instrument.high + 1) if (p - tonic) % 12 in _MAJOR])
    mid = len(scale) // 2
    index = int(rng.integers(max(0, mid - len(scale) // 4), min(len(scale), mid + len(scale) // 4 + 1)))
    t, notes = 0.3, []
    while t < seconds - 0.6:  # the last note lasts at least 0.1 s
        duration = float(rng.choice(_DURATIONS, p=[0.15, 0.2, 0.25, 0.2, 0.12, 0.08]))
        end = min(t + duration, seconds - 0.5)
        notes.append(Note(int(scale[index]), t, end, int(rng.integers(70, 115))))
        t = end + (float(rng.uniform(0.1, 0.4)) if rng.random() < 0.15 else 0.0)
        index = int(np.clip(index + rng.choice([-3, -2, -1, 1, 2, 3], p=[0.08, 0.17, 0.25, 0.25, 0.17, 0.08]),
                            0, len(scale) - 1))  # fmt: skip
    return notes


def melody_events(notes: list[Note], rng: np.random.Generator) -> list[tuple[int, int, str, int, int]]:
    """MIDI events ``(tick, order, kind, a, b)`` for the notes, with vibrato and glide pitch bends."""
    events: list[tuple[int, int, str, int, int]] = []
    for k, note in enumerate(notes):
        on = to_tick(note.start)
        off = max(
            on + 1, to_tick(note.end)
        )  # a note_off on its note_on's tick would sort first and hang the note
        events += [(on, 1, "pitchwheel", bend_value(0.0), 0), (on, 2, "note_on", note.pitch, note.velocity)]
        events.append((off, 0, "note_off", note.pitch, 0))
        nxt = notes[k + 1] if k + 1 < len(notes) else None
        legato = nxt is not None and to_tick(nxt.start) == off
        glide = legato and rng.random() < 0.5 and note.end - note.start > 2 * _GLIDE
        length = note.end - note.start
        vibrato = length >= 0.3
        rate, depth = float(rng.uniform(4.5, 6.5)), float(rng.uniform(0.1, 0.35))
        last = bend_value(0.0)
        for t in np.arange(note.start + _BEND_STEP, note.end, _BEND_STEP):
            local = t - note.start
            bend = (
                depth * min(1.0, max(0.0, (local - 0.15) / 0.2)) * np.sin(2 * np.pi * rate * (local - 0.15))
            )
            bend = bend if vibrato and local > 0.15 else 0.0
            if glide and t > note.end - _GLIDE:
                bend += (nxt.pitch - note.pitch) * (t - (note.end - _GLIDE)) / _GLIDE
            value, tick = bend_value(bend), to_tick(t)
            if value != last and on < tick < off:
                events.append((tick, 1, "pitchwheel", value, 0))
                last = value
        if not legato:
            events.append((off, 1, "pitchwheel", bend_value(0.0), 0))
    return sorted(events, key=lambda e: (e[0], e[1]))


def f0_track(
    events: list[tuple[int, int, str, int, int]], num_frames: int, hop: int, sr: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(f0_hz, voiced)``, each ``(num_frames,)``, from the MIDI events (see the module docstring)."""
    times = (np.arange(num_frames) + 0.5) * hop / sr * TICKS_PER_SECOND  # frame centres in ticks
    semis = np.full(num_frames, np.nan)
    voiced = np.zeros(num_frames, dtype=bool)
    note, bend, since = None, 0.0, 0.0
    spans: list[tuple[float, float, int | None, float]] = []  # piecewise-constant (from, to, note, bend)
    for tick, _, kind, a, _b in events:
        spans.append((since, float(tick), note, bend))
        since = float(tick)
        if kind == "note_on":
            note = a
        elif kind == "note_off" and note == a:
            note = None
        elif kind == "pitchwheel":
            bend = bend_semitones(a)
    spans.append((since, np.inf, note, bend))
    for start, stop, held, b in spans:
        if held is None or stop <= start:
            continue
        inside = (times >= start) & (times < stop)
        semis[inside] = held + b
        voiced[inside] = True
    # Hold the last sounding pitch through rests; before the first note use the first note's pitch.
    filled = np.where(voiced)[0]
    if filled.size == 0:
        raise ValueError("melody has no notes")
    semis[: filled[0]] = semis[filled[0]]
    for i in range(filled[0] + 1, num_frames):
        if not voiced[i]:
            semis[i] = semis[i - 1]
    return (440.0 * 2.0 ** ((semis - 69.0) / 12.0)).astype(np.float32), voiced


@dataclass(frozen=True)
class MelodyUnit:
    instrument: Instrument
    index: int
    seconds: float

    @property
    def id(self) -> str:
        return f"{self.instrument.name}_{self.index:04d}"


def _melody_files(root: Path, melody_id: str) -> list[Path]:
    files = [root / "midi" / f"{melody_id}.mid"]
    for rate in RATES_AND_HOPS:
        files += [
            root / str(rate) / "wavs" / f"{melody_id}.wav",
            root / str(rate) / "controls" / f"{melody_id}.npz",
        ]
    return files


def render_melody(
    unit: MelodyUnit, root: Path, seed: int, hops: dict[int, int], soundfont: str
) -> dict[str, Any]:
    """Writes the melody's MIDI, audio and control tracks unless they exist; returns its manifest row."""
    from accelerando.audio import extract_loudness, resample, save_audio

    rng = np.random.default_rng([seed, unit.instrument.program, unit.index])
    notes = generate_notes(unit.instrument, unit.seconds, rng)
    row = {"id": unit.id, "instrument": unit.instrument.name, "program": unit.instrument.program,
           "seconds": unit.seconds, "num_notes": len(notes), "low_pitch": min(n.pitch for n in notes),
           "high_pitch": max(n.pitch for n in notes)}  # fmt: skip
    files = _melody_files(root, unit.id)
    if all(f.is_file() for f in files) and all(
        _build.valid_audio_file(f, int(f.parts[-3])) for f in files[1::2]
    ):
        return {**row, "made": False}
    events = melody_events(notes, rng)
    files[0].parent.mkdir(parents=True, exist_ok=True)
    write_midi(files[0], unit.instrument.program, events)
    rendered = render_midi(files[0], 22050, soundfont)  # (T,)
    length = int(round(unit.seconds * 22050))
    audio_22k = np.zeros(length, dtype=np.float32)
    audio_22k[: min(length, len(rendered))] = rendered[:length]
    for rate, hop in hops.items():
        audio = audio_22k if rate == 22050 else resample(audio_22k, 22050, rate).numpy()  # (T,)
        frames = len(audio) // hop
        f0, voiced = f0_track(events, frames, hop, rate)
        loudness = extract_loudness(audio, rate, hop_length=hop, n_fft=LOUDNESS_N_FFT)[:frames]
        save_audio(root / str(rate) / "wavs" / f"{unit.id}.wav", audio, rate)
        controls = root / str(rate) / "controls" / f"{unit.id}.npz"
        controls.parent.mkdir(parents=True, exist_ok=True)
        tmp = controls.with_name(f".{controls.stem}.tmp.npz")
        np.savez(tmp, f0_hz=f0, voiced=voiced, loudness_db=loudness.astype(np.float32),
                 hop_length=np.int64(hop), sample_rate=np.int64(rate))  # fmt: skip
        os.replace(tmp, controls)
    return {**row, "made": True}


def build_melody_corpus(
    out: str | os.PathLike,
    instruments: list[str | int] | tuple[str | int, ...] = DEFAULT_MELODY_INSTRUMENTS,
    melodies_per_instrument: int = 25,
    melody_seconds: float = 8.0,
    control_hop: int = 128,
    seed: int = 0,
    jobs: int = 1,
    soundfont: str = DEFAULT_SOUNDFONT,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Builds (or finishes, or confirms) the melody corpus in ``out``; returns its marker plus ``made_now``."""
    if melodies_per_instrument < 1 or not melody_seconds >= 1.5 or control_hop < 1:
        raise ValueError(
            "need melodies_per_instrument >= 1, melody_seconds >= 1.5 and control_hop >= 1; got "
            f"{melodies_per_instrument}, {melody_seconds}, {control_hop}"
        )
    check_render_dependencies(soundfont)
    insts = [resolve_instrument(i) for i in instruments]
    hops = {**RATES_AND_HOPS, 16000: control_hop}
    units = [
        MelodyUnit(inst, k, float(melody_seconds)) for inst in insts for k in range(melodies_per_instrument)
    ]
    root = _build.prepare_output_dir(out)
    request = {"kind": "melodies", "instruments": [i.name for i in insts], "per_instrument": melodies_per_instrument,
               "seconds": float(melody_seconds), "hops": {str(k): v for k, v in hops.items()}, "seed": seed,
               "soundfont": str(soundfont)}  # fmt: skip
    ids = [u.id for u in units]
    all_files = [f for i in ids for f in _melody_files(root, i)]
    if _build.is_complete(root, request) and all(f.is_file() for f in all_files):
        return {**(_build.read_marker(root) or {}), "made_now": 0}
    _build.begin_build(root, ("manifest.csv", _build.SPLIT_FILE))
    bar = _build.progress(len(units), "instrument melodies", unit="melody") if show_progress else None
    try:
        rows = _build.run_parallel(
            lambda u: render_melody(u, root, seed, hops, str(soundfont)),
            units, jobs, (lambda _u, _r: bar.update(1)) if bar is not None else None,
        )  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    made = sum(r.pop("made") for r in rows)
    splits = _build.write_splits(root, ids, seed)
    _build.atomic_write_text(root / "manifest.csv", rows_to_csv(rows, MELODY_FIELDS))
    summary = {"num_melodies": len(ids), "split_sizes": {k: len(v) for k, v in splits.items()},
               "hours": round(len(ids) * melody_seconds / 3600, 4), "sample_rates": sorted(hops)}  # fmt: skip
    marker = _build.finish_build(root, request, summary, all_files)
    return {**marker, "made_now": made}
