"""Does the FasterDiT recipe train PeriodWave faster? Two runs, same seed, data and budget, judged on held-out speech.

The runs are ``accelerando train periodwave`` with the paper's loss (uniform t, MSE on the velocity) and with
FasterDiT's (``--timestep_sampling logit_normal --direction_weight 1``), every other flag equal, e.g.::

    accelerando train periodwave --preset S --segment_frames 32 --train_batch_size 16 --mixed_precision bf16 \\
        --seed 0 --data_dir corpora/speech --checkpointing_steps 100 --max_train_steps 600 \\
        --output_dir runs/pw-pilot/plain
    accelerando train periodwave ...same flags... --timestep_sampling logit_normal --direction_weight 1 \\
        --output_dir runs/pw-pilot/fasterdit

Every kept ``checkpoint-N/model`` of both runs synthesises the first ``--max-items`` held-out test utterances
(midpoint, ``--num-steps`` steps, the same seed per item) and is scored against the recordings (M-STFT, PESQ-wb,
V/UV F1: :func:`accelerando.metrics.vocoder_bench.run_vocoder`), per utterance too, so the paired M-STFT
difference (FasterDiT minus plain, same utterances and noise) comes with its standard error. "Steps to reach the plain recipe's final
M-STFT" is the first FasterDiT checkpoint at or below it. Writes ``benchmarks/results/periodwave_fasterdit.
{json,png}``::

    OMP_NUM_THREADS=1 python benchmarks/periodwave_fasterdit.py --plain runs/pw-pilot/plain \\
        --fasterdit runs/pw-pilot/fasterdit
    OMP_NUM_THREADS=1 python benchmarks/periodwave_fasterdit.py --quick --out /tmp/pwfd.json  # smoke run
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from accelerando.metrics.report import environment, save_figure, write_results
from accelerando.metrics.vocoder_bench import run_vocoder
from accelerando.vocoders import PeriodWave

METRICS = ("mstft", "pesq_wb", "vuv_f1")
LABELS = {"mstft": "M-STFT ↓", "pesq_wb": "PESQ-wb ↑", "vuv_f1": "V/UV F1 ↑"}


def checkpoints(run: Path) -> list[tuple[int, Path]]:
    """``(step, checkpoint-N/model)`` of a run folder, oldest first; a clear error when there is none."""
    found = []
    for folder in run.glob("checkpoint-*"):
        match = re.fullmatch(r"checkpoint-(\d+)", folder.name)
        if match and (folder / "model" / "config.json").is_file():
            found.append((int(match.group(1)), folder / "model"))
    if not found:
        raise FileNotFoundError(
            f"{run} has no checkpoint-N/model folder; train it with `accelerando train periodwave`"
        )
    return sorted(found)


class _Midpoint:
    """A PeriodWave read with one fixed sampler (midpoint, ``num_steps``), through the vocoder contract."""

    def __init__(self, model: PeriodWave, num_steps: int) -> None:
        self.model, self.num_steps = model, num_steps

    def synthesize(self, mel: torch.Tensor, num_steps: int | None = None, generator=None) -> torch.Tensor:
        return self.model.synthesize(
            mel, num_steps=num_steps or self.num_steps, generator=generator, method="midpoint"
        )


def score_run(run: Path, corpus: str, max_items: int, num_steps: int) -> list[dict[str, Any]]:
    """One row per kept checkpoint: the step and the mean / std of each metric over the items."""
    rows = []
    for step, folder in checkpoints(run):
        model = PeriodWave.from_pretrained(folder).eval()
        items = run_vocoder(_Midpoint(model, num_steps), corpus, "test", max_items=max_items, seed=0)
        row: dict[str, Any] = {"step": step}
        for name in METRICS:
            values = np.array([item[name] for item in items], dtype=float)
            row[f"{name}_items"] = values.tolist()  # per utterance, same order in both runs (paired)
            values = values[np.isfinite(values)]
            row[name] = float(values.mean())
            row[f"{name}_std"] = float(values.std(ddof=1)) if values.size > 1 else 0.0
        rows.append(row)
        print(f"{run.name} step {step}: " + ", ".join(f"{n} {row[n]:.3f}" for n in METRICS), flush=True)
    return rows


def paired_mstft_difference(
    plain: list[dict[str, Any]], fasterdit: list[dict[str, Any]]
) -> dict[int, dict[str, float]]:
    """Per common step: the mean and standard error over utterances of FasterDiT's M-STFT minus plain's (the
    runs are judged on the same utterances with the same noise, so the pairing removes the utterance spread)."""
    theirs = {row["step"]: row for row in fasterdit}
    out = {}
    for row in plain:
        if row["step"] in theirs:
            diff = np.array(theirs[row["step"]]["mstft_items"]) - np.array(row["mstft_items"])
            diff = diff[np.isfinite(diff)]
            se = float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else 0.0
            out[row["step"]] = {"mean": float(diff.mean()), "standard_error": se}
    return out


def steps_to_reach(plain: list[dict[str, Any]], fasterdit: list[dict[str, Any]]) -> int | None:
    """The first FasterDiT step whose M-STFT is at or below the plain run's at its last checkpoint."""
    target = plain[-1]["mstft"]
    return next((row["step"] for row in fasterdit if row["mstft"] <= target), None)


def plot(results: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.2 * len(METRICS), 3.4))
    for ax, name in zip(axes, METRICS):
        for label, rows in results.items():
            steps = [r["step"] for r in rows]
            ax.errorbar(
                steps,
                [r[name] for r in rows],
                yerr=[r[f"{name}_std"] for r in rows],
                marker="o",
                capsize=3,
                label=label,
            )
        ax.set_xlabel("training step")
        ax.set_title(LABELS[name])
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("PeriodWave: plain flow matching vs the FasterDiT recipe (held-out test speech)")
    return save_figure(fig, path)


def quick_runs(root: Path) -> tuple[Path, Path]:
    """Two 'runs' of tiny random-weight PeriodWaves (checkpoint-1 and -2 each), for a smoke run."""
    runs = []
    for name in ("plain", "fasterdit"):
        for step in (1, 2):
            torch.manual_seed(step)
            PeriodWave.from_preset("tiny").save_pretrained(root / name / f"checkpoint-{step}" / "model")
        runs.append(root / name)
    return runs[0], runs[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--plain", type=Path, default=Path("runs/pw-pilot/plain"), help="The plain run folder."
    )
    parser.add_argument(
        "--fasterdit", type=Path, default=Path("runs/pw-pilot/fasterdit"), help="The FasterDiT run folder."
    )
    parser.add_argument("--corpus", default="corpora/speech", help="Speech corpus with split.json.")
    parser.add_argument("--max-items", type=int, default=8, help="Held-out test utterances per checkpoint.")
    parser.add_argument(
        "--num-steps", type=int, default=8, help="Midpoint steps (2 network evaluations each)."
    )
    parser.add_argument("--quick", action="store_true", help="Random tiny models, 2 items (smoke run).")
    parser.add_argument("--out", default="benchmarks/results/periodwave_fasterdit.json")
    args = parser.parse_args()
    if args.max_items < 1 or args.num_steps < 1:
        parser.error(f"--max-items and --num-steps must be >= 1; got {args.max_items}, {args.num_steps}")
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as scratch:
        plain_run, fasterdit_run, corpus = args.plain, args.fasterdit, args.corpus
        if args.quick:
            plain_run, fasterdit_run = quick_runs(Path(scratch))
            args.max_items, args.num_steps = 2, 2
        results = {
            "plain (uniform t, MSE)": score_run(plain_run, corpus, args.max_items, args.num_steps),
            "FasterDiT (logit-normal t, + direction)": score_run(
                fasterdit_run, corpus, args.max_items, args.num_steps
            ),
        }
    plain, fasterdit = results.values()
    out = Path(args.out)
    png = plot(results, out.with_suffix(".png"))
    reach = steps_to_reach(plain, fasterdit)
    payload = {
        "benchmark": "periodwave_fasterdit",
        "environment": environment(),
        "settings": {
            "plain_run": str(args.plain),
            "fasterdit_run": str(args.fasterdit),
            "corpus": corpus,
            "split": "test",
            "max_items": args.max_items,
            "sampler": f"midpoint {args.num_steps} steps",
            "seed": "0 + item index",
            "quick": args.quick,
        },
        "results": results,
        "fasterdit_steps_to_plain_final_mstft": reach,
        "paired_mstft_difference_fasterdit_minus_plain": paired_mstft_difference(plain, fasterdit),
        "speedup": plain[-1]["step"] / reach if reach else None,
        "figure": png.name,
    }
    write_results(out, payload)
    print(f"FasterDiT reaches the plain run's final M-STFT at step {reach}; wrote {out} and {png.name}")


if __name__ == "__main__":
    main()
