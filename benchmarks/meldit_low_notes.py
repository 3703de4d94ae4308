"""MelDiT's low notes: where the note classifier reads their pitch, and how often a checkpoint renders it.

The pitch misses of ``meldit-notes`` are all below MIDI 41 (87 Hz; see its card). Two measurements:

1. *Where the pitch is in a real mel*: the note classifier's exact pitch accuracy on the real notes of a split,
   below MIDI 41 and from 41 to 59 (as many), after ablating mel bands: the lowest 20 bands smoothed over 2 or 3
   bands, the lowest 8 / 16 / 24 bands flattened (replaced by their mean), or only the lowest 20 bands kept (the
   rest flattened).
2. *Rendered pitch*: each ``--model`` generates the low notes (up to ``--max-notes`` per split, their program,
   pitch and velocity; 16 steps, guidance 3) of the training and the validation split; the classifier's pitch is
   compared with the asked one (exact and per note).

Writes ``benchmarks/results/meldit_low_notes.{json,png}``::

    python benchmarks/meldit_low_notes.py                       # the bundled meldit-notes: about 3 minutes here
    python benchmarks/meldit_low_notes.py --model A --model B   # several checkpoints side by side
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from meldit_quality import load_pipeline

from accelerando.generation import NoteClassifier
from accelerando.generation.train_classifier import build_dataset, load_notes
from accelerando.metrics.report import environment, save_figure, write_results_and_plot
from accelerando.metrics.timing import cpu_model
from accelerando.pretrained import pretrained_path

LOW = 41  # MIDI: below it the independent pYIN check cannot read the pitch (note_check.PYIN_MIN_MIDI)


def ablations(mel: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{name: ablated (N, n_mels, T) log-mels}``."""
    out = {"as is": mel}
    for k in (2, 3):
        low = F.pad(mel[:, :20].unsqueeze(1), (0, 0, k // 2, (k - 1) // 2), mode="replicate")
        smoothed = mel.clone()
        smoothed[:, :20] = F.conv2d(low, torch.ones(1, 1, k, 1) / k).squeeze(1)
        out[f"lowest 20 bands smoothed over {k}"] = smoothed
    for bands in (8, 16, 24):
        flat = mel.clone()
        flat[:, :bands] = flat[:, :bands].mean(1, keepdim=True)
        out[f"lowest {bands} bands flattened"] = flat
    kept = mel.clone()
    kept[:, 20:] = kept[:, 20:].mean(1, keepdim=True)
    out["only the lowest 20 bands kept"] = kept
    return out


def accuracy(clf: NoteClassifier, mel: torch.Tensor, pitch: torch.Tensor) -> tuple[float, list[int]]:
    with torch.no_grad():
        heard = clf.predict(mel)["pitch"]
    return float((heard == pitch).float().mean()), heard.tolist()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", action="append", help="a MelDiTPipeline or MelDiT folder (repeatable)")
    parser.add_argument("--corpus", default="corpora/instruments")
    parser.add_argument("--max-notes", type=int, default=12, help="low notes generated per split")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--guidance-scale", type=float, default=3.0)
    parser.add_argument("--out", default="benchmarks/results/meldit_low_notes")
    args = parser.parse_args(argv)
    models = args.model or [str(pretrained_path("meldit-notes"))]
    torch.set_num_threads(1)
    started = time.perf_counter()
    clf = NoteClassifier.from_pretrained(pretrained_path("note-classifier")).eval()
    splits: dict[str, Any] = {}
    for split in ("train", "validation"):
        dataset = build_dataset(argparse.Namespace(data_dir=args.corpus), split)
        real = load_notes(dataset, clf.config.num_frames)
        pitches = [int(p) for p in real["pitch"]]
        low = [i for i, p in enumerate(pitches) if p < LOW]
        mid = [i for i, p in enumerate(pitches) if LOW <= p < 60][: len(low)]
        where = {}
        for name, index in ((f"below {LOW}", low), (f"{LOW}-59", mid)):
            pitch = real["pitch"][index]
            where[name] = {
                "num_notes": len(index),
                **{k: accuracy(clf, m, pitch)[0] for k, m in ablations(real["mel"][index]).items()},
            }
            print(split, name, {k: round(v, 2) for k, v in where[name].items()}, flush=True)
        chosen = low[: args.max_notes]
        velocities = [int(dataset[i]["velocity"]) for i in chosen]
        rendered = {}
        for model in models:
            pipe = load_pipeline(model)
            pipe.set_progress_bar_config(disable=True)
            asked = real["pitch"][chosen]
            mels = pipe(
                instrument=real["program"][chosen].tolist(), pitch=asked.tolist(), velocity=velocities,
                num_inference_steps=args.steps, guidance_scale=args.guidance_scale,
                generator=torch.Generator().manual_seed(0), output_type="pt",
            ).mels.float()  # fmt: skip
            acc, heard = accuracy(clf, mels, asked)
            rendered[model] = {"pitch_accuracy": acc, "asked": asked.tolist(), "heard": heard}
            print(f"{split} {model}: {acc:.2f} of {len(chosen)} low notes; heard {heard}", flush=True)
        real_acc, _ = accuracy(clf, real["mel"][chosen], real["pitch"][chosen])
        splits[split] = {"band_ablation": where, "real_pitch_accuracy": real_acc, "rendered": rendered}
    payload = {
        "benchmark": "meldit_low_notes",
        "what": "note classifier's exact pitch on real low notes under mel-band ablations, and on the low notes "
        f"each model renders ({args.steps} steps, guidance {args.guidance_scale})",
        "hardware": cpu_model(),
        "threads": 1,
        "models": models,
        "splits": splits,
        "seconds": time.perf_counter() - started,
        "environment": environment(),
    }
    write_results_and_plot(args.out, payload, plot)
    return payload


def plot(payload: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    ax = axes[0]
    first = next(iter(payload["splits"].values()))["band_ablation"][f"below {LOW}"]
    names = [n for n in first if n != "num_notes"]
    width = 0.2
    for k, (split, res) in enumerate(payload["splits"].items()):
        for j, (group, row) in enumerate(res["band_ablation"].items()):
            ax.bar(
                [i + width * (2 * k + j) for i in range(len(names))], [row[n] for n in names], width,
                label=f"{split}, real notes {group} ({row['num_notes']})",
            )  # fmt: skip
    ax.set_xticks([i + 1.5 * width for i in range(len(names))])
    ax.set_xticklabels(names, fontsize=7, rotation=25, ha="right")
    ax.set_ylabel("classifier exact pitch accuracy")
    ax.set_title("where the pitch of a real note is read (mel-band ablations)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    ax = axes[1]
    for split, res in payload["splits"].items():
        for model, row in res["rendered"].items():
            name = Path(model).parent.name if Path(model).name == "model" else Path(model).name
            label = f"{split}: {name} ({row['pitch_accuracy']:.2f})"
            ax.plot(row["asked"], row["heard"], "o", alpha=0.7, label=label)
    lo = min(min(r["asked"]) for s in payload["splits"].values() for r in s["rendered"].values())
    ax.plot([lo - 2, LOW], [lo - 2, LOW], "k--", lw=0.7)
    ax.set_xlabel("asked MIDI pitch")
    ax.set_ylabel("pitch the classifier hears")
    ax.set_title("rendered low notes (16 steps, guidance 3)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.suptitle(payload["hardware"][:80], fontsize=8)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
