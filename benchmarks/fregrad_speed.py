"""FreGrad vs a PriorGrad / DiffWave-style baseline: inference speed and size, side by side.

The FreGrad paper (Nguyen et al., ICASSP 2024) claims 2.2x faster inference than PriorGrad with
0.6x the parameters. Here both models run ``synthesize(mel, num_steps=6)`` (the same 6-step
schedule from :mod:`accelerando.vocoders.fregrad.schedule`) on the same mel, timed interleaved in
one process with :func:`accelerando.metrics.timing.compare_speed`, for each thread count and mel
length:

- ``priorgrad``: :class:`~accelerando.vocoders.fregrad.baseline.PriorGradBaseline`, 30 layers x 64
  channels on the raw waveform (2.62M parameters), the baseline;
- ``fregrad``: :class:`~accelerando.vocoders.fregrad.FreGrad` (paper config, 1.78M parameters),
  30 layers x 32 channels on the Haar sub-bands at half rate.

Weights are random (seed 0): this measures speed and size only, not audio quality. The speedup is
``median(priorgrad) / median(fregrad)``; absolute times on a shared CPU are for orientation only.
Writes ``benchmarks/results/fregrad_speed.{json,png}``::

    python benchmarks/fregrad_speed.py            # 1 and 2 threads, 1 s and 4 s of mel
    python benchmarks/fregrad_speed.py --quick    # smoke run: tiny mel, 1 repeat
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import torch

from accelerando.metrics.report import environment, save_figure, write_results
from accelerando.metrics.timing import compare_speed, cpu_model
from accelerando.vocoders.fregrad import FreGrad
from accelerando.vocoders.fregrad.baseline import PriorGradBaseline

HOP, SAMPLE_RATE = 256, 22050
PAPER = {
    "inference_speedup": 2.2,
    "size_ratio": 0.6,
    "fregrad_params": 1_782_548,
    "priorgrad_params": 2_619_923,
}


def bench(
    models: dict[str, Any], seconds: float, steps: int, threads: int, repeats: int, warmup: int
) -> dict:
    """One interleaved comparison at ``threads`` intra-op threads on ``seconds`` of (random) mel."""
    torch.set_num_threads(threads)
    frames = max(1, round(seconds * SAMPLE_RATE / HOP))
    mel = torch.randn(1, 80, frames, generator=torch.Generator().manual_seed(0)) - 5.0
    audio_seconds = frames * HOP / SAMPLE_RATE

    def run(name: str):
        return lambda: models[name].synthesize(
            mel, num_steps=steps, generator=torch.Generator().manual_seed(0)
        )

    timing = compare_speed(
        {name: run(name) for name in models}, repeats=repeats, warmup=warmup, audio_seconds=audio_seconds
    )
    med = {name: r["median_s"] for name, r in timing["results"].items()}
    return {
        "threads": threads,
        "frames": frames,
        "audio_seconds": audio_seconds,
        "median_s": med,
        "rtf": {name: m / audio_seconds for name, m in med.items()},
        "fregrad_speedup": med["priorgrad"] / med["fregrad"],
        "timing": timing,
    }


def plot(runs: list[dict], params: dict[str, int], path: Path, hardware: str) -> None:
    """Speedup of FreGrad over the baseline per (threads, length), with the paper's 2.2x as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [3, 1]})
    labels = [f"{r['threads']} thr\n{r['audio_seconds']:.1f} s" for r in runs]
    speedups = [r["fregrad_speedup"] for r in runs]
    ax.bar(labels, speedups, color="tab:blue")
    ax.axhline(PAPER["inference_speedup"], color="tab:red", ls="--", label="paper 2.2x")
    ax.axhline(1.0, color="gray", lw=0.8)
    for i, s in enumerate(speedups):
        ax.annotate(f"x{s:.2f}", (i, s), ha="center", va="bottom")
    ax.set_ylabel("FreGrad speedup over PriorGrad-64 (6 steps)")
    ax.legend(loc="lower right")
    ax.set_title(f"{hardware[:60]}", fontsize=8)
    ax2.bar(
        ["PriorGrad-64", "FreGrad"],
        [params["priorgrad"] / 1e6, params["fregrad"] / 1e6],
        color=["gray", "tab:blue"],
    )
    ax2.set_ylabel("parameters (M)")
    ax2.set_title(f"size ratio {params['fregrad'] / params['priorgrad']:.2f} (paper 0.6)", fontsize=9)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, nargs="+", default=[1.0, 4.0], help="mel lengths in seconds")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch intra-op thread counts")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="smoke run: 0.1 s of mel, 1 thread, 1 repeat")
    parser.add_argument("--out", default="benchmarks/results/fregrad_speed")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.threads, args.repeats, args.warmup = [0.1], [1], 1, 0

    torch.manual_seed(0)
    models = {"priorgrad": PriorGradBaseline().eval(), "fregrad": FreGrad().eval()}
    params = {name: m.num_parameters() for name, m in models.items()}
    runs = []
    for threads in args.threads:
        for seconds in args.seconds:
            res = bench(models, seconds, args.steps, threads, args.repeats, args.warmup)
            runs.append(res)
            print(
                f"threads={threads} audio={res['audio_seconds']:.2f}s  priorgrad {res['median_s']['priorgrad']:.3f}s"
                f"  fregrad {res['median_s']['fregrad']:.3f}s  speedup x{res['fregrad_speedup']:.2f}",
                flush=True,
            )
    hardware = f"{cpu_model()} ({os.cpu_count()} logical CPUs visible, shared)"
    payload = {
        "benchmark": "fregrad_speed",
        "what": "FreGrad (paper config) vs PriorGrad/DiffWave-style baseline (64 ch, raw waveform), "
        f"synthesize() at {args.steps} steps, timed interleaved (compare_speed)",
        "weights": "random (seed 0): speed and size only, says nothing about audio quality",
        "hardware": hardware,
        "quick": args.quick,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "load_average_at_end": os.getloadavg(),
        "params": {**params, "size_ratio_fregrad_over_priorgrad": params["fregrad"] / params["priorgrad"]},
        "paper": PAPER,
        "runs": runs,
        "environment": environment(),
    }
    out = Path(args.out)
    write_results(out.with_suffix(".json"), payload)
    plot(runs, params, out.with_suffix(".png"), hardware)
    print(
        f"params: priorgrad {params['priorgrad']:,}  fregrad {params['fregrad']:,}  ratio "
        f"{payload['params']['size_ratio_fregrad_over_priorgrad']:.3f}"
    )
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")
    return payload


if __name__ == "__main__":
    main()
