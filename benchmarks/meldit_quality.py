"""MelDiT quality at several step counts, judged by the bundled note classifier.

For the labels of the corpus's test notes (program, pitch, velocity), the pipeline generates one note each at
every step count; the classifier reports instrument accuracy (recognised == asked), pitch accuracy (exact and
within a semitone) and our Fréchet distance to the test notes' embeddings, read against the real-vs-real floor
(test vs validation notes). Also the time per note. Writes JSON + PNG.

    python benchmarks/meldit_quality.py --model accelerando/pretrained/meldit-notes \\
        --corpus corpora/instruments --steps 8 16 32 --max-notes 45
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from accelerando.generation import MelDiTPipeline, NoteClassifier, note_metrics
from accelerando.generation.train_classifier import build_dataset, load_notes
from accelerando.metrics.report import environment, write_results
from accelerando.pretrained import pretrained_path


def main(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    pipe = MelDiTPipeline.from_pretrained(args.model)
    clf = NoteClassifier.from_pretrained(args.classifier or pretrained_path("note-classifier")).eval()
    ns = argparse.Namespace(data_dir=args.corpus)
    real = load_notes(build_dataset(ns, "test"), clf.config.num_frames)
    reference = clf.embed(real["mel"])
    floor = clf.embed(load_notes(build_dataset(ns, "validation"), clf.config.num_frames)["mel"])
    n = min(args.max_notes, len(real["program"]))
    programs, pitches = real["program"][:n], real["pitch"][:n]
    velocities = torch.full((n,), args.velocity, dtype=torch.long)
    rows = []
    for steps in args.steps:
        started = time.perf_counter()
        mels = []
        for start in range(0, n, args.batch_size):
            sl = slice(start, start + args.batch_size)
            out = pipe(
                instrument=programs[sl].tolist(), pitch=pitches[sl].tolist(), velocity=velocities[sl].tolist(),
                num_inference_steps=steps, guidance_scale=args.guidance_scale,
                generator=torch.Generator().manual_seed(args.seed + start), output_type="pt",
            )  # fmt: skip
            mels.append(out.mels.float())
        seconds = time.perf_counter() - started
        scores = note_metrics(clf, torch.cat(mels), programs, pitches, reference_embeddings=reference)
        rows.append({"steps": steps, "seconds_per_note": seconds / n, **scores})
        print(rows[-1], flush=True)
    real_scores = note_metrics(clf, real["mel"][:n], programs, pitches, reference_embeddings=floor)
    env = environment()
    payload = {
        "suite": "meldit-quality",
        "hardware": {k: v for k, v in env.items() if k not in ("versions", "pretrained")},
        "versions": env["versions"],
        "settings": {**vars(args), "num_notes": n},
        "real_notes": real_scores,
        "generated": rows,
        "note": "Fréchet distance in the note classifier's embedding (our own metric, not FAD); compare with "
        "real_notes.frechet_distance (test vs validation notes), sets of similar size.",
    }
    out = Path(args.out)
    write_results(out, payload)
    _plot(rows, real_scores, out.with_suffix(".png"))
    return payload


def _plot(rows: list[dict], real: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["steps"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, label in (("instrument_accuracy", "instrument"), ("pitch_accuracy", "pitch (exact)")):
        axes[0].plot(steps, [r[key] for r in rows], marker="o", label=label)
    axes[0].set(xlabel="sampling steps", ylabel="accuracy", ylim=(0, 1.05), title="asked vs recognised")
    axes[0].legend()
    axes[1].plot(steps, [r["frechet_distance"] for r in rows], marker="o", label="generated vs test")
    axes[1].axhline(real["frechet_distance"], color="gray", ls="--", label="real floor (validation vs test)")
    axes[1].set(xlabel="sampling steps", ylabel="Fréchet distance", title="classifier embedding")
    axes[1].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a MelDiTPipeline folder")
    parser.add_argument("--classifier", default=None, help="NoteClassifier folder (default: the bundled one)")
    parser.add_argument("--corpus", default="corpora/instruments")
    parser.add_argument("--steps", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--max-notes", type=int, default=45)
    parser.add_argument("--batch-size", type=int, default=15)
    parser.add_argument("--velocity", type=int, default=80)
    parser.add_argument("--guidance-scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/meldit_quality.json")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
