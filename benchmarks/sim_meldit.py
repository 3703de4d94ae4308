"""SIM one-step MelDiT vs its teacher at 1 / 4 / 32 Euler steps, judged by the bundled note classifier.

Same conditions for every sampler: the (program, pitch) labels of the note corpus's test split (``--split
validation`` to choose a checkpoint without touching the test notes; velocity fixed), the same starting noise per
note; the teacher at ``--guidance-scale`` (default 1: none; 3 for a generator distilled from the guided teacher,
``meldit-sim-notes``), the generator without. The teacher runs through its own ``MelDiTPipeline`` (its
scheduler); the distilled generator is a plain MelDiT run by ``MelDiTPipeline`` with ``num_inference_steps=1``
(one network evaluation, exactly how the demo uses it). Reported per sampler: instrument / family / pitch
accuracy, our Fréchet distance in the classifier's embedding to the split's notes (read against the real-vs-real
floor, the other held-out split), and the median seconds per note over batches; speedups are relative to the
distilled generator, measured in the same run, on the same machine. The metrics code is the library's
(``NoteClassifier``, ``note_metrics``, ``load_notes``), as in ``benchmarks/meldit_quality.py``.

    OMP_NUM_THREADS=1 python benchmarks/sim_meldit.py --generator runs/sim-meldit --out /tmp/sim_meldit.json
    OMP_NUM_THREADS=1 python benchmarks/sim_meldit.py --generator runs/meldit-sim-notes --guidance-scale 3 \\
        --teacher-steps 1 4 16
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from accelerando import training as T
from accelerando.generation import MelDiT, MelDiTPipeline, NoteClassifier, note_metrics
from accelerando.generation.train_classifier import build_dataset, load_notes
from accelerando.metrics.report import environment, write_results
from accelerando.pretrained import pretrained_path

METRICS = ("instrument_accuracy", "family_accuracy", "pitch_accuracy", "frechet_distance")


def resolve_generator(path: str | Path) -> tuple[Path, Path, int | None]:
    """``(MelDiT folder, run folder, checkpoint step)`` for ``path``: a MelDiT folder (``run/checkpoint-N/model`` or
    ``run/model``), a checkpoint folder, or a run folder (its ``model/``, else its latest ``checkpoint-N/model``)."""
    path = Path(path)
    if (path / "config.json").is_file():
        match = re.fullmatch(r"checkpoint-(\d+)", path.parent.name)
        if match:
            return path, path.parent.parent, int(match.group(1))
        return path, path.parent, None
    if (path / T.MODEL_SUBFOLDER / "config.json").is_file():
        return resolve_generator(path / T.MODEL_SUBFOLDER)
    checkpoints = T.list_checkpoints(path)
    if not checkpoints:
        raise FileNotFoundError(
            f"--generator {str(path)!r} holds no MelDiT (config.json), model/ or checkpoint-N/."
        )
    return resolve_generator(checkpoints[-1][1] / T.MODEL_SUBFOLDER)


def generate(
    pipe: MelDiTPipeline, labels: dict, steps: int, args: argparse.Namespace, guidance_scale: float = 1.0
) -> tuple[torch.Tensor, list]:
    """Mels ``(N, n_mels, frames)`` for every note, and the seconds per note of each batch."""
    mels, per_note = [], []
    n = len(labels["program"])
    cfg = pipe.transformer.config
    for start in range(0, n, args.batch_size):
        sl = slice(start, start + args.batch_size)
        b = len(labels["program"][sl])
        latents = torch.randn(
            b,
            cfg.in_channels,
            cfg.n_mels,
            cfg.num_frames,
            generator=torch.Generator().manual_seed(args.seed + start),
        )
        started = time.perf_counter()
        out = pipe(
            instrument=labels["program"][sl].tolist(), pitch=labels["pitch"][sl].tolist(),
            velocity=labels["velocity"][sl].tolist(), num_inference_steps=steps, latents=latents, output_type="pt",
            guidance_scale=guidance_scale,
        )  # fmt: skip
        per_note.append((time.perf_counter() - started) / b)
        mels.append(out.mels.float())
    return torch.cat(mels), per_note


def training_summary(run_dir: Path, up_to: int | None = None) -> dict:
    """Steps, seconds per step and the last losses from ``sim_log.jsonl`` and ``sim_config.json`` of a SIM run
    (log lines up to step ``up_to``, the evaluated checkpoint, when given)."""
    summary: dict = {}
    config = run_dir / "sim_config.json"
    if config.is_file():
        summary["sim_config"] = json.loads(config.read_text())
    log = run_dir / "sim_log.jsonl"
    if log.is_file():
        rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        rows = [r for r in rows if up_to is None or r["step"] <= up_to]
        if rows:
            seconds = [r["seconds"] for r in rows]
            summary.update(
                logged_steps=len(rows),
                last_step=rows[-1]["step"],
                median_seconds_per_step=statistics.median(seconds),
                training_seconds=sum(seconds),
                last_100_fake_loss=statistics.fmean(r["fake_loss"] for r in rows[-100:]),
                last_100_generator_loss=statistics.fmean(r["generator_loss"] for r in rows[-100:]),
            )
    return summary


def main(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    teacher = MelDiTPipeline.from_pretrained(args.teacher)
    teacher.set_progress_bar_config(disable=True)
    generator_dir, run_dir, step = resolve_generator(args.generator)
    generator = MelDiTPipeline(MelDiT.from_pretrained(generator_dir), FlowMatchEulerDiscreteScheduler())
    generator.set_progress_bar_config(disable=True)
    clf = NoteClassifier.from_pretrained(args.classifier or pretrained_path("note-classifier")).eval()
    ns = argparse.Namespace(data_dir=args.corpus)
    other = (
        "validation" if args.split == "test" else "test"
    )  # the real-vs-real floor: the other held-out split
    real = load_notes(build_dataset(ns, args.split), clf.config.num_frames)
    reference = clf.embed(real["mel"])
    floor = clf.embed(load_notes(build_dataset(ns, other), clf.config.num_frames)["mel"])
    n = min(args.max_notes, len(real["program"]))
    labels = {
        "program": real["program"][:n],
        "pitch": real["pitch"][:n],
        "velocity": torch.full((n,), args.velocity, dtype=torch.long),
    }
    g = args.guidance_scale
    suffix = "" if g == 1.0 else f"_g{g:g}"
    samplers = [(f"teacher_{s}{suffix}", teacher, s, g) for s in args.teacher_steps] + [
        ("sim_1", generator, 1, 1.0)
    ]
    rows = {}
    for name, pipe, steps, scale in samplers:
        mels, per_note = generate(pipe, labels, steps, args, scale)
        scores = note_metrics(clf, mels, labels["program"], labels["pitch"], reference_embeddings=reference)
        evaluations = steps * (1 if scale == 1.0 else 2)  # guidance: conditional + unconditional rows
        rows[name] = {
            "network_evaluations": evaluations,
            "seconds_per_note": statistics.median(per_note),
            **scores,
        }
        print(name, {k: round(v, 4) for k, v in rows[name].items()}, flush=True)
    sim_time = rows["sim_1"]["seconds_per_note"]
    for row in rows.values():
        row["speedup_of_sim"] = row["seconds_per_note"] / sim_time
    real_scores = note_metrics(
        clf, real["mel"][:n], labels["program"], labels["pitch"], reference_embeddings=floor
    )
    env = environment()
    payload = {
        "suite": "sim-meldit",
        "hardware": {k: v for k, v in env.items() if k not in ("versions", "pretrained")},
        "versions": env["versions"],
        "settings": {
            **vars(args),
            "num_notes": n,
            "generator_folder": str(generator_dir),
            "checkpoint_step": step,
        },
        "distillation": training_summary(run_dir, step),
        "real_notes": real_scores,
        "samplers": rows,
        "note": "Teacher: the bundled meldit-notes checkpoint (see its card for its training steps). Fréchet distance in the "
        "note classifier's embedding (our own metric, not FAD); compare with real_notes.frechet_distance (test vs "
        "validation notes). Chance instrument accuracy is 1/12. speedup_of_sim = seconds per note of that sampler "
        "/ the SIM generator's, medians over batches of the same run.",
    }
    out = Path(args.out)
    write_results(out, payload)
    plot(rows, real_scores, out.with_suffix(".png"))
    return payload


def plot(rows: dict[str, dict], real: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    colors = ["tab:gray" if name.startswith("teacher") else "tab:orange" for name in names]
    fig, axes = plt.subplots(1, len(METRICS) + 1, figsize=(3.3 * (len(METRICS) + 1), 3.4))
    for ax, key in zip(axes, METRICS):
        ax.bar(names, [rows[name][key] for name in names], color=colors)
        if key == "frechet_distance":
            ax.axhline(real[key], color="black", ls="--", label="real floor (val vs test)")
            ax.legend(fontsize=7)
        else:
            ax.set_ylim(0, 1.05)
        ax.set_title(key.replace("_", " "), fontsize=9)
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    ax = axes[-1]
    ax.bar(names, [rows[name]["seconds_per_note"] for name in names], color=colors)
    ax.set(yscale="log", title="seconds per note (log)")
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--teacher", default="accelerando/pretrained/meldit-notes", help="a MelDiTPipeline folder"
    )
    parser.add_argument(
        "--generator", required=True, help="SIM MelDiT folder, run folder or checkpoint folder"
    )
    parser.add_argument("--classifier", default=None, help="NoteClassifier folder (default: the bundled one)")
    parser.add_argument("--corpus", default="corpora/instruments")
    parser.add_argument(
        "--split",
        choices=("test", "validation"),
        default="test",
        help="whose labels (validation: to choose a checkpoint without touching the test notes)",
    )
    parser.add_argument("--teacher-steps", type=int, nargs="+", default=[1, 4, 32])
    parser.add_argument(
        "--guidance-scale",
        type=float,
        default=1.0,
        help="the teacher's classifier-free guidance (e.g. 3 for a generator distilled with --guidance_scale 3)",
    )
    parser.add_argument("--max-notes", type=int, default=90)
    parser.add_argument("--batch-size", type=int, default=15)
    parser.add_argument("--velocity", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/sim_meldit_notes.json")
    parser.add_argument(
        "--training-command", default=None, help="how the generator was trained, for the record"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
