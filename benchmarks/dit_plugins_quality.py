"""ToMe / FORA (ours) and diffusers' cache hooks on the trained MelDiT: speed, fidelity and note accuracy together.

Notes are drawn evenly from the corpus's test split (their program and pitch, velocity 80); every config generates
the same notes from the same noise with ``MelDiTPipeline`` (32 Euler steps, the pipeline's default guidance) and
is reported side by side:

- ``speedup``: generation time of the unaccelerated pipeline over the config's, the median over note batches (in
  every batch the configs run in turn, the order reversed every other batch, in one process, 1 torch thread;
  ``speedup_total_time`` sums the batches instead);
- ``compute``: attention + MLP calls (and the tokens they see) relative to the baseline, counted by hooks;
- fidelity to the baseline output: ``mel_l1`` (natural-log mel) and ``psnr_db`` (peak: each baseline note's
  dynamic range, averaged over notes);
- the bundled note classifier's ``instrument_accuracy`` / ``pitch_accuracy`` for what was asked
  (``accelerando.generation.note_metrics``).

Configs: ToMe ratio 0.3 / 0.5 / 0.7 with the MLP merged too (``_mlp``) and 0.5 before self-attention only (the
paper's default); FORA N = 2 / 3 / 4; beyond FORA at FORA's compute: the first-order Taylor forecast
(``fora_taylor1_N*``, ours) and a calibrated per-block refresh schedule with N = 3's budget
(``fora_calibrated_N3``: 11 refreshes per block on average, placed by dynamic programming on the change of every
block's attention / MLP outputs recorded in one uncached generation of validation notes, SmoothCache-style);
diffusers' FirstBlockCache, PyramidAttentionBroadcast, TaylorSeerCache, FasterCache (attention extrapolation) and
MagCache (``mag_ratios`` from its own calibration mode on the same validation notes). Settings shared with
``dit_plugins_speed.py`` are imported from it. Writes JSON + a speed-vs-fidelity PNG::

    python benchmarks/dit_plugins_quality.py --model accelerando/pretrained/meldit-notes
    python benchmarks/dit_plugins_quality.py --quick     # smoke run: 4 notes, 8 steps, a few configs
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import inspect
import io
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from diffusers import hooks as dhooks
from dit_plugins_speed import (
    ComputeCounter,
    diffusers_fastercache,
    diffusers_fbc,
    diffusers_magcache,
    diffusers_pab,
    diffusers_taylorseer,
    fora,
    register_meldit_block,
    start_generation,
    tome,
    track_timestep,
)
from torch import nn

from accelerando.accelerate_dit._registry import find_blocks
from accelerando.generation import MelDiTPipeline, NoteClassifier, note_metrics
from accelerando.generation.train_classifier import build_dataset
from accelerando.metrics.report import environment, write_results
from accelerando.metrics.timing import cpu_model
from accelerando.pretrained import pretrained_path

TARGETS = {"fora_N3": {"speedup": 2.5, "accuracy_drop_points": 2.0}, "tome_0.5": {"speedup": 1.4}}
QUICK_CONFIGS = ["tome_0.5_mlp", "fora_N3", "fora_taylor1_N3", "fora_calibrated_N3", "diffusers_magcache"]


# --------------------------------------------------------------------------------------------- notes


def conditions(corpus: str, split: str, n: int) -> tuple[list[int], list[int]]:
    """``(programs, pitches)`` of ``n`` notes spread evenly over ``split`` (so every instrument is asked for)."""
    dataset = build_dataset(argparse.Namespace(data_dir=corpus), split)
    index = torch.linspace(0, len(dataset) - 1, min(n, len(dataset))).round().long().tolist()
    items = [dataset[i] for i in index]
    return [int(item["program"]) for item in items], [int(item["pitch"]) for item in items]


class NoteGenerator:
    """Runs one config's pipeline on note batches; diffusers' stateful hooks are reset before each generation."""

    def __init__(self, pipe: MelDiTPipeline, args: argparse.Namespace, diffusers_hooks: bool) -> None:
        self.pipe, self.args, self.diffusers_hooks = pipe, args, diffusers_hooks
        pipe.set_progress_bar_config(disable=True)
        track_timestep(pipe.transformer)

    def __call__(self, programs: list[int], pitches: list[int], seed: int) -> torch.Tensor:
        if self.diffusers_hooks:
            start_generation(self.pipe.transformer)
        return self.pipe(
            instrument=programs, pitch=pitches, velocity=self.args.velocity,
            num_inference_steps=self.args.steps, guidance_scale=self.args.guidance_scale,
            generator=torch.Generator().manual_seed(seed), output_type="pt",
        ).mels.float()  # fmt: skip  # (B, n_mels, frames) log-mels


def fidelity(out: torch.Tensor, base: torch.Tensor) -> dict[str, float]:
    """Mel L1 and PSNR (dB; peak = each baseline note's dynamic range, mean over notes) of ``out`` vs ``base``."""
    mse = ((out - base) ** 2).flatten(1).mean(1)
    peak = base.flatten(1).amax(1) - base.flatten(1).amin(1)
    psnr = torch.where(
        mse > 0, 10 * torch.log10(peak**2 / mse), torch.inf
    )  # identical: infinite (null in JSON)
    return {"mel_l1": float((out - base).abs().mean()), "psnr_db": float(psnr.mean())}


# --------------------------------------------------------------------------- calibration (validation notes)


def record_block_outputs(
    pipe: MelDiTPipeline, gen: NoteGenerator, programs: list[int], pitches: list[int], seed: int
) -> dict[int, torch.Tensor]:
    """Attention / MLP outputs of every block at every step of one uncached generation (128 tokens sampled)."""
    blocks = find_blocks(pipe.transformer)
    outputs: dict[int, list[list[torch.Tensor]]] = {b.index: [] for b in blocks}
    tokens = torch.randperm(pipe.transformer.num_tokens, generator=torch.Generator().manual_seed(0))[:128]
    handles = []
    for found in blocks:
        for slot in ("attn", "mlp"):
            for _, module in found.submodules(slot):

                def keep(_m: nn.Module, _a: tuple, out: torch.Tensor, i: int = found.index) -> None:
                    outputs[i].append(out[:, tokens].flatten())

                handles.append(module.register_forward_hook(keep))
    gen(programs, pitches, seed)
    for handle in handles:
        handle.remove()
    parts = len(outputs[0]) // gen.args.steps  # sub-modules per block
    return {i: torch.stack(v).view(gen.args.steps, parts, -1) for i, v in outputs.items()}  # (S, parts, F)


def change_matrix(y: torch.Tensor) -> torch.Tensor:
    """``E[s, t]``: relative L1 change ``|y_t - y_s| / |y_t|`` summed over the block's sub-modules; ``y`` (S, P, F)."""
    steps = y.shape[0]
    e = torch.zeros(steps, steps, dtype=torch.float64)
    for p in range(y.shape[1]):
        ys = y[:, p].double()
        e += torch.cdist(ys, ys, p=1) / ys.shape[1] / ys.abs().mean(1)[None, :]
    return e


def best_schedule(e: torch.Tensor, k: int) -> tuple[float, list[int]]:
    """The ``k`` refresh steps (step 0 included) minimising ``sum_t E[last refresh before t, t]``: exact DP."""
    steps = e.shape[0]
    k = max(1, min(k, steps))
    cum = torch.cumsum(torch.triu(e, 1), dim=1)  # cum[s, t] = sum_{s < t' <= t} E[s, t']
    seg = torch.zeros(steps, steps + 1, dtype=torch.float64)  # seg[s, r]: reuse s on steps s+1 .. r-1
    seg[:, 1:] = cum
    inf = float("inf")
    cost = torch.full((k + 1, steps), inf, dtype=torch.float64)  # cost[j, r]: j refreshes, the last at r
    back = torch.zeros(k + 1, steps, dtype=torch.long)
    cost[1, 0] = 0.0
    later = torch.ones(steps, steps, dtype=torch.bool).triu(1)
    for j in range(2, k + 1):
        cand = (cost[j - 1][:, None] + seg[:, :steps]).masked_fill(~later, inf)  # (previous, next)
        cost[j], back[j] = cand.min(dim=0)
    total, last = (cost[k] + seg[:, steps]).min(dim=0)
    chosen = [int(last)]
    for j in range(k, 1, -1):
        chosen.append(int(back[j, chosen[-1]]))
    return float(total), sorted(chosen)


def calibrated_refresh_steps(outputs: dict[int, torch.Tensor], budget: int) -> list[list[int]]:
    """Per-block refresh steps with ``budget`` refreshes in all, allocated across blocks by exact DP."""
    errors = [change_matrix(outputs[i]) for i in sorted(outputs)]
    steps = errors[0].shape[0]
    costs = [[best_schedule(e, k)[0] for k in range(1, steps + 1)] for e in errors]
    best: dict[int, tuple[float, list[int]]] = {0: (0.0, [])}
    for block_costs in costs:
        nxt: dict[int, tuple[float, list[int]]] = {}
        for used, (c, ks) in best.items():
            for k in range(1, min(steps, budget - used) + 1):
                value = c + block_costs[k - 1]
                if used + k not in nxt or value < nxt[used + k][0]:
                    nxt[used + k] = (value, [*ks, k])
        best = nxt
    return [best_schedule(e, k)[1] for e, k in zip(errors, best[budget][1], strict=True)]


def magcache_ratios(
    pipe: MelDiTPipeline, gen: NoteGenerator, programs: list[int], pitches: list[int], seed: int
) -> list[float]:
    """diffusers' MagCache calibration mode on one generation: the ratios it prints, parsed."""
    model = copy.deepcopy(pipe.transformer)
    dhooks.apply_mag_cache(model, dhooks.MagCacheConfig(calibrate=True, num_inference_steps=gen.args.steps))
    probe = NoteGenerator(MelDiTPipeline(model, pipe.scheduler), gen.args, diffusers_hooks=True)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        probe(programs, pitches, seed)
    line = next(
        x for x in buffer.getvalue().splitlines() if x.strip().startswith("[") and "MagCache" not in x
    )
    return [float(v) for v in ast.literal_eval(line.strip())]


# ------------------------------------------------------------------------------------------------ configs


def configs(calibration: dict[str, Any], steps: int) -> dict[str, tuple[Callable[[nn.Module], Any], bool]]:
    """``{name: (apply(model), uses diffusers hooks)}``; the first is the baseline."""
    out: dict[str, tuple[Callable[[nn.Module], Any], bool]] = {"baseline": (lambda m: None, False)}
    for ratio in (0.3, 0.5, 0.7):
        out[f"tome_{ratio}_mlp"] = (tome(ratio, mlp=True), False)
    out["tome_0.5"] = (tome(0.5, mlp=False), False)
    for n in (2, 3, 4):
        out[f"fora_N{n}"] = (fora(n), False)
    for n in (2, 3, 4):
        out[f"fora_taylor1_N{n}"] = (fora(n, "taylor1"), False)
    # interval = steps: no refreshes beyond the calibrated ones (the budget of FORA N = 3 exactly)
    out["fora_calibrated_N3"] = (fora(steps, refresh_steps=calibration["fora_refresh_steps"]), False)
    out["diffusers_fbc_0.1"] = (diffusers_fbc(0.1), True)
    out["diffusers_pab_2"] = (diffusers_pab(2), True)
    out["diffusers_taylorseer_3"] = (diffusers_taylorseer(3), True)
    out["diffusers_fastercache_2"] = (diffusers_fastercache(2), True)
    out["diffusers_magcache"] = (diffusers_magcache(calibration["magcache_ratios"], steps), True)
    return out


def main(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.guidance_scale is None:  # the pipeline's own default
        args.guidance_scale = inspect.signature(MelDiTPipeline.__call__).parameters["guidance_scale"].default
    pipe = MelDiTPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    pipe.transformer.eval()
    register_meldit_block()
    clf = NoteClassifier.from_pretrained(args.classifier or pretrained_path("note-classifier")).eval()
    programs, pitches = conditions(args.corpus, "test", args.num_notes)
    cal_programs, cal_pitches = conditions(args.corpus, "validation", args.calibration_notes)

    base_gen = NoteGenerator(pipe, args, diffusers_hooks=False)
    started = time.perf_counter()
    outputs = record_block_outputs(pipe, base_gen, cal_programs, cal_pitches, args.seed + 10_000)
    budget = len(range(0, args.steps, 3)) * len(outputs)  # FORA N = 3's refreshes
    calibration = {
        "notes": {"programs": cal_programs, "pitches": cal_pitches, "split": "validation"},
        "fora_refresh_steps": calibrated_refresh_steps(outputs, budget),
        "magcache_ratios": magcache_ratios(pipe, base_gen, cal_programs, cal_pitches, args.seed + 10_000),
    }
    calibration["seconds"] = time.perf_counter() - started
    cfgs = configs(calibration, args.steps)
    if args.configs:
        cfgs = {k: v for k, v in cfgs.items() if k == "baseline" or k in args.configs}

    generators, counters = {}, {}
    for name, (apply, hooks) in cfgs.items():
        model = copy.deepcopy(pipe.transformer)
        counters[name] = ComputeCounter(model)
        apply(model)
        generators[name] = NoteGenerator(MelDiTPipeline(model, pipe.scheduler), args, hooks)

    batches = [
        (programs[i : i + args.batch_size], pitches[i : i + args.batch_size], args.seed + i)
        for i in range(0, len(programs), args.batch_size)
    ]
    seconds = {name: 0.0 for name in cfgs}
    batch_seconds: dict[str, list[float]] = {name: [] for name in cfgs}
    mels: dict[str, list[torch.Tensor]] = {name: [] for name in cfgs}
    for b, batch in enumerate(batches):
        for name in list(cfgs) if b % 2 == 0 else list(cfgs)[::-1]:
            start = time.perf_counter()
            mels[name].append(generators[name](*batch))
            elapsed = time.perf_counter() - start
            seconds[name] += elapsed
            batch_seconds[name].append(elapsed)
        print(f"batch {b + 1}/{len(batches)} done", flush=True)

    base = torch.cat(mels["baseline"])
    compute = {name: counter.take() for name, counter in counters.items()}
    rows = {}
    for name in cfgs:
        out = torch.cat(mels[name])
        (calls, tokens), (base_calls, base_tokens) = compute[name], compute["baseline"]
        scores = note_metrics(clf, out, programs, pitches)
        ratios = [a / c for a, c in zip(batch_seconds["baseline"], batch_seconds[name], strict=True)]
        rows[name] = {
            # the median of the per-batch ratios: each batch times every config within minutes of its baseline
            "speedup": statistics.median(ratios),
            "speedup_total_time": seconds["baseline"] / seconds[name],
            "batch_speedups": ratios,
            "seconds": seconds[name],
            "compute": {"attn_mlp_calls": calls / base_calls, "attn_mlp_tokens": tokens / base_tokens},
            **fidelity(out, base),
            **{k: scores[k] for k in ("instrument_accuracy", "family_accuracy", "pitch_accuracy")},
        }
        print(
            f"{name:26s} " + "  ".join(f"{k} {v:.3f}" for k, v in rows[name].items() if isinstance(v, float))
        )

    base_acc = rows["baseline"]["instrument_accuracy"]
    targets = {
        "fora_N3": {
            **TARGETS["fora_N3"],
            "measured_speedup": rows.get("fora_N3", {}).get("speedup"),
            "measured_accuracy_drop_points": 100 * (base_acc - rows["fora_N3"]["instrument_accuracy"])
            if "fora_N3" in rows
            else None,
        },
        "tome_0.5": {
            **TARGETS["tome_0.5"],
            "measured_speedup": {k: rows[k]["speedup"] for k in ("tome_0.5", "tome_0.5_mlp") if k in rows},
        },
    }
    equal = [k for k in ("fora_N3", "fora_taylor1_N3", "fora_calibrated_N3") if k in rows]
    env = environment()
    payload = {
        "benchmark": "dit_plugins_quality",
        "hardware": {k: v for k, v in env.items() if k not in ("versions", "pretrained")},
        "versions": env["versions"],
        "settings": {**vars(args), "num_notes": len(programs), "programs": programs, "pitches": pitches},
        "load_average_at_end": os.getloadavg(),
        "targets": targets,
        "beyond_fora_at_equal_compute": {
            "configs": {
                k: {m: rows[k][m] for m in ("mel_l1", "psnr_db", "compute", "speedup")} for k in equal
            },
            "lowest_mel_l1": min(equal, key=lambda k: rows[k]["mel_l1"]) if equal else None,
        },
        "calibration": calibration,
        "results": rows,
        "guidance_note": "guidance_scale defaults to the pipeline's default (1.0, no unconditional batch). A check "
        "with meldit-notes (600 steps) on 24 evenly spread test notes gave baseline instrument accuracy 0.21 / 0.29 / "
        "0.29 at guidance 1 / 2 / 4: two notes more, at twice the cost, so not clearly higher; re-check with a "
        "better checkpoint (--guidance-scale).",
        "note": "fidelity is to the unaccelerated output of the same notes and noise; accuracy uses the bundled "
        "note classifier (1 note = 100 / num_notes points). Speedups are ratios of times taken in turn on a "
        "shared CPU.",
    }
    out_path = Path(args.out)
    write_results(out_path.with_suffix(".json"), payload)
    plot(rows, out_path.with_suffix(".png"), f"{cpu_model()}, {args.threads} thread", args)
    print(f"wrote {out_path.with_suffix('.json')} and {out_path.with_suffix('.png')}")
    return payload


def plot(rows: dict[str, dict], path: Path, hardware: str, args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = {
        "ToMe": "tab:blue",
        "FORA": "tab:orange",
        "FORA + Taylor (ours)": "tab:red",
        "diffusers": "tab:green",
    }
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    names = [n for n in rows if n != "baseline"]
    for k, name in enumerate(names):
        row = rows[name]
        family = "FORA + Taylor (ours)" if "taylor1" in name and name.startswith("fora") else None
        family = family or {"tome": "ToMe", "fora": "FORA"}.get(name.split("_")[0], "diffusers")
        axes[0].scatter(row["speedup"], row["psnr_db"], color=families[family], s=28)
        axes[0].annotate(
            name, (row["speedup"], row["psnr_db"]), fontsize=7, xytext=(3, 2), textcoords="offset points"
        )
        jitter = 0.004 * (k % 5 - 2)  # accuracies are multiples of 1 / num_notes: spread the points a little
        axes[1].scatter(row["speedup"], row["instrument_accuracy"] + jitter, color=families[family], s=28)
    for family, color in families.items():
        axes[1].scatter([], [], color=color, label=family)
    base_acc = rows["baseline"]["instrument_accuracy"]
    axes[1].axhspan(base_acc - 0.02, base_acc + 0.02, color="gray", alpha=0.25, label="baseline +- 2 points")
    axes[1].axvline(2.5, color="tab:red", lw=0.8, ls="--", label="FORA N=3 target 2.5x")
    axes[0].set(
        xlabel="speedup over the unaccelerated pipeline (x)", ylabel="PSNR to the baseline output (dB)"
    )
    axes[1].set(
        xlabel="speedup over the unaccelerated pipeline (x)",
        ylabel="instrument accuracy (classifier, jittered)",
    )
    axes[1].legend(fontsize=8)
    fig.suptitle(
        f"trained MelDiT ({Path(args.model).name}), {args.num_notes} notes, {args.steps} Euler steps, guidance "
        f"{args.guidance_scale}; {hardware[:60]} (red: FORA + Taylor forecast, ours)",
        fontsize=9,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default=str(pretrained_path("meldit-notes")), help="a MelDiTPipeline folder"
    )
    parser.add_argument("--classifier", default=None, help="NoteClassifier folder (default: the bundled one)")
    parser.add_argument("--corpus", default="corpora/instruments")
    parser.add_argument("--num-notes", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=4, help="notes per batch (one timing sample each)")
    parser.add_argument(
        "--calibration-notes", type=int, default=8, help="validation notes for the calibrations"
    )
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--velocity", type=int, default=80)
    parser.add_argument("--guidance-scale", type=float, default=None, help="default: the pipeline's default")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--configs", nargs="+", default=None, help="config names to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 4 notes, 8 steps, a few configs")
    parser.add_argument("--out", default="benchmarks/results/dit_plugins_quality")
    args = parser.parse_args(argv)
    if args.quick:
        args.num_notes, args.batch_size, args.calibration_notes, args.steps = 4, 2, 2, 8
        args.configs = args.configs or QUICK_CONFIGS
    return args


if __name__ == "__main__":
    main(parse_args())
