"""``accelerando edit``: change a recorded note's instrument with RF-Edit, keeping its pitch, timing and dynamics.

The note is read at the mel front end's sample rate, turned into a log-mel, inverted to noise with RF-Solver
under its source condition while the attention values of the late MelDiT blocks are stored, and regenerated under
the target instrument with those values shared for the first steps (Wang et al., arXiv 2411.04746). The output has
the input's length.

Example::

    accelerando edit --input note.wav --to-instrument flute --out edited.wav
    accelerando edit --input note.wav --from-instrument violin --pitch 67 --to-instrument "french horn" \\
        --out horn.wav --steps 24 --inject-steps 3 --model out/meldit-pipe
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

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


F0_MIN_HZ = (
    27.5  # A0, below the lowest note of the corpus (E1, 41 Hz, on the bass); pYIN's default 65 Hz is C2
)
F0_MAX_HZ = (
    4186.0  # C8; pYIN's default 2093 Hz (C7) is the corpus's highest note, which it then reads an octave low
)
F0_FRAME_LENGTH = 2048  # two periods of F0_MIN_HZ at 22050 Hz fit in one pYIN frame


def estimate_f0_hz(
    wav: Any, sample_rate: int, hop_length: int = 256, fmin: float = F0_MIN_HZ, fmax: float = F0_MAX_HZ
) -> float:
    """Median pYIN f0 in Hz over the voiced frames of a mono note ``(T,)``; ``nan`` when no frame is voiced.

    The default search, 27.5 Hz (A0) to 4186 Hz (C8) with a 2048-sample frame, finds the bass notes below C2 and
    the notes at C7 that pYIN's default range (65-2093 Hz) clamps to its edges. pYIN's cost grows with the square
    of the range: narrow ``fmin`` / ``fmax`` when the pitch is roughly known.
    """
    import numpy as np

    from accelerando.audio import extract_f0

    if not 0 < fmin < fmax:
        raise ValueError(f"Need 0 < fmin < fmax for the f0 search, got fmin={fmin}, fmax={fmax}.")
    f0, voiced, _ = extract_f0(
        wav, sample_rate, hop_length=hop_length, fmin=fmin, fmax=fmax, frame_length=F0_FRAME_LENGTH
    )
    f0 = np.asarray(f0)[np.asarray(voiced, dtype=bool)]
    f0 = f0[np.isfinite(f0) & (f0 > 0)]
    return float(np.median(f0)) if f0.size else float("nan")


def _estimate_pitch(wav, cfg) -> int:
    import math

    f0 = estimate_f0_hz(wav, cfg.sample_rate, cfg.hop_length)
    if math.isnan(f0):
        raise ValueError("Could not find a pitch in the input (no voiced frames); pass --pitch MIDI_NUMBER.")
    return int(round(69 + 12 * math.log2(f0 / 440.0)))


def run(args: argparse.Namespace) -> int:
    import torch
    import torch.nn.functional as F

    from accelerando.accelerate_dit.rf_solver import RFEditConfig, rf_edit
    from accelerando.audio import MelConfig, load_audio, mel_spectrogram, save_audio
    from accelerando.generation.instruments import resolve_program

    target = _instrument(args.to_instrument)
    resolve_program(target)  # a clear error for an unknown name before anything heavy loads
    source = _instrument(args.from_instrument) if args.from_instrument is not None else None
    if source is not None:
        resolve_program(source)
    blocks = _parse_blocks(args.inject_blocks)
    if not Path(args.input).is_file():
        raise FileNotFoundError(f"--input {args.input} does not exist.")
    torch.manual_seed(args.seed)

    pipe = _load_pipeline(args.model)
    transformer = pipe.transformer
    cfg = MelConfig(n_mels=transformer.config.n_mels)
    wav = load_audio(args.input, sr=cfg.sample_rate)  # (T,)
    num_samples = wav.shape[-1]
    if num_samples < cfg.n_fft:
        wav = F.pad(wav, (0, cfg.n_fft - num_samples))
    mel = mel_spectrogram(wav, cfg)  # (1, n_mels, frames)
    frames = mel.shape[-1]
    width = transformer.patch_size[1]
    pad = (-frames) % width
    if pad:  # repeat the last frame up to a multiple of the patch width; trimmed again below
        mel = torch.cat([mel, mel[..., -1:].expand(-1, -1, pad)], dim=-1)

    pitch = args.pitch if args.pitch is not None else _estimate_pitch(wav[:num_samples].numpy(), cfg)
    target_condition = {"instrument": target, "pitch": pitch, "velocity": args.velocity}
    source_condition = None if source is None else {**target_condition, "instrument": source}
    config = RFEditConfig(
        num_steps=args.steps, inject_steps=args.inject_steps, inject_blocks=blocks,
        shift=args.shift, guidance_scale=args.guidance_scale,
    )  # fmt: skip
    out = rf_edit(pipe, mel, source_condition, target_condition, config=config)

    if out.audios is not None:
        audio = out.audios[0].float()
    else:
        from accelerando.vocoders.griffin_lim import GriffinLim

        audio = torch.as_tensor(GriffinLim(cfg).synthesize(out.mels[..., :frames].cpu())[0]).float()
    audio = audio.flatten()[:num_samples]
    audio = F.pad(audio, (0, num_samples - audio.shape[0]))
    peak = audio.abs().max()
    if peak > 1:
        audio = audio / peak
    save_audio(args.out, audio.cpu(), cfg.sample_rate)
    print(
        f"wrote {args.out}: {num_samples / cfg.sample_rate:.2f} s, "
        f"{'unconditional' if source is None else source} -> {target}, pitch {pitch}"
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
