"""Batch synthesis of a text file, one line an utterance, split across processes (or GPUs) by accelerate.

Each process takes its share of the lines with accelerate's ``split_between_processes`` and writes
``out_dir/00001.wav`` ... (numbered by line, 1-based; temp file, then rename), so the run can be repeated
and only missing files are made (``--overwrite`` to redo them). The main process writes
``out_dir/manifest.jsonl`` (one row a line: file, text, voice, seconds) once every process is done.

Example::

    accelerate launch --num_processes 2 -m accelerando.tts.batch  # 2 GPUs; on CPUs: --multi_gpu too --texts lines.txt --out_dir speech/
    python -m accelerando.tts.batch --texts lines.txt --out_dir speech/ --voice slt   # one process
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "parse_args", "read_lines", "synthesize_lines"]


def read_lines(path: str | Path) -> list[tuple[int, str]]:
    """``[(line number (1-based), text), ...]`` of the non-empty lines of a UTF-8 text file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"--texts {str(path)!r} is not a file; give a UTF-8 text file, one line an utterance."
        )
    lines = [(i, line.strip()) for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)]
    lines = [(i, text) for i, text in lines if text]
    if not lines:
        raise ValueError(f"--texts {str(path)!r} has no non-empty line to speak.")
    return lines


def synthesize_lines(
    engine, lines: Sequence[tuple[int, str]], out_dir: str | Path, voice: str | None = None,
    speed: float = 1.0, overwrite: bool = False, progress: bool = True,
) -> list[dict]:  # fmt: skip
    """Speaks each ``(number, text)`` into ``out_dir/NNNNN.wav``; returns one manifest row per line."""
    import soundfile as sf
    from tqdm.auto import tqdm

    from accelerando.fileio import atomic_path

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for number, text in tqdm(lines, desc="speaking", unit="line", disable=not progress):
        target = out_dir / f"{number:05d}.wav"
        if overwrite or not target.is_file():
            audio = engine.synthesize(text, voice=voice, speed=speed)
            with atomic_path(target, suffix=".wav") as tmp:
                sf.write(tmp, audio, engine.sample_rate, subtype="PCM_16")
        seconds = sf.info(target).duration
        rows.append({"file": target.name, "line": number, "text": text, "voice": voice or engine.default_voice,
                     "seconds": round(seconds, 3)})  # fmt: skip
    return rows


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m accelerando.tts.batch",
        description="Speak every line of a text file into numbered WAV files, across accelerate processes.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--texts", required=True, help="UTF-8 text file, one utterance a line")
    parser.add_argument("--out_dir", required=True, help="folder for 00001.wav ... and manifest.jsonl")
    parser.add_argument("--model", default=None, help="Incremental FastPitch folder (default: bundled)")
    parser.add_argument("--vocoder", default=None, help="vocoder name or folder (default: the measured one)")
    parser.add_argument("--voice", default=None, help="voice name (default: the best-measured voice)")
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--overwrite", action="store_true", help="redo files that already exist")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from accelerate import PartialState

    from accelerando.fileio import atomic_write_text
    from accelerando.training import launched_without_devices
    from accelerando.tts.engine import StreamingSynthesizer

    args = parse_args(argv)
    lines = read_lines(args.texts)
    engine = StreamingSynthesizer.from_pretrained(args.model, vocoder=args.vocoder)
    engine.prepare("Check.", args.voice, args.speed)  # a bad voice or speed fails before any work
    state = PartialState(cpu=launched_without_devices())
    with state.split_between_processes(lines) as mine:
        rows = synthesize_lines(engine, mine, args.out_dir, args.voice, args.speed, args.overwrite,
                                progress=state.is_local_main_process)  # fmt: skip
    out_dir = Path(args.out_dir)
    (out_dir / f".rows-{state.process_index}.json").write_text(json.dumps(rows))
    state.wait_for_everyone()
    if state.is_main_process:
        parts = sorted(out_dir.glob(".rows-*.json"))
        every = sorted((r for p in parts for r in json.loads(p.read_text())), key=lambda r: r["line"])
        atomic_write_text(out_dir / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in every))
        for p in parts:
            p.unlink()
        print(f"wrote {len(every)} files to {out_dir} ({state.num_processes} processes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
