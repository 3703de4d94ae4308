"""``accelerando edit``: change a recorded note's instrument with RF-Edit, keeping its pitch, timing and dynamics.

The note is read at the mel front end's sample rate, turned into a log-mel, inverted to noise with RF-Solver
under its source condition while the attention values of the late MelDiT blocks are stored, and regenerated under
the target instrument with those values shared for the first steps (Wang et al., arXiv 2411.04746). The output has
the input's length. The edit itself (and the pYIN pitch estimate) is :mod:`accelerando.accelerate_dit.note_edit`,
shared with the demo's Edit tab; this module parses flags, loads the pipeline and writes the file.

Example::

    accelerando edit --input note.wav --to-instrument flute --out edited.wav
    accelerando edit --input note.wav --from-instrument violin --pitch 67 --to-instrument "french horn" \\
        --out horn.wav --steps 24 --inject-steps 3 --model out/meldit-pipe
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_MODEL = "meldit-notes"  # the bundled checkpoint under accelerando/pretrained/, once it exists


def _parse_blocks(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(
            f"--inject-blocks must be comma-separated block indices like '4,5,6', got {text!r}."
        ) from None


def _instrument(name: str) -> int | str:
    return int(name) if name.strip().isdigit() else name


def _load_pipeline(model: str | None):
    from accelerando.generation import MelDiTPipeline

    if model is None:
        from accelerando.pretrained import PRETRAINED_DIR

        path = PRETRAINED_DIR / DEFAULT_MODEL
        if not (path / "model_index.json").is_file():
            raise FileNotFoundError(
                f"The bundled MelDiT checkpoint '{DEFAULT_MODEL}' is not installed ({path} has no model_index.json); "
                "pass --model PATH to a MelDiTPipeline folder written by save_pretrained."
            )
    else:
        path = Path(model)
        if not (path / "model_index.json").is_file():
            raise FileNotFoundError(
                f"--model {model} is not a MelDiTPipeline folder (no model_index.json); "
                "pass a folder written by MelDiTPipeline.save_pretrained."
            )
    from accelerando.pretrained.loading import load

    return load(path, expect=(MelDiTPipeline.__name__,))


def run(args: argparse.Namespace) -> int:
    from accelerando.accelerate_dit.note_edit import PitchNotFoundError, edit_note_audio, note_mel_config
    from accelerando.accelerate_dit.rf_solver import RFEditConfig
    from accelerando.audio import load_audio, save_audio
    from accelerando.generation.instruments import resolve_program

    target = _instrument(args.to_instrument)
    resolve_program(target)  # a clear error for an unknown name before anything heavy loads
    source = _instrument(args.from_instrument) if args.from_instrument is not None else None
    if source is not None:
        resolve_program(source)
    blocks = _parse_blocks(args.inject_blocks)
    if not Path(args.input).is_file():
        raise FileNotFoundError(f"--input {args.input} does not exist.")

    pipe = _load_pipeline(args.model)
    wav = load_audio(args.input, sr=note_mel_config(pipe).sample_rate)  # (T,)
    config = RFEditConfig(
        num_steps=args.steps, inject_steps=args.inject_steps, inject_blocks=blocks,
        shift=args.shift, guidance_scale=args.guidance_scale,
    )  # fmt: skip
    try:
        edit = edit_note_audio(
            pipe, wav, target, source, pitch=args.pitch, velocity=args.velocity, config=config, seed=args.seed
        )
    except PitchNotFoundError as err:
        raise PitchNotFoundError(f"{err} Pass --pitch MIDI_NUMBER.") from None
    save_audio(args.out, edit.audio, edit.sample_rate)
    print(
        f"wrote {args.out}: {len(edit.audio) / edit.sample_rate:.2f} s, "
        f"{'unconditional' if source is None else source} -> {target}, pitch {edit.pitch}"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from accelerando.cli import add_command

    parser = add_command(
        subparsers,
        "edit",
        help="change a note's instrument with RF-Edit (keeps pitch, timing and dynamics)",
        description=__doc__,
    )
    parser.add_argument("--input", required=True, help="the note to edit (wav, flac or ogg)")
    parser.add_argument("--to-instrument", required=True, help="target GM instrument name or program 0-127")
    parser.add_argument("--out", required=True, help="output audio path (.wav, .flac or .ogg)")
    parser.add_argument(
        "--from-instrument", default=None, help="the input's GM instrument; omitted: invert unconditionally"
    )
    parser.add_argument(
        "--pitch", type=int, default=None, help="MIDI pitch of the note; omitted: estimated (pYIN)"
    )
    parser.add_argument("--velocity", type=int, default=100, help="MIDI velocity of the note")
    parser.add_argument(
        "--model", default=None, help=f"MelDiTPipeline folder; omitted: the bundled '{DEFAULT_MODEL}'"
    )
    parser.add_argument("--steps", type=int, default=16, help="RF-Solver steps (2 model calls each)")
    parser.add_argument(
        "--inject-steps", type=int, default=2, help="first steps that share the source's values"
    )
    parser.add_argument(
        "--inject-blocks",
        default=None,
        help="comma-separated block indices to share; omitted: the second half",
    )
    parser.add_argument("--shift", type=float, default=3.0, help="schedule shift (1 = uniform sigmas)")
    parser.add_argument(
        "--guidance-scale", type=float, default=1.0, help="classifier-free guidance of the edit"
    )
    parser.add_argument("--seed", type=int, default=0, help="torch seed (the edit itself is deterministic)")
    parser.set_defaults(func=run)
