"""General MIDI program names (GM 1 sound set, programs 0-127) and name -> program lookup."""

from __future__ import annotations

import difflib
import re

__all__ = ["GM_PROGRAM_NAMES", "program_from_name", "resolve_program"]

GM_PROGRAM_NAMES: tuple[str, ...] = (
    # 0 piano
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano",
    "Electric Piano 1", "Electric Piano 2", "Harpsichord", "Clavinet",
    # 8 chromatic percussion
    "Celesta", "Glockenspiel", "Music Box", "Vibraphone", "Marimba", "Xylophone", "Tubular Bells", "Dulcimer",
    # 16 organ
    "Drawbar Organ", "Percussive Organ", "Rock Organ", "Church Organ", "Reed Organ", "Accordion", "Harmonica",
    "Tango Accordion",
    # 24 guitar
    "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)", "Electric Guitar (jazz)", "Electric Guitar (clean)",
    "Electric Guitar (muted)", "Overdriven Guitar", "Distortion Guitar", "Guitar Harmonics",
    # 32 bass
    "Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)", "Fretless Bass", "Slap Bass 1",
    "Slap Bass 2", "Synth Bass 1", "Synth Bass 2",
    # 40 strings
    "Violin", "Viola", "Cello", "Contrabass", "Tremolo Strings", "Pizzicato Strings", "Orchestral Harp", "Timpani",
    # 48 ensemble
    "String Ensemble 1", "String Ensemble 2", "Synth Strings 1", "Synth Strings 2", "Choir Aahs", "Voice Oohs",
    "Synth Voice", "Orchestra Hit",
    # 56 brass
    "Trumpet", "Trombone", "Tuba", "Muted Trumpet", "French Horn", "Brass Section", "Synth Brass 1", "Synth Brass 2",
    # 64 reed
    "Soprano Sax", "Alto Sax", "Tenor Sax", "Baritone Sax", "Oboe", "English Horn", "Bassoon", "Clarinet",
    # 72 pipe
    "Piccolo", "Flute", "Recorder", "Pan Flute", "Blown Bottle", "Shakuhachi", "Whistle", "Ocarina",
    # 80 synth lead
    "Lead 1 (square)", "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 4 (chiff)", "Lead 5 (charang)",
    "Lead 6 (voice)", "Lead 7 (fifths)", "Lead 8 (bass + lead)",
    # 88 synth pad
    "Pad 1 (new age)", "Pad 2 (warm)", "Pad 3 (polysynth)", "Pad 4 (choir)", "Pad 5 (bowed)", "Pad 6 (metallic)",
    "Pad 7 (halo)", "Pad 8 (sweep)",
    # 96 synth effects
    "FX 1 (rain)", "FX 2 (soundtrack)", "FX 3 (crystal)", "FX 4 (atmosphere)", "FX 5 (brightness)",
    "FX 6 (goblins)", "FX 7 (echoes)", "FX 8 (sci-fi)",
    # 104 ethnic
    "Sitar", "Banjo", "Shamisen", "Koto", "Kalimba", "Bagpipe", "Fiddle", "Shanai",
    # 112 percussive
    "Tinkle Bell", "Agogo", "Steel Drums", "Woodblock", "Taiko Drum", "Melodic Tom", "Synth Drum", "Reverse Cymbal",
    # 120 sound effects
    "Guitar Fret Noise", "Breath Noise", "Seashore", "Bird Tweet", "Telephone Ring", "Helicopter", "Applause",
    "Gunshot",
)  # fmt: skip


def _key(name: str) -> str:
    """Case-, space-, underscore- and punctuation-insensitive form of a name ("acoustic_grand-piano")."""
    return re.sub(r"[^a-z0-9+]+", " ", name.lower()).strip()


_BY_KEY = {_key(name): program for program, name in enumerate(GM_PROGRAM_NAMES)}


def program_from_name(name: str) -> int:
    """GM program number (0-127) of an instrument name, ignoring case, spaces, ``_``, ``-`` and brackets.

    Raises:
        ValueError: unknown name; the message lists the closest GM names.
    """
    key = _key(name)
    if key in _BY_KEY:
        return _BY_KEY[key]
    close = difflib.get_close_matches(key, list(_BY_KEY), n=3, cutoff=0.5)
    hint = ", ".join(repr(GM_PROGRAM_NAMES[_BY_KEY[k]]) for k in close)
    suggestion = f" Did you mean {hint}?" if close else ""
    raise ValueError(
        f"Unknown instrument {name!r}: not a General MIDI program name.{suggestion} "
        "Pass a GM name (see accelerando.generation.GM_PROGRAM_NAMES) or a program number 0-127."
    )


def resolve_program(instrument: int | str, num_programs: int = 128) -> int:
    """Program number of an instrument given as a GM name or an integer in ``[0, num_programs)``."""
    if isinstance(instrument, str):
        program = program_from_name(instrument)
    elif isinstance(instrument, int) and not isinstance(instrument, bool):
        program = instrument
    else:
        raise ValueError(f"instrument must be a GM program name or an int, got {instrument!r}.")
    if not 0 <= program < num_programs:
        raise ValueError(f"program {program} is out of range: accepted values are 0..{num_programs - 1}.")
    return program
