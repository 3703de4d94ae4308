"""Where to put 8 refreshes of a 32-step MelDiT generation: a coordinate search over the refresh steps.

The output-level cache (``FORAConfig(level="output", forecast="taylor1")``) runs the model only at the listed steps and
forecasts the rest. Which steps to list matters more than anything else at 8 model calls (a 4x call bound): the
early, high-noise steps change fastest. This script searches the list, on notes that ``dit_caching.py`` never uses:

1. *search notes*: 8 validation-style notes (the checkpoint's trained programs in turn, pitches 50-81, seeds 500+;
   guidance 1 unless ``--guidance-scale``: the best steps depend on it);
   the plain 32-step output is the reference (PSNR of the log-mel, as in ``dit_caching.py``);
2. start from a front-loaded list; move one refresh step by one (earlier or later) at a time and keep a move when it
   gains more than 0.05 dB; stop when no move gains (or after ``--rounds``);
3. *check notes*: 12 other notes (other programs, pitches 47-83, seeds 900+) score the found list, the start and the
   uniform ``interval=4`` list, each with the velocity and the noise-space forecast.

``dit_caching.py`` then times the found list (``FRONT8``) on its own notes. Writes
``benchmarks/results/dit_caching_schedule.{json,png}``::

    python benchmarks/dit_caching_schedule.py            # 40-60 minutes on one thread here
    python benchmarks/dit_caching_schedule.py --quick    # smoke run: 8 steps, 2 notes, one round
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Any

import torch
from dit_caching import scale_steps
from dit_plugins_quality import NoteGenerator, fidelity

from accelerando.accelerate_dit import FORAConfig, apply_fora
from accelerando.generation import MelDiTPipeline
from accelerando.metrics.report import environment, save_figure, write_results_and_plot
from accelerando.metrics.timing import cpu_model
from accelerando.pretrained import pretrained_path

START = (0, 1, 3, 5, 8, 12, 18, 25)


def note_sets(programs: list[int], quick: bool) -> dict[str, list[tuple[list[int], list[int], int]]]:
    """``{name: [(programs, pitches, seed) per batch of 4]}``: the search notes and the check notes."""
    n = len(programs)
    search = [
        ([programs[(3 * i + 1) % n] for i in range(4 * b, 4 * b + 4)], [50 + (5 * i) % 32 for i in range(4 * b, 4 * b + 4)], 500 + b)
        for b in range(2)
    ]  # fmt: skip
    check = [
        ([programs[(5 * i + 2) % n] for i in range(4 * b, 4 * b + 4)], [47 + (7 * i) % 37 for i in range(4 * b, 4 * b + 4)], 900 + b)
        for b in range(3)
    ]  # fmt: skip
    if quick:
        search, check = (
            [(p[:2], q[:2], s) for p, q, s in search[:1]],
            [(p[:2], q[:2], s) for p, q, s in check[:1]],
        )
    return {"search": search, "check": check}


class Scorer:
    """PSNR of a cached config against the plain output of one note set (the plain output is computed once)."""

    def __init__(self, pipe: MelDiTPipeline, args: argparse.Namespace, notes: list) -> None:
        self.pipe, self.args, self.notes = pipe, args, notes
        self.base = self.generate(None)

    def generate(self, config: FORAConfig | None) -> torch.Tensor:
        model = copy.deepcopy(self.pipe.transformer)
        if config is not None:
            apply_fora(model, config)
        gen = NoteGenerator(MelDiTPipeline(model, self.pipe.scheduler), self.args, False)
        with torch.inference_mode():
            return torch.cat([gen(p, q, seed=seed) for p, q, seed in self.notes])

    def __call__(self, steps: list[int], space: str) -> float:
        config = FORAConfig(
            level="output",
            forecast="taylor1",
            forecast_space=space,
            refresh_steps=steps,
            interval=self.args.steps,
        )
        return fidelity(self.generate(config), self.base)["psnr_db"]


def search(
    score: Scorer, start: list[int], num_steps: int, space: str, rounds: int
) -> tuple[list[int], list]:
    """Coordinate search: move one refresh step by +-1, keep gains above 0.05 dB. Returns the list and the trace."""
    best, best_db = list(start), score(list(start), space)
    trace = [{"steps": best, "psnr_db": best_db, "kept": True}]
    print(f"start {best} {best_db:.2f} dB", flush=True)
    for _ in range(rounds):
        improved = False
        for i in range(1, len(best)):
            for move in (-1, 1):
                cand = list(best)
                cand[i] += move
                upper = cand[i + 1] if i + 1 < len(cand) else num_steps
                if not cand[i - 1] < cand[i] < upper:
                    continue
                db = score(cand, space)
                kept = db > best_db + 0.05
                trace.append({"steps": cand, "psnr_db": db, "kept": kept})
                print(f"  {cand} {db:.2f} dB" + ("  kept" if kept else ""), flush=True)
                if kept:
                    best, best_db, improved = cand, db, True
        if not improved:
            break
    return best, trace


def plot(payload: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5))
    trace = payload["trace"]
    dbs = [t["psnr_db"] for t in trace]
    ax1.plot(range(len(dbs)), dbs, ".", color="0.6", label="tried")
    kept = [(i, t["psnr_db"]) for i, t in enumerate(trace) if t["kept"]]
    ax1.plot(*zip(*kept, strict=True), "o-", color="tab:blue", label="kept")
    ax1.axhline(40, color="k", lw=0.7, ls="--")
    ax1.set_xlabel("evaluation")
    ax1.set_ylabel("PSNR vs plain 32 steps (dB), search notes")
    ax1.set_title("coordinate search over 8 refresh steps (noise-space taylor1)", fontsize=9)
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    rows = payload["check"]
    names = list(rows)
    for k, space in enumerate(("velocity", "noise")):
        ax2.bar([i + 0.4 * k for i in range(len(names))], [rows[n][space] for n in names], 0.4, label=space)
    ax2.set_xticks([i + 0.2 for i in range(len(names))])
    ax2.set_xticklabels([f"{n}\n{payload['schedules'][n]}" for n in names], fontsize=7)
    ax2.axhline(40, color="k", lw=0.7, ls="--")
    ax2.set_ylabel("PSNR (dB), check notes")
    ax2.set_title("8 refreshes on held-out notes: velocity vs noise-space forecast", fontsize=9)
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3, axis="y")
    fig.suptitle(f"{payload['hardware'][:80]}; {payload['model']}", fontsize=8)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default=str(pretrained_path("meldit-notes")), help="a MelDiTPipeline folder"
    )
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=6, help="the most passes over the refresh steps")
    parser.add_argument("--velocity", type=int, default=80)
    parser.add_argument(
        "--guidance-scale",
        type=float,
        default=1.0,
        help="the guidance the steps are searched for (1: the default)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 8 steps, 2 notes, one round")
    parser.add_argument("--out", default="benchmarks/results/dit_caching_schedule")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.rounds = 8, 1
    torch.set_num_threads(1)
    started = time.perf_counter()
    pipe = MelDiTPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    pipe.transformer.eval()
    sets = note_sets(pipe.transformer.config.trained_programs or [0], args.quick)
    start = scale_steps(START, args.steps)
    found, trace = search(Scorer(pipe, args, sets["search"]), start, args.steps, "noise", args.rounds)
    schedules = {"found": found, "start": start, "uniform_N4": list(range(0, args.steps, 4))}
    check = Scorer(pipe, args, sets["check"])
    rows = {n: {space: check(s, space) for space in ("velocity", "noise")} for n, s in schedules.items()}
    for name, row in rows.items():
        print(
            f"check {name:10s} {schedules[name]} velocity {row['velocity']:.2f} dB, noise {row['noise']:.2f} dB"
        )
    payload = {
        "benchmark": "dit_caching_schedule",
        "what": "8 refresh steps of the output-level cache (taylor1) searched on 8 notes, checked on 12 others; "
        "PSNR of the log-mel vs the plain output",
        "model": args.model,
        "hardware": f"{cpu_model()}",
        "threads": 1,
        "quick": args.quick,
        "steps": args.steps,
        "guidance_scale": args.guidance_scale,
        "notes": {k: [{"programs": p, "pitches": q, "seed": s} for p, q, s in v] for k, v in sets.items()},
        "found": found,
        "trace": trace,
        "schedules": schedules,
        "check": rows,
        "seconds": time.perf_counter() - started,
        "environment": environment(),
    }
    write_results_and_plot(args.out, payload, plot)
    return payload


if __name__ == "__main__":
    main()
