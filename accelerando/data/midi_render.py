"""General MIDI instruments, MIDI files written with ``mido``, and rendering with the fluidsynth CLI.

Time in the MIDI files is exact: 480 ticks per beat at 120 bpm, i.e. ``TICKS_PER_SECOND = 960``.
Events are given in seconds and rounded to ticks once (:func:`to_tick`); every track derived from
the MIDI (the melodies' f0) uses the same rounded times.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from accelerando.data import _build

DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
SOUNDFONT_PACKAGE = "fluid-soundfont-gm"
TICKS_PER_BEAT = 480
TEMPO_US = 500_000  # 120 bpm
TICKS_PER_SECOND = TICKS_PER_BEAT * 1_000_000 // TEMPO_US  # 960
BEND_RANGE = 12  # semitones of full pitch-wheel deflection, set with RPN 0 at the start of each file
RENDER_GAIN = 0.8  # fluidsynth master gain: loud GM patches at velocity 127 stay below full scale


@dataclass(frozen=True)
class Instrument:
    """A General MIDI program (0-based) with its family and the MIDI pitch range it plays well."""

    name: str
    program: int
    family: str
    low: int
    high: int


GM_INSTRUMENTS: dict[str, Instrument] = {
    i.name: i
    for i in (
        Instrument("acoustic_grand_piano", 0, "keyboard", 33, 96),
        Instrument("vibraphone", 11, "mallet", 53, 89),
        Instrument("church_organ", 19, "organ", 36, 96),
        Instrument("acoustic_guitar_nylon", 24, "guitar", 40, 84),
        Instrument("electric_bass_finger", 33, "bass", 28, 60),
        Instrument("violin", 40, "string", 55, 96),
        Instrument("cello", 42, "string", 36, 76),
        Instrument("string_ensemble", 48, "string", 36, 96),
        Instrument("trumpet", 56, "brass", 54, 84),
        Instrument("french_horn", 60, "brass", 41, 77),
        Instrument("alto_sax", 65, "reed", 49, 81),
        Instrument("oboe", 68, "reed", 58, 91),
        Instrument("clarinet", 71, "reed", 50, 91),
        Instrument("flute", 73, "flute", 60, 96),
        Instrument("lead_square", 80, "synth_lead", 36, 96),
    )
}
BY_PROGRAM: dict[int, Instrument] = {i.program: i for i in GM_INSTRUMENTS.values()}


def resolve_instrument(key: str | int) -> Instrument:
    """An instrument by name (``"violin"``) or GM program number (0-127; unknown ones get the full range)."""
    if isinstance(key, str) and key.strip().isdigit():
        key = int(key)
    if isinstance(key, int):
        if not 0 <= key <= 127:
            raise ValueError(f"GM program numbers are 0-127; got {key}")
        return BY_PROGRAM.get(key, Instrument(f"program_{key:03d}", key, "other", 36, 96))
    name = key.strip().lower()
    if name not in GM_INSTRUMENTS:
        raise ValueError(
            f"Unknown instrument {key!r}; use a GM program number 0-127 or one of {', '.join(GM_INSTRUMENTS)}"
        )
    return GM_INSTRUMENTS[name]


def check_render_dependencies(soundfont: str | os.PathLike = DEFAULT_SOUNDFONT) -> None:
    """Raises a clear error when fluidsynth or the soundfont is missing."""
    files = {str(soundfont): SOUNDFONT_PACKAGE} if str(soundfont) == DEFAULT_SOUNDFONT else {}
    _build.check_system_dependencies({"fluidsynth": "fluidsynth"}, files)
    if not Path(soundfont).is_file():
        raise FileNotFoundError(
            f"Soundfont {str(soundfont)!r} does not exist; pass an existing .sf2 file to --soundfont"
        )


def to_tick(seconds: float) -> int:
    """Seconds -> MIDI ticks (rounded)."""
    return int(round(seconds * TICKS_PER_SECOND))


def bend_value(semitones: float) -> int:
    """Pitch-wheel value (-8192..8191) for a bend of ``semitones`` with :data:`BEND_RANGE`."""
    return max(-8192, min(8191, int(round(semitones / BEND_RANGE * 8192))))


def bend_semitones(value: int) -> float:
    """The bend in semitones that a pitch-wheel ``value`` produces (the inverse of :func:`bend_value`)."""
    return value / 8192 * BEND_RANGE


def write_midi(path: Path, program: int, events: list[tuple[int, int, str, int, int]]) -> None:
    """Writes a one-channel MIDI file.

    Args:
        events: ``(tick, order, kind, a, b)`` with kind ``note_on`` (a=note, b=velocity),
            ``note_off`` (a=note) or ``pitchwheel`` (a=value); sorted by (tick, order).
    """
    import mido

    mid = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=TEMPO_US, time=0))
    # RPN 0 (pitch-bend sensitivity) = BEND_RANGE semitones, then the null RPN.
    for control, value in ((101, 0), (100, 0), (6, BEND_RANGE), (38, 0), (101, 127), (100, 127)):
        track.append(mido.Message("control_change", control=control, value=value, time=0))
    track.append(mido.Message("program_change", program=program, time=0))
    last = 0
    for tick, _, kind, a, b in sorted(events, key=lambda e: (e[0], e[1])):
        delta, last = tick - last, tick
        if kind == "note_on":
            track.append(mido.Message("note_on", note=a, velocity=b, time=delta))
        elif kind == "note_off":
            track.append(mido.Message("note_off", note=a, velocity=0, time=delta))
        elif kind == "pitchwheel":
            track.append(mido.Message("pitchwheel", pitch=a, time=delta))
        else:
            raise ValueError(f"unknown MIDI event kind {kind!r}")
    track.append(mido.MetaMessage("end_of_track", time=TICKS_PER_SECOND // 2))
    tmp = path.with_name(f".{path.name}.tmp")
    mid.save(str(tmp))
    os.replace(tmp, path)


def render_midi(midi_path: Path, sample_rate: int, soundfont: str | os.PathLike = DEFAULT_SOUNDFONT):
    """Renders ``midi_path`` with fluidsynth (reverb and chorus off); returns mono float32 ``(T,)`` numpy."""
    import tempfile

    import numpy as np
    import soundfile as sf

    with tempfile.TemporaryDirectory(prefix="accelerando-fluid-") as tmp:
        wav_path = Path(tmp) / "render.wav"
        _build.run_tool(
            [
                "fluidsynth",
                "-ni",
                "-q",
                "-R",
                "0",
                "-C",
                "0",
                "-g",
                str(RENDER_GAIN),
                "-r",
                str(sample_rate),
                "-F",
                str(wav_path),
                "-T",
                "wav",
                str(soundfont),
                str(midi_path),
            ],
            f"fluidsynth rendering {midi_path.name}",
        )
        if (
            _build.valid_audio_file(wav_path, sample_rate, channels=2) is None
            and _build.valid_audio_file(wav_path, sample_rate, channels=1) is None
        ):
            raise RuntimeError(
                f"fluidsynth wrote no audio for {midi_path.name}; is {str(soundfont)!r} a valid soundfont?"
            )
        data, _ = sf.read(str(wav_path), dtype="float32", always_2d=True)  # (T, C)
    return np.ascontiguousarray(data.mean(axis=1))  # (T,)
