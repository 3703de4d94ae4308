"""PeriodWave-S vs PeriodWave-Turbo-S: speed side by side and quality on the held-out split, in one run.

The Turbo paper (arXiv 2408.08019) fine-tunes a trained PeriodWave into a 2- or 4-step Euler generator with
reconstruction + adversarial losses and reports that it beats its own teacher, even at 16 steps, and runs far
faster (Turbo-S 2.58 x real time on an EPYC 7313 CPU vs PeriodWave-B's 0.21 at 16 steps). Here:

- **speed**: ``synthesize`` on the same mel (``--seconds`` of audio) timed interleaved in one process with
  :func:`accelerando.metrics.timing.compare_speed` for each thread count: the teacher at 16 midpoint steps
  (its default, 32 network evaluations) as the baseline, the teacher at 4 and 2 Euler steps (the Turbo's
  step counts, same network evaluations) and the Turbo generator at 4 and 2 steps;
- **quality** (with ``--corpus``): the same systems plus the Griffin-Lim floor on the first ``--max-items``
  utterances of the held-out split, scored with :func:`accelerando.metrics.evaluate_vocoder` (M-STFT,
  PESQ-wb, STOI, periodicity, V/UV F1, pitch error), seeded per item.

The Turbo generator is trained for one step count (its config's ``num_steps``); the other count runs the same
weights with that many Euler steps and is labelled "off-design". Writes ``benchmarks/results/periodwave_turbo.{json,png}``::

    python benchmarks/periodwave_turbo.py --teacher runs/periodwave-s/checkpoint-1500/model \\
        --turbo accelerando/pretrained/periodwave-turbo-s-speech --corpus corpora/speech --max-items 6
    python benchmarks/periodwave_turbo.py --quick    # smoke run: random tiny models, no corpus
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import torch

from accelerando.metrics import VOCODER_METRICS
from accelerando.metrics.report import environment, save_figure, summarize, write_results_and_plot
from accelerando.metrics.timing import compare_speed, cpu_model
from accelerando.metrics.vocoder_bench import run_vocoder
from accelerando.vocoders import GriffinLim, PeriodWave, PeriodWaveTurbo

HOP, SAMPLE_RATE = 256, 22050
PAPER_XRT_CPU = {"PeriodWave-B, 16 steps": 0.21, "Turbo-S": 2.58, "Turbo-B": 1.12}  # EPYC 7313
SHOWN = ("mstft", "pesq_wb", "periodicity_rmse", "vuv_f1", "pitch_rmse_cents")


class System:
    """A vocoder at fixed sampling settings, with the ``synthesize(mel, num_steps, generator)`` of the bench."""

    def __init__(self, model: PeriodWave, num_steps: int, method: str) -> None:
        self.model, self.num_steps, self.method = model, num_steps, method

    def synthesize(
        self, mel: torch.Tensor, num_steps: int | None = None, generator: Any = None
    ) -> torch.Tensor:
        del num_steps  # fixed per system
        return self.model.synthesize(mel, num_steps=self.num_steps, generator=generator, method=self.method)

    def num_evaluations(self) -> int:
        return self.num_steps * (2 if self.method == "midpoint" else 1)


def build_systems(teacher: PeriodWave, turbo: PeriodWaveTurbo) -> dict[str, System]:
    trained = turbo.config.num_steps
    systems = {
        "PeriodWave-S midpoint 16": System(teacher, 16, "midpoint"),
        "PeriodWave-S Euler 4": System(teacher, 4, "euler"),
        "PeriodWave-S Euler 2": System(teacher, 2, "euler"),
    }
    for steps in (4, 2):
        label = f"Turbo-S {steps}" + ("" if steps == trained else f" (off-design; trained for {trained})")
        systems[label] = System(turbo, steps, "euler")
    return systems


def bench_speed(systems: dict[str, System], seconds: float, threads: int, repeats: int, warmup: int) -> dict:
    torch.set_num_threads(threads)
    frames = max(1, round(seconds * SAMPLE_RATE / HOP))
    mel = torch.randn(1, 80, frames, generator=torch.Generator().manual_seed(0)) - 5.0
    audio_seconds = frames * HOP / SAMPLE_RATE

    def call(system: System):
        return lambda: system.synthesize(mel, generator=torch.Generator().manual_seed(0))

    with torch.inference_mode():
        timing = compare_speed(
            {name: call(s) for name, s in systems.items()},
            repeats=repeats,
            warmup=warmup,
            audio_seconds=audio_seconds,
        )
    return {
        "threads": threads,
        "audio_seconds": audio_seconds,
        "xrt": {name: r["xrt"] for name, r in timing["results"].items()},
        "speedup_over_teacher_16": timing["speedup_over_baseline"],
        "timing": timing,
    }


def bench_quality(systems: dict[str, System], corpus: str, max_items: int, threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    rows: dict[str, list[dict[str, Any]]] = {}
    for name, system in systems.items():
        print(f"quality: {name}", flush=True)
        rows[name] = run_vocoder(system, corpus, "test", max_items, seed=0)
    print("quality: Griffin-Lim", flush=True)
    rows["Griffin-Lim (32 iter.)"] = run_vocoder(
        GriffinLim(n_iter=32, seed=0), corpus, "test", max_items, seed=0
    )
    summary = {
        name: {metric: summarize([r[metric] for r in items]) for metric in VOCODER_METRICS}
        for name, items in rows.items()
    }
    return {"summary": summary, "items": rows}


def plot(payload: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    quality = payload.get("quality")
    if quality:
        fig = plt.figure(figsize=(16, 7))
        grid = fig.add_gridspec(2, len(SHOWN))
        speed_ax = fig.add_subplot(grid[0, :])
        metric_axes = [fig.add_subplot(grid[1, i]) for i in range(len(SHOWN))]
    else:
        fig, speed_ax = plt.subplots(figsize=(8, 3.5))
        metric_axes = []
    run = payload["speed"][-1]
    names = list(run["xrt"])
    xrt = [run["xrt"][n] for n in names]
    speed_ax.barh(names, xrt, color="tab:blue")
    for i, x in enumerate(xrt):
        speed_ax.annotate(f" {x:.2f}x RT", (x, i), va="center")
    speed_ax.axvline(1.0, color="gray", lw=0.8)
    speed_ax.set_xlabel(f"x real time ({run['threads']} thread(s), {run['audio_seconds']:.1f} s of mel)")
    speed_ax.invert_yaxis()
    speed_ax.set_title(f"speed on {payload['hardware']}", fontsize=9)
    if quality:
        qnames = list(quality["summary"])
        colors = [
            "gray" if n.startswith("Griffin") else "tab:orange" if n.startswith("Turbo") else "tab:blue"
            for n in qnames
        ]
        for ax, metric in zip(metric_axes, SHOWN):
            values = [quality["summary"][n][metric]["mean"] for n in qnames]
            ax.barh(range(len(qnames)), [v if v is not None else 0.0 for v in values], color=colors)
            ax.set_yticks(range(len(qnames)), qnames if ax is metric_axes[0] else [""] * len(qnames))
            ax.invert_yaxis()
            ax.set_xlabel(
                f"{metric} ({'higher' if VOCODER_METRICS[metric] else 'lower'} is better)", fontsize=8
            )
        n_items = payload["quality_settings"]["max_items"]
        metric_axes[len(SHOWN) // 2].set_title(f"held-out test split, first {n_items} utterances", fontsize=9)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--teacher", default=None, help="a trained PeriodWave folder")
    parser.add_argument("--turbo", default=None, help="its PeriodWave-Turbo folder")
    parser.add_argument("--corpus", default=None, help="speech corpus for the quality half (test split)")
    parser.add_argument("--max-items", type=int, default=6, help="test utterances scored per system")
    parser.add_argument("--seconds", type=float, default=4.0, help="mel length of the speed comparison")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts (speed)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="smoke run: random tiny models, 0.2 s, 1 repeat")
    parser.add_argument("--out", default="benchmarks/results/periodwave_turbo")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    if args.quick:
        teacher = PeriodWave.from_preset("tiny").eval()
        turbo = PeriodWaveTurbo.from_periodwave(teacher, num_steps=4).eval()
        args.seconds, args.threads, args.repeats, args.warmup, args.corpus = 0.2, [1], 1, 0, None
        weights = "random tiny models (smoke run)"
    else:
        if not (args.teacher and args.turbo):
            parser.error("--teacher and --turbo are required (or --quick)")
        teacher = PeriodWave.from_pretrained(args.teacher).eval()
        turbo = PeriodWaveTurbo.from_pretrained(args.turbo).eval()
        weights = {"teacher": args.teacher, "turbo": args.turbo}
    systems = build_systems(teacher, turbo)
    hardware = f"{cpu_model()} ({os.cpu_count()} logical CPUs visible, shared)"
    speed = []
    for threads in args.threads:
        res = bench_speed(systems, args.seconds, threads, args.repeats, args.warmup)
        speed.append(res)
        print(
            f"threads={threads}: " + ", ".join(f"{n} x{x:.2f} RT" for n, x in res["xrt"].items()), flush=True
        )
    payload: dict[str, Any] = {
        "benchmark": "periodwave_turbo",
        "what": "PeriodWave teacher (midpoint 16 / Euler 4 / Euler 2) vs its Turbo generator (Euler 4 / 2): "
        "xRT timed interleaved (compare_speed), quality on the held-out split",
        "weights": weights,
        "hardware": hardware,
        "quick": args.quick,
        "parameters": {"teacher": teacher.num_parameters(), "turbo": turbo.num_parameters()},
        "turbo_trained_steps": turbo.config.num_steps,
        "network_evaluations": {name: s.num_evaluations() for name, s in systems.items()},
        "paper_xrt_cpu": PAPER_XRT_CPU,
        "speed": speed,
        "load_average_at_end": os.getloadavg(),
        "environment": environment(),
    }
    if args.corpus:
        payload["quality"] = bench_quality(systems, args.corpus, args.max_items, args.threads[0])
        payload["quality_settings"] = {"corpus": args.corpus, "split": "test", "max_items": args.max_items}
        for name, stats in payload["quality"]["summary"].items():
            print(f"{name:<44}" + "  ".join(f"{m} {stats[m]['mean']}" for m in SHOWN), flush=True)
    write_results_and_plot(args.out, payload, plot)
    return payload


if __name__ == "__main__":
    main()
