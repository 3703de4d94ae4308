"""Training throughput of the mel-vocoder trainers: samples per CPU-second, an older checkout vs this one.

Each trainer's step (forward, loss, backward, optimizer step; for PeriodWave-Turbo also both discriminators'
step) runs in a fresh worker process with one torch thread on a fixed batch, after warm-up steps, and is timed
by the worker's CPU time (``time.process_time``), so another job on the machine slows the wall clock but not
the figure much. Workers for the baseline checkout and for this one alternate (A B A B ...) and the median of
``--rounds`` rounds is kept, so both see the same machine state. The baseline is a git ref checked out into a
temporary worktree (``--baseline-ref``, default: the commit before this session's changes), with the settings
the bundled checkpoints were trained with; the improved side is this checkout with its recommended settings.

Writes ``benchmarks/results/training_throughput.{json,png}``::

    python benchmarks/training_throughput.py --rounds 3
    python benchmarks/training_throughput.py --trainers fregrad --steps 2 --rounds 1   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "training_throughput.json"
BASELINE_REF = "d75b08e"  # main before the throughput work (session 5)

# trainer -> side -> settings. "baseline" reproduces the recipe of the bundled checkpoints on the old code.
# "bf16": "auto" is what the recipes pass (``--mixed_precision auto``): bf16 only on a CPU that computes it natively.
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "fregrad": {
        "baseline": {"preset": "small", "batch": 16, "frames": 62, "bf16": False},
        "improved": {"preset": "small", "batch": 16, "frames": 62, "bf16": "auto"},
    },
    "periodwave": {
        "baseline": {"preset": "S", "batch": 16, "frames": 32, "bf16": True},
        "improved": {"preset": "S", "batch": 16, "frames": 32, "bf16": "auto"},
    },
    "periodwave-turbo": {
        "baseline": {"preset": "S", "batch": 8, "frames": 32, "bf16": True, "num_steps": 4},
        "improved": {"preset": "S", "batch": 8, "frames": 32, "bf16": "auto", "num_steps": 4},
        "improved-2-steps": {"preset": "S", "batch": 8, "frames": 32, "bf16": "auto", "num_steps": 2},
    },
}


# ------------------------------------------------------------------------------------------------ worker


def _worker(trainer: str, settings: dict[str, Any], steps: int, warmup: int) -> dict[str, Any]:
    """Time ``steps`` training steps of ``trainer`` in this process (the accelerando on sys.path)."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    from accelerando.audio import mel_spectrogram

    hop = 256
    batch, frames = settings["batch"], settings["frames"]
    t = torch.arange(frames * hop) / 22050
    # A voiced-like batch: harmonics with a slow pitch glide plus noise (cost does not depend on content).
    f0 = 120 + 60 * torch.rand(batch, 1)
    audio = sum(0.1 / k * torch.sin(2 * torch.pi * k * f0 * t) for k in range(1, 8))
    audio = audio + 0.01 * torch.randn(batch, frames * hop)  # (B, T)
    mel = mel_spectrogram(audio)  # (B, 80, frames)
    bf16 = settings["bf16"]
    if bf16 == "auto":
        from accelerando.training import native_bf16

        bf16 = native_bf16("cpu")
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(bf16))

    if trainer == "fregrad":
        from accelerando.vocoders import FreGrad

        model = FreGrad.from_preset(settings["preset"])
        opt = torch.optim.Adam(model.parameters(), lr=2e-4)

        def step() -> None:
            with autocast:
                loss, _ = model.training_loss(audio, mel)
            opt.zero_grad()
            loss.backward()
            opt.step()

    elif trainer == "periodwave":
        from accelerando.vocoders import PeriodWave

        model = PeriodWave.from_preset(settings["preset"])
        opt = torch.optim.AdamW(model.parameters(), lr=2e-4)

        def step() -> None:
            with autocast:
                loss = model.flow_matching_loss(audio, mel)
            opt.zero_grad()
            loss.backward()
            opt.step()

    else:
        import itertools

        from accelerando.audio import MultiScaleMelLoss
        from accelerando.vocoders import PeriodWaveTurbo
        from accelerando.vocoders.discriminators import (
            MultiPeriodDiscriminator,
            MultiScaleSubbandCQTDiscriminator,
            discriminator_loss,
            feature_loss,
            generator_loss,
        )

        model = PeriodWaveTurbo.from_preset(settings["preset"], num_steps=settings["num_steps"])
        mpd = MultiPeriodDiscriminator(channel_mult=0.25)
        cqtd = MultiScaleSubbandCQTDiscriminator(sample_rate=22050, filters=32)
        mel_loss = MultiScaleMelLoss(sample_rate=22050, pow=1.0, mag_weight=0.0)
        opt_g = torch.optim.AdamW(model.parameters(), lr=1e-4)
        opt_d = torch.optim.AdamW(itertools.chain(mpd.parameters(), cqtd.parameters()), lr=1e-4)
        y = audio.unsqueeze(1)

        def step() -> None:
            with autocast:
                y_hat = model.generate_train(mel)
                loss_d = sum(discriminator_loss(*d(y, y_hat.detach())[:2]) for d in (mpd, cqtd))
            loss_d.backward()
            opt_d.step()
            opt_d.zero_grad()
            with autocast:
                loss_g = 45 * mel_loss(y_hat.squeeze(1), y.squeeze(1))
                for d in (mpd, cqtd):
                    _, fake, fmap_r, fmap_g = d(y, y_hat)
                    loss_g = loss_g + 2 * feature_loss(fmap_r, fmap_g) + generator_loss(fake)
            loss_g.backward()
            opt_g.step()
            opt_g.zero_grad()
            opt_d.zero_grad()

    for _ in range(warmup):
        step()
    start = time.process_time()
    for _ in range(steps):
        step()
    cpu = (time.process_time() - start) / steps
    return {"cpu_s_per_step": cpu, "samples_per_cpu_s": batch * frames * hop / cpu, "bf16": bool(bf16)}


# ------------------------------------------------------------------------------------------------ driver


def _run_worker(
    tree: Path, trainer: str, settings: dict[str, Any], steps: int, warmup: int
) -> dict[str, Any]:
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(1, sys.argv[2]);"
        "from training_throughput import _worker;"
        "print('RESULT', json.dumps(_worker(sys.argv[3], json.loads(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))))"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    args = [str(tree), str(ROOT / "benchmarks"), trainer, json.dumps(settings), str(steps), str(warmup)]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=False
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"worker for {trainer} in {tree} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def _baseline_tree(ref: str, folder: Path) -> Path:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(folder), ref],
        check=True,
        capture_output=True,
    )
    return folder


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trainers", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--baseline-ref", default=BASELINE_REF, help="git ref of the baseline code")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per worker")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; the median is kept")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from accelerando.metrics.report import environment, save_figure, write_results

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="accelerando-baseline-") as tmp:
        baseline = _baseline_tree(args.baseline_ref, Path(tmp) / "tree")
        try:
            jobs = [(trainer, side) for trainer in args.trainers for side in VARIANTS[trainer]]
            samples: dict[tuple[str, str], list[float]] = {job: [] for job in jobs}
            bf16_used: dict[tuple[str, str], bool] = {}
            bar = tqdm(total=len(jobs) * args.rounds, desc="throughput")
            for _ in range(args.rounds):
                for trainer, side in jobs:
                    tree = baseline if side == "baseline" else ROOT
                    out = _run_worker(tree, trainer, VARIANTS[trainer][side], args.steps, args.warmup)
                    samples[(trainer, side)].append(out["samples_per_cpu_s"])
                    bf16_used[(trainer, side)] = out["bf16"]
                    bar.update(1)
            bar.close()
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(baseline)], check=False
            )
    for trainer in args.trainers:
        base = statistics.median(samples[(trainer, "baseline")])
        results[trainer] = {
            side: {
                "settings": VARIANTS[trainer][side],
                "bf16_used": bf16_used[(trainer, side)],
                "samples_per_cpu_s": statistics.median(samples[(trainer, side)]),
                "all_rounds": samples[(trainer, side)],
                "speedup_vs_baseline": statistics.median(samples[(trainer, side)]) / base,
            }
            for side in VARIANTS[trainer]
        }
    payload = {
        "benchmark": "training_throughput",
        "baseline_ref": args.baseline_ref,
        "settings": {"steps": args.steps, "warmup": args.warmup, "rounds": args.rounds, "threads": 1},
        "environment": environment(),
        "results": results,
    }
    path = write_results(args.out, payload)

    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.6), squeeze=False)
    for ax, (trainer, sides) in zip(axes[0], results.items()):
        names = list(sides)
        values = [sides[s]["samples_per_cpu_s"] / 1000 for s in names]
        bars = ax.bar(names, values, color=["#999999"] + ["#1f77b4"] * (len(names) - 1))
        for bar_, side in zip(bars, names):
            ax.annotate(f"{sides[side]['speedup_vs_baseline']:.2f}x", (bar_.get_x() + bar_.get_width() / 2,
                        bar_.get_height()), ha="center", va="bottom", fontsize=9)  # fmt: skip
        ax.set_title(trainer, fontsize=10)
        ax.set_ylabel("k samples / CPU-second (1 thread)")
        ax.tick_params(axis="x", labelsize=8, rotation=15)
    fig.suptitle(
        f"training throughput vs {args.baseline_ref}; {payload['environment'].get('cpu_model', '')}",
        fontsize=9,
    )
    save_figure(fig, path.with_suffix(".png"))
    print("| trainer | side | samples / CPU-s | speed-up |\n| --- | --- | --- | --- |")
    for trainer, sides in results.items():
        for side, row in sides.items():
            print(
                f"| {trainer} | {side} | {row['samples_per_cpu_s']:.0f} | {row['speedup_vs_baseline']:.2f}x |"
            )
    return payload


if __name__ == "__main__":
    main(parse_args())
