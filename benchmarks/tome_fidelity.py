"""ToMe fidelity on the bundled MelDiT: which merge keeps >= 30 dB PSNR at >= 1.25x (tracker issue #23, part 4).

For each ToMe setting, every note is generated twice, side by side: the plain pipeline, then with ToMe applied
(batch 1, one thread, ``num_inference_steps`` Euler steps, fixed seeds). Speed is the median over notes and
repeats of the per-pair time ratio plain / ToMe; fidelity is the PSNR of the ToMe mel against the plain one (peak =
the plain note's dynamic range, as in ``dit_plugins_quality.py``), mean over notes, plus the mel L1.

Settings: today's merge (attention only, and attention + MLP at a few ratios) and the new levers (``blocks``: skip
the first and last blocks; ``merge_steps``: merge only in the early, high-noise steps; ``prop_attn``: proportional
attention; MLP-only merging; a smaller ratio).

Usage: ``OMP_NUM_THREADS=1 python benchmarks/tome_fidelity.py`` (about 8 minutes on one shared core) ->
``benchmarks/results/tome_fidelity.{json,png}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from accelerando.accelerate_dit import ToMeConfig, apply_tome, remove_acceleration
from accelerando.accelerate_dit._hooks import get_tracker
from accelerando.pretrained.loading import load

NOTES = [("flute", 72), ("violin", 67), ("trumpet", 64), ("acoustic grand piano", 60), ("cello", 55)]
MIDDLE = (1, 2, 3, 4)  # MelDiT-notes has 6 blocks: skip the first and the last

# name -> ToMeConfig keyword arguments. "current" rows are today's options; the others add the new levers (all
# merge attention and MLP unless named "mlp only").
SETTINGS: dict[str, dict[str, Any]] = {
    "current attn 0.5": dict(ratio=0.5),
    "current attn+mlp 0.3": dict(ratio=0.3, merge_mlp=True),
    "current attn+mlp 0.5": dict(ratio=0.5, merge_mlp=True),
    "current attn+mlp 0.7": dict(ratio=0.7, merge_mlp=True),
    "0.5, middle blocks": dict(ratio=0.5, merge_mlp=True, blocks=MIDDLE),
    "0.5, steps < 16": dict(ratio=0.5, merge_mlp=True, merge_steps=16),
    "0.5, prop attn": dict(ratio=0.5, merge_mlp=True, prop_attn=True),
    "mlp only 0.5, middle, steps < 16": dict(
        ratio=0.5, merge_attn=False, merge_mlp=True, blocks=MIDDLE, merge_steps=16
    ),
    "0.3, prop attn": dict(ratio=0.3, merge_mlp=True, prop_attn=True),
    "0.5, steps < 16, prop attn": dict(ratio=0.5, merge_mlp=True, merge_steps=16, prop_attn=True),
    "0.5, steps < 14, prop attn": dict(ratio=0.5, merge_mlp=True, merge_steps=14, prop_attn=True),
    "0.5, middle, steps < 20, prop attn": dict(
        ratio=0.5, merge_mlp=True, blocks=MIDDLE, merge_steps=20, prop_attn=True
    ),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="meldit-notes")
    parser.add_argument("--num_inference_steps", type=int, default=32)
    parser.add_argument("--num_notes", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2, help="timed plain / ToMe pairs per note")
    parser.add_argument("--settings", nargs="*", default=None, help="names from SETTINGS (default: all)")
    parser.add_argument("--output_dir", default="benchmarks/results")
    parser.add_argument("--name", default="tome_fidelity")
    return parser.parse_args(argv)


def psnr_db(out: torch.Tensor, base: torch.Tensor) -> float:
    """PSNR (dB) of ``out`` vs ``base`` ``(n_mels, frames)``; peak = the baseline's dynamic range."""
    mse = float(((out - base) ** 2).mean())
    peak = float(base.max() - base.min())
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(peak**2 / mse)).item()


def generate(pipe: Any, note: tuple[str, int], steps: int, seed: int) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    mel = pipe(
        instrument=note[0], pitch=note[1], num_inference_steps=steps,
        generator=torch.Generator().manual_seed(seed), output_type="pt",
    ).mels[0].float()  # fmt: skip  # (n_mels, frames)
    return mel, time.perf_counter() - start


def measure(pipe: Any, kwargs: dict[str, Any], notes: list, args: argparse.Namespace) -> dict[str, Any]:
    """Plain and ToMe runs interleaved per note and repeat: median speed ratio, mean PSNR and L1."""
    ratios, psnrs, l1s = [], [], []
    work = 1.0
    for seed, note in enumerate(notes):
        for _ in range(args.repeats):
            base, t_plain = generate(pipe, note, args.num_inference_steps, seed)
            state = apply_tome(pipe.transformer, ToMeConfig(**kwargs))
            out, t_tome = generate(pipe, note, args.num_inference_steps, seed)
            rows, cols = get_tracker(pipe.transformer).grid
            # attention + MLP token-calls of the whole generation, as a fraction of the plain pipeline's
            plain_work = args.num_inference_steps * len(pipe.transformer.transformer_blocks) * 2 * rows * cols
            work = 1 - (state.tokens_in - state.tokens_out) / plain_work
            remove_acceleration(pipe.transformer)
            ratios.append(t_plain / t_tome)
        psnrs.append(psnr_db(out, base))
        l1s.append(float((out - base).abs().mean()))
    return {
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()},
        "speedup": statistics.median(ratios),
        "speedup_pairs": ratios,
        "psnr_db": sum(psnrs) / len(psnrs),
        "psnr_db_min": min(psnrs),
        "mel_l1": sum(l1s) / len(l1s),
        "token_work": work,
    }


def plot(rows: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for name, row in rows.items():
        color = "tab:gray" if name.startswith("current") else "tab:blue"
        ax.scatter(row["speedup"], row["psnr_db"], color=color, s=28)
        ax.annotate(
            name, (row["speedup"], row["psnr_db"]), fontsize=6, xytext=(3, 2), textcoords="offset points"
        )
    ax.axhline(30, color="tab:red", lw=0.8, ls="--")
    ax.axvline(1.25, color="tab:red", lw=0.8, ls="--")
    ax.set(
        xlabel="speedup over the plain pipeline (x, median of side-by-side pairs)",
        ylabel="PSNR to the plain output (dB, mean over notes)",
        title="ToMe on meldit-notes, 32 steps, batch 1, 1 thread (grey: today's options)",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=130)


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    pipe = load(args.model)
    pipe.set_progress_bar_config(disable=True)
    notes = NOTES[: args.num_notes]
    names = args.settings or list(SETTINGS)
    generate(pipe, notes[0], args.num_inference_steps, 0)  # warm-up
    rows = {}
    for name in names:
        rows[name] = measure(pipe, SETTINGS[name], notes, args)
        row = rows[name]
        print(
            f"{name:42s} {row['speedup']:.2f}x  {row['psnr_db']:.1f} dB (min {row['psnr_db_min']:.1f})",
            flush=True,
        )
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {
        "model": args.model,
        "num_inference_steps": args.num_inference_steps,
        "notes": [list(n) for n in notes],
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "target": {"speedup": 1.25, "psnr_db": 30.0},
        "rows": rows,
    }
    (out_dir / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(rows, out_dir / f"{args.name}.png")


if __name__ == "__main__":
    main(parse_args())
