"""``accelerando synth``: timbre transfer, a mono recording re-played by a NEWT instrument model.

Example::

    accelerando synth --instrument violin --input hum.wav --out violin.wav
    accelerando synth --instrument cello --input speech.wav --out cello.wav --model runs/newt-cello/model --fast

The logic lives in :mod:`accelerando.vocoders.newt.transfer`; this module only parses flags, loads the
model and writes the file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# The instruments timbre transfer knows, repeated here (checked against transfer.INSTRUMENT_RANGES in the
# tests) so that building the parser does not import torch.
INSTRUMENTS: tuple[str, ...] = ("violin", "flute", "trumpet", "cello", "clarinet", "alto_sax")


def _octave_shift(value: str) -> int | None:
    if value == "auto":
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--octave-shift takes 'auto' or an integer; got {value!r}"
        ) from None


def resolve_model_dir(instrument: str, model: str | None) -> Path:
    """The checkpoint folder: ``model`` (or its ``model/`` sub-folder, as training writes) or the bundled one."""
    from accelerando.pretrained import PRETRAINED_DIR

    if model is not None:
        from accelerando.pretrained.loading import resolve

        path = Path(model)
        if not path.exists():
            raise FileNotFoundError(f"--model {str(path)!r} does not exist")
        try:
            return resolve(path)  # a model folder, or a training output_dir / checkpoint with model/
        except FileNotFoundError:
            raise FileNotFoundError(
                f"--model {str(path)!r} holds no config.json; pass a NEWT save_pretrained folder"
            ) from None
    path = PRETRAINED_DIR / f"newt-{instrument}"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"no bundled NEWT checkpoint for {instrument!r} (looked in {path}); train one with "
            f"`accelerando train newt --data_dir corpora/instruments --instrument {instrument} "
            f"--output_dir runs/newt-{instrument}` and pass --model runs/newt-{instrument}/model"
        )
    return path


def run(args: argparse.Namespace) -> int:
    from accelerando.vocoders.newt.transfer import check_instrument

    check_instrument(args.instrument)
    source = Path(args.input)
    if not source.is_file():
        raise FileNotFoundError(f"--input {str(source)!r} does not exist or is not a file")
    model_dir = resolve_model_dir(args.instrument, args.model)

    import soundfile as sf
    import torch

    from accelerando.audio import load_audio, save_audio
    from accelerando.vocoders import NEWT
    from accelerando.vocoders.newt.transfer import timbre_transfer

    try:
        file_sr = int(sf.info(str(source)).samplerate)
    except RuntimeError as exc:
        raise ValueError(f"cannot read --input {str(source)!r}: {exc}") from exc
    wav = load_audio(source, sr=file_sr)  # (T,) mono at the file's own rate; transfer resamples once
    model = NEWT.from_pretrained(str(model_dir)).eval()
    if args.fast:
        model = model.to_fast().eval()
    with torch.inference_mode():
        audio, info = timbre_transfer(model, wav, file_sr, args.instrument, args.seed, args.octave_shift)
    peak = float(audio.abs().max()) if audio.numel() else 0.0
    if peak > 0.99:  # keep the file unclipped; a trained model's level is otherwise left as it is
        audio = audio * (0.99 / peak)
    out = save_audio(args.out, audio.numpy(), info["sample_rate"])
    seconds = audio.shape[-1] / info["sample_rate"]
    print(
        f"wrote {out} ({seconds:.2f} s at {info['sample_rate']} Hz; {args.instrument}"
        f"{' (FastNEWT)' if args.fast else ''}, octave shift {info['octave_shift']:+d}, "
        f"voiced {100 * info['voiced_fraction']:.0f}%)",
        file=sys.stderr,
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from accelerando.cli import add_command

    parser = add_command(
        subparsers,
        "synth",
        help="timbre transfer: re-play a mono recording (voice, melody) as an instrument with NEWT",
        description=(
            "Extract f0 (pYIN) and A-weighted loudness from a mono recording, shift it by whole octaves into\n"
            "the instrument's range, match its loudness to the instrument's, and synthesise with NEWT.\n"
            "Writes a 16 kHz wav."
        ),
    )
    parser.add_argument("--instrument", required=True, help=f"one of: {', '.join(INSTRUMENTS)}")
    parser.add_argument("--input", required=True, help="mono (or downmixed) audio file to transfer")
    parser.add_argument("--out", required=True, help="output wav path")
    parser.add_argument(
        "--model", default=None, help="NEWT checkpoint folder; omitted: the bundled newt-<instrument>"
    )
    parser.add_argument("--fast", action="store_true", help="use FastNEWT (waveshapers as lookup tables)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise and initial phases")
    parser.add_argument(
        "--octave-shift",
        type=_octave_shift,
        default="auto",
        metavar="auto|N",
        help="whole octaves to transpose; auto moves the median pitch into the instrument's range",
    )
    parser.set_defaults(func=run)
