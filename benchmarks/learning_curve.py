"""Learning curves from training logs: the validation lines a vocoder trainer logs, as a table and a PNG.

Every mel-vocoder trainer logs ``step N validation: {'val_mel_l1': ..., 'val_mstft': ...}`` at each checkpoint
(:func:`accelerando.vocoders.training_utils.run_validation`). This collects those lines from one or more log
files (a resumed run appends to the same log, or writes another), one curve per ``--label``, and draws M-STFT
and mel L1 against the training step, with optional horizontal reference lines (e.g. Griffin-Lim's M-STFT on
the same validation items). Writes the PNG and the points as JSON beside it; model cards carry both::

    python benchmarks/learning_curve.py --log runs/fregrad-speech.log --label fregrad-speech \\
        --out accelerando/pretrained/fregrad-speech/learning_curve.png

A run that went on from a shipped checkpoint (``accelerando recipe NAME --from-bundled``) counts its steps from 0
again and its earlier logs may be gone: ``--offset`` (one per ``--log``) shifts its steps by the shipped
checkpoint's, and ``--previous`` reads the points of an earlier JSON written by this script (the card's), so the
curve keeps its history::

    python benchmarks/learning_curve.py --previous accelerando/pretrained/fregrad-speech/learning_curve.json \\
        --log runs/fregrad-speech.log --offset 2500 --label fregrad-speech \\
        --out accelerando/pretrained/fregrad-speech/learning_curve.png
"""

from __future__ import annotations

import argparse
import ast
import json
import re
from pathlib import Path

LINE = re.compile(r"step (\d+) validation: (\{.*\})")


def read_curve(paths: list[Path]) -> list[tuple[int, dict[str, float]]]:
    """``(step, metrics)`` pairs from the logs, sorted by step; a step logged twice keeps its last value."""
    points: dict[int, dict[str, float]] = {}
    for path in paths:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            match = LINE.search(line)
            if match:
                points[int(match.group(1))] = {
                    k: float(v) for k, v in ast.literal_eval(match.group(2)).items()
                }
    return sorted(points.items())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--log", action="append", required=True, help="a training log (repeatable, per --label)"
    )
    parser.add_argument("--label", action="append", required=True, help="the curve's name, one per --log")
    parser.add_argument(
        "--offset",
        action="append",
        type=int,
        default=None,
        help="steps added to a --log's (one per --log; 0)",
    )
    parser.add_argument(
        "--previous", type=Path, default=None, help="an earlier JSON of this script whose points come first"
    )
    parser.add_argument("--reference", action="append", default=[], help="NAME=M-STFT: a horizontal line")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args(argv)
    if len(args.log) != len(args.label):
        parser.error(f"give one --label per --log; got {len(args.log)} logs and {len(args.label)} labels")
    offsets = args.offset or [0] * len(args.log)
    if len(offsets) != len(args.log):
        parser.error(f"give one --offset per --log; got {len(args.log)} logs and {len(offsets)} offsets")
    previous = {}
    if args.previous is not None:
        if not args.previous.is_file():
            parser.error(f"--previous {args.previous}: no such file")
        previous = json.loads(args.previous.read_text()).get("curves", {})

    from accelerando.metrics.report import _pyplot, save_figure, write_results

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    curves = {}
    for log, label, offset in zip(args.log, args.label, offsets):
        curve = [(step + offset, m) for step, m in read_curve([Path(p) for p in log.split(",")])]
        if not curve:
            raise SystemExit(f"{log}: no 'step N validation: {{...}}' lines")
        earlier = {p["step"]: {k: v for k, v in p.items() if k != "step"} for p in previous.get(label, [])}
        curve = sorted({**earlier, **dict(curve)}.items())
        steps = [s for s, _ in curve]
        curves[label] = [{"step": s, **m} for s, m in curve]
        print(f"{label}:\n| step | val M-STFT | val mel L1 |\n| --- | --- | --- |")
        for step, m in curve:
            print(
                f"| {step} | {m.get('val_mstft', float('nan')):.3f} | {m.get('val_mel_l1', float('nan')):.3f} |"
            )
        for ax, key in zip(axes, ("val_mstft", "val_mel_l1")):
            ax.plot(steps, [m.get(key, float("nan")) for _, m in curve], marker="o", ms=3, label=label)
    for ref in args.reference:
        name, value = ref.split("=")
        axes[0].axhline(float(value), ls="--", color="gray", lw=1)
        axes[0].annotate(name, (axes[0].get_xlim()[0], float(value)), fontsize=8, va="bottom")
    for ax, title in zip(axes, ("validation M-STFT (lower is better)", "validation mel L1")):
        ax.set_xlabel("training step")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, args.out)
    write_results(
        args.out.with_suffix(".json"),
        {"benchmark": "learning_curve", "logs": args.log, "offsets": offsets, "curves": curves},
    )
    print(f"wrote {args.out} and its .json")


if __name__ == "__main__":
    main()
