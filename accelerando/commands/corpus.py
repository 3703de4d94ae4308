"""``accelerando corpus speech|instruments|tts-mels``: build the local training corpora.

Examples::

    accelerando corpus speech --out corpora/speech --hours 1 --voices kal,ked,slt,espeak-en-us --jobs 2
    accelerando corpus instruments --out corpora/instruments --jobs 2
    accelerando corpus instruments --out corpora/inst --only melodies --melodies-per-instrument 50
    accelerando corpus tts-mels --data_dir corpora/speech --out corpora/speech-tts-mels

Both are resumable: rerun the same command after an interruption and it makes only what is missing;
a finished corpus is not redone.
"""

from __future__ import annotations

import argparse
import json

from accelerando.cli import add_command

SPEECH_VOICES_HELP = (
    "comma list of voices (each one speaker): kal, ked (alias kdl), slt (festival); espeak-en-us, "
    "espeak-en-us-f, espeak-en-gb (alias espeak-en), espeak-en-gb-f, espeak-en-rp, espeak-en-scotland"
)


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a comma list of integers; got {text!r}") from exc


def _str_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``corpus`` with the sub-commands ``speech``, ``instruments`` and ``tts-mels``."""
    parser = add_command(subparsers, "corpus", help="build the local speech and instrument corpora")
    sub = parser.add_subparsers(dest="corpus_command", metavar="CORPUS")
    sub.required = True

    speech = add_command(
        sub, "speech", help="LJSpeech-style multi-speaker corpus from festival and espeak-ng voices"
    )
    speech.add_argument("--out", required=True, help="output folder")
    speech.add_argument("--hours", type=float, default=1.0, help="target total duration in hours")
    speech.add_argument(
        "--voices", default="kal,ked,slt,espeak-en-us,espeak-en-us-f,espeak-en-gb", help=SPEECH_VOICES_HELP
    )
    speech.add_argument("--seed", type=int, default=0, help="seed of the sentence selection and the split")
    speech.add_argument("--jobs", type=int, default=1, help="utterances synthesized in parallel")
    speech.add_argument(
        "--text",
        action="append",
        default=None,
        help="plain-text source file (repeatable); default: Debian fortunes",
    )
    speech.set_defaults(func=run_speech)

    inst = add_command(
        sub, "instruments", help="single notes and melodies rendered with fluidsynth (GM soundfont)"
    )
    inst.add_argument("--out", required=True, help="output folder (gets notes/ and melodies/)")
    inst.add_argument("--only", choices=("notes", "melodies"), default=None, help="build only one part")
    inst.add_argument("--seed", type=int, default=0, help="seed of the melodies and the splits")
    inst.add_argument("--jobs", type=int, default=1, help="fluidsynth renders in parallel")
    inst.add_argument("--soundfont", default=None, help="a .sf2 file (default: Debian's FluidR3_GM)")
    inst.add_argument("--programs", type=_str_list, default=None,
                      help="note instruments: comma list of names or GM program numbers (default: 12 across families)")  # fmt: skip
    inst.add_argument("--pitches", type=_int_list, default=None,
                      help="MIDI pitches for every instrument (default: each instrument's range)")  # fmt: skip
    inst.add_argument("--pitch-step", type=int, default=1, help="semitone step through each range")
    inst.add_argument("--velocities", type=_int_list, default=[40, 80, 120], help="MIDI velocities")
    inst.add_argument("--note-seconds", type=float, default=1.5, help="length of each note clip")
    inst.add_argument("--melody-instruments", type=_str_list, default=None,
                      help="default: violin,flute,trumpet,cello,clarinet,alto_sax")  # fmt: skip
    inst.add_argument("--melodies-per-instrument", type=int, default=25)
    inst.add_argument("--melody-seconds", type=float, default=8.0)
    inst.add_argument(
        "--control-hop", type=int, default=128, help="f0/loudness hop at 16 kHz (22050 Hz uses 256)"
    )
    inst.set_defaults(func=run_instruments)

    tts = add_command(
        sub,
        "tts-mels",
        help="a FastPitch's free-running mels of a speech corpus's texts (vocoder training without recordings)",
    )
    tts.add_argument("--data_dir", required=True, help="the speech corpus whose texts are spoken")
    tts.add_argument("--out", required=True, help="output folder (<id>.npy per utterance)")
    tts.add_argument("--model", default="fastpitch-speech", help="a bundled name or a FastPitch folder")
    tts.add_argument("--split", default="train", help="split of split.json (or 'all')")
    tts.set_defaults(func=run_tts_mels)


def run_speech(args: argparse.Namespace) -> int:
    from accelerando.data.speech_corpus import build_speech_corpus

    marker = build_speech_corpus(
        args.out, hours=args.hours, voices=args.voices, seed=args.seed, jobs=args.jobs, text_files=args.text
    )
    print(json.dumps({k: v for k, v in marker.items() if k != "request"}, indent=2))
    return 0


def run_tts_mels(args: argparse.Namespace) -> int:
    from accelerando.tts.fastpitch.gta import main as gta_main

    return gta_main(
        [
            "--free",
            "--model",
            args.model,
            "--data_dir",
            args.data_dir,
            "--out_dir",
            args.out,
            "--split",
            args.split,
        ]
    )


def run_instruments(args: argparse.Namespace) -> int:
    from accelerando.data.instrument_corpus import build_instrument_corpus
    from accelerando.data.midi_render import DEFAULT_SOUNDFONT

    notes: dict = {"velocities": args.velocities, "pitches": args.pitches, "pitch_step": args.pitch_step,
                   "note_seconds": args.note_seconds}  # fmt: skip
    if args.programs:
        notes["instruments"] = args.programs
    melodies: dict = {"melodies_per_instrument": args.melodies_per_instrument,
                      "melody_seconds": args.melody_seconds, "control_hop": args.control_hop}  # fmt: skip
    if args.melody_instruments:
        melodies["instruments"] = args.melody_instruments
    result = build_instrument_corpus(
        args.out,
        parts=(args.only,) if args.only else ("notes", "melodies"),
        seed=args.seed,
        jobs=args.jobs,
        soundfont=args.soundfont or DEFAULT_SOUNDFONT,
        note_options=notes,
        melody_options=melodies,
    )
    print(
        json.dumps({p: {k: v for k, v in m.items() if k != "request"} for p, m in result.items()}, indent=2)
    )
    return 0
