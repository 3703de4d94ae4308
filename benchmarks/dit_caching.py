"""Feature caching on MelDiT: speed vs fidelity of FORA's levels, forecasts and adaptive refresh, and diffusers' peers.

Every config generates the same notes from the same noise with ``MelDiTPipeline`` (the bundled ``meldit-notes``,
32 Euler steps, the pipeline's default guidance) at batch 1 and batch 4, 1 torch thread, in one process:

- ``speedup``: the median time of the plain pipeline over the config's median, timed interleaved (every repeat runs
  every config in turn, the order reversed every other repeat; each repeat draws new notes);
- ``psnr_db``: PSNR of the config's log-mel against the plain 32-step output of the same notes and batch (peak:
  each plain note's dynamic range; mean over notes), ``mel_l1`` likewise;
- ``refreshes``: model calls that ran the cached part per generation (the rest were forecast); ``call_bound`` =
  steps / refreshes, what the saved calls alone allow (a measured speedup above it means the machine's load moved
  between the runs); ``speedup_paired`` (median of per-repeat ratios) and ``speedup_best`` (fastest runs) are
  recorded for information.

Configs: ``fora_<forecast>_N<n>`` (today's FORA: each block's attention / MLP cached; ``none`` / ``taylor1`` /
``taylor2``, N = 2..6), ``output_<forecast>_N<n>`` (``FORAConfig(level="output")``: the model's output is cached and
forecast, a cached step runs nothing of the model), ``output_noise_taylor1_N<n>`` (the same with
``forecast_space="noise"``: the noise estimate ``x + (1 - s) v`` is forecast and turned back into a velocity with
the current input), ``output[_noise]_taylor1_front8`` (8 refreshes at the front-loaded steps ``FRONT8``),
``blocks_taylor1_N<n>`` (the residual of the block stack; the
embedders and final layer still run), ``adaptive_<thr>[_max<k>]`` (``FORAConfig(level="blocks", threshold=thr,
max_cached_steps=k)``: the calibration-free refresh on the first block's modulated input), diffusers'
``TaylorSeerCache`` (the same sub-modules as FORA, intervals 3-5, order 1 and 2) and ``MagCache`` (its
``mag_ratios`` from its own calibration mode on two other notes, thresholds 0.12-0.5). Notes: the trained programs of the checkpoint in turn, pitches 48-83 (the
instrument corpus is not needed). Also the speed (random weights, 16 steps, batch 1) of the new levels on diffusers'
``DiTTransformer2DModel`` and ``PixArtTransformer2DModel`` (DiT-S/2-like, 256 tokens), via ``dit_plugins_speed``.

Writes ``benchmarks/results/dit_caching.{json,png}``::

    python benchmarks/dit_caching.py                 # 6 repeats at batch 1, 5 at batch 4: 20-25 minutes here
    python benchmarks/dit_caching.py --quick         # smoke run: 8 steps, a few configs, 1 repeat
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from diffusers import hooks as dhooks
from dit_plugins_quality import NoteGenerator, fidelity, magcache_ratios
from dit_plugins_speed import (
    DIT_S,
    TINY,
    DiTCase,
    PixArtCase,
    diffusers_taylorseer,
    fora,
    register_meldit_block,
)
from torch import nn

from accelerando.generation import MelDiTPipeline
from accelerando.metrics.report import environment, save_figure, write_results
from accelerando.metrics.timing import compare_speed, cpu_model
from accelerando.pretrained import pretrained_path

TARGET = {"speedup": 3.5, "psnr_db": 40.0}
# 8 refreshes of a 32-step generation, front-loaded: found by a coordinate search over the refresh steps on 8
# validation-style notes (other pitches, programs and seeds than the notes below) with the noise-space forecast,
# benchmarks/dit_caching_schedule.py; scaled to other step counts.
FRONT8 = (0, 2, 3, 5, 8, 12, 20, 29)


def scale_steps(listed: tuple[int, ...], steps: int) -> list[int]:
    """Refresh steps listed for 32 steps, scaled to ``steps`` (repeats dropped)."""
    return sorted({min(steps - 1, round(s * steps / 32)) for s in listed})


def front8(steps: int) -> list[int]:
    """``FRONT8`` scaled from 32 steps to ``steps``."""
    return scale_steps(FRONT8, steps)


Apply = Callable[[nn.Module], Any]


def meldit_configs(mag_ratios: list[float], steps: int, quick: bool) -> dict[str, tuple[Apply, bool]]:
    """``{name: (apply(model), uses diffusers hooks)}``."""
    out: dict[str, tuple[Apply, bool]] = {"plain": (lambda m: None, False)}
    intervals = (3, 4) if quick else (2, 3, 4, 5, 6)
    for forecast in ("none", "taylor1", "taylor2"):
        for n in intervals:
            out[f"fora_{forecast}_N{n}"] = (fora(n, forecast), False)
    for forecast in ("none", "taylor1", "taylor2"):
        for n in intervals:
            out[f"output_{forecast}_N{n}"] = (fora(n, forecast, level="output"), False)
    for n in (3, 4):
        out[f"output_noise_taylor1_N{n}"] = (
            fora(n, "taylor1", level="output", forecast_space="noise"),
            False,
        )
    front = {"refresh_steps": front8(steps), "interval": steps}  # nothing refreshes after the listed steps
    out["output_taylor1_front8"] = (fora(forecast="taylor1", level="output", **front), False)
    out["output_noise_taylor1_front8"] = (
        fora(forecast="taylor1", level="output", forecast_space="noise", **front),
        False,
    )
    for n in (3, 4, 5):
        out[f"blocks_taylor1_N{n}"] = (fora(n, "taylor1", level="blocks"), False)
    for thr, most in ((0.1, None), (0.14, None), (0.2, 3)):
        name = f"adaptive_{thr}" + (f"_max{most}" if most else "")
        out[name] = (fora(1, "taylor1", level="blocks", threshold=thr, max_cached_steps=most), False)
    for n, order in ((3, 1), (4, 1), (5, 1), (4, 2)):
        out[f"taylorseer_N{n}_o{order}"] = (diffusers_taylorseer(n, order), True)
    for thr, skips in ((0.12, 4), (0.24, 5), (0.5, 6)):
        out[f"magcache_{thr}"] = (magcache(mag_ratios, steps, thr, skips), True)
    if quick:
        keep = ("plain", "fora_taylor1_N3", "output_taylor1_N4", "output_noise_taylor1_front8", "blocks_taylor1_N4",
                "adaptive_0.1")  # fmt: skip
        out = {k: v for k, v in out.items() if k in keep or k.startswith(("taylorseer_N4", "magcache_0.12"))}
    return out


def count_refreshes(model: nn.Module) -> list[int]:
    """A counter of the calls whose first block really ran its attention (a hook below every cache wrapper)."""
    count = [0]
    model.transformer_blocks[0].attn1.to_q.register_forward_pre_hook(
        lambda *_: count.__setitem__(0, count[0] + 1)
    )
    return count


def magcache(mag_ratios: list[float], steps: int, threshold: float, max_skip_steps: int) -> Apply:
    config = dhooks.MagCacheConfig(
        threshold=threshold, max_skip_steps=max_skip_steps, mag_ratios=torch.tensor(mag_ratios),
        num_inference_steps=steps,
    )  # fmt: skip
    return lambda m: dhooks.apply_mag_cache(m, config)


def notes(programs: list[int], batch: int, repeat: int) -> tuple[list[int], list[int]]:
    """The notes of one repeat: programs in turn, pitches 48-83 spread by fifths."""
    index = [repeat * batch + i for i in range(batch)]
    return [programs[(5 * i) % len(programs)] for i in index], [48 + (7 * i) % 36 for i in index]


def bench_meldit(pipe: MelDiTPipeline, args: argparse.Namespace) -> dict[str, Any]:
    programs = pipe.transformer.config.trained_programs or [0]
    calib = magcache_ratios(
        pipe, NoteGenerator(pipe, args, False), [programs[1], programs[-1]], [57, 69], 999
    )
    cfgs = meldit_configs(calib, args.steps, args.quick)
    generators, counts = {}, {}
    for name, (apply, hooks) in cfgs.items():
        model = copy.deepcopy(pipe.transformer)
        counts[name] = count_refreshes(model)
        apply(model)
        generators[name] = NoteGenerator(MelDiTPipeline(model, pipe.scheduler), args, hooks)
    results: dict[str, Any] = {}
    for batch, repeats in ((1, args.repeats_b1), (4, args.repeats_b4)):
        if batch == 1:  # one untimed pass each
            for name in cfgs:
                generators[name](*notes(programs, batch, 100), seed=0)
        times: dict[str, list[float]] = {n: [] for n in cfgs}
        mels: dict[str, list[torch.Tensor]] = {n: [] for n in cfgs}
        calls = {n: 0 for n in cfgs}
        for rep in range(repeats):
            batch_notes = notes(programs, batch, rep)
            for name in list(cfgs) if rep % 2 == 0 else list(cfgs)[::-1]:
                counts[name][0] = 0
                with torch.inference_mode():
                    start = time.perf_counter()
                    mels[name].append(generators[name](*batch_notes, seed=1000 + rep))
                    times[name].append(time.perf_counter() - start)
                calls[name] += counts[name][0]
            print(f"batch {batch}: repeat {rep + 1}/{repeats} done", flush=True)
        base = torch.cat(mels["plain"])
        plain = statistics.median(times["plain"])
        rows = {}
        for name in cfgs:
            rows[name] = {
                "speedup": plain / statistics.median(times[name]),
                # for information: the median of the per-repeat ratios, the fastest runs' ratio, and what the number
                # of model calls alone allows (steps / calls that ran the blocks)
                "speedup_paired": statistics.median(
                    p / t for p, t in zip(times["plain"], times[name], strict=True)
                ),
                "speedup_best": min(times["plain"]) / min(times[name]),
                "call_bound": args.steps / max(calls[name] / repeats, 1),
                **fidelity(torch.cat(mels[name]), base),
                "refreshes": calls[name] / repeats,
                "median_s": statistics.median(times[name]),
                "times_s": times[name],
            }
            r = rows[name]
            print(
                f"  b{batch} {name:22s} x{r['speedup']:5.2f}  {r['psnr_db']:6.2f} dB  {r['refreshes']:4.1f} refreshes"
            )
        results[f"batch_{batch}"] = {"notes": repeats * batch, "repeats": repeats, "configs": rows}
    return {"configs": list(cfgs), "magcache_ratios": calib, "results": results}


def bench_diffusers(args: argparse.Namespace) -> dict[str, Any]:
    """Speed only (random weights): the new levels next to FORA and TaylorSeerCache on DiT-S/2 and PixArt."""
    arch = TINY if args.quick else DIT_S
    steps = 4 if args.quick else 16
    out = {}
    for case in (DiTCase(32, arch, steps), PixArtCase(32, arch, steps, 64 if args.quick else 1024)):
        cfgs: dict[str, tuple[Apply, bool]] = {
            "plain": (lambda m: None, False),
            "fora_taylor1_N3": (fora(3, "taylor1"), False),
            "output_taylor1_N4": (fora(4, "taylor1", level="output"), False),
            "blocks_taylor1_N4": (fora(4, "taylor1", level="blocks"), False),
            "adaptive_0.1": (fora(1, "taylor1", level="blocks", threshold=0.1), False),
            "taylorseer_N4_o1": (diffusers_taylorseer(4, 1), True),
        }
        models = {}
        for name, (apply, _) in cfgs.items():
            models[name] = copy.deepcopy(case.model)
            apply(models[name])

        def runner(
            name: str, case: Any = case, models: dict = models, hooks: bool = False
        ) -> Callable[[], Any]:
            return lambda: case.run(models[name], hooks)

        timing = compare_speed(
            {n: runner(n, hooks=cfgs[n][1]) for n in cfgs}, repeats=args.repeats_diffusers, warmup=1
        )
        out[case.name] = {"model": case.describe, "steps": steps, "speedup": timing["speedup_over_baseline"]}
        print(case.name, {k: round(v, 2) for k, v in timing["speedup_over_baseline"].items()}, flush=True)
    return out


def plot(meldit: dict[str, Any], path: Path, hardware: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = {
        "fora_none": ("FORA (sub-modules), repeat", "tab:orange", "o"),
        "fora_taylor1": ("FORA (sub-modules), taylor1", "tab:orange", "s"),
        "fora_taylor2": ("FORA (sub-modules), taylor2", "tab:orange", "^"),
        "output_none": ("output level, repeat", "tab:blue", "o"),
        "output_taylor1": ("output level, taylor1", "tab:blue", "s"),
        "output_taylor2": ("output level, taylor2", "tab:blue", "^"),
        "output_noise_taylor1": ("output level, noise-space taylor1", "tab:cyan", "*"),
        "blocks_taylor1": ("block stack, taylor1", "tab:purple", "s"),
        "adaptive": ("adaptive (block stack, taylor1)", "tab:red", "D"),
        "taylorseer": ("diffusers TaylorSeerCache", "tab:green", "v"),
        "magcache": ("diffusers MagCache (calibrated)", "tab:gray", "P"),
    }
    batches = meldit["results"]
    fig, axes = plt.subplots(1, len(batches), figsize=(7.5 * len(batches), 5.5), squeeze=False)
    for ax, (batch, res) in zip(axes[0], batches.items(), strict=True):
        seen = set()
        for name, row in res["configs"].items():
            family = next((f for f in families if name.startswith(f + "_")), None)
            if family is None or row["psnr_db"] is None or not (row["psnr_db"] < float("inf")):
                continue
            label, color, marker = families[family]
            ax.scatter(
                row["speedup"], row["psnr_db"], color=color, marker=marker,
                label=None if family in seen else label, s=36, alpha=0.85,
            )  # fmt: skip
            seen.add(family)
            ax.annotate(name[len(family) + 1 :], (row["speedup"], row["psnr_db"]),
                        fontsize=6, xytext=(3, 2), textcoords="offset points")  # fmt: skip
        ax.axhline(TARGET["psnr_db"], color="k", lw=0.7, ls="--")
        ax.axvline(TARGET["speedup"], color="k", lw=0.7, ls="--")
        ax.set_xlabel("speedup over the plain 32-step pipeline (x)")
        ax.set_ylabel("PSNR of the log-mel vs the plain output (dB)")
        ax.set_title(f"MelDiT meldit-notes, {batch.replace('_', ' ')} ({res['notes']} notes)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(f"{hardware[:80]}, 1 thread; dashed: target >= 3.5x at >= 40 dB", fontsize=8)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default=str(pretrained_path("meldit-notes")), help="a MelDiTPipeline folder"
    )
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--repeats-b1", type=int, default=6, help="repeats (new notes each) at batch 1")
    parser.add_argument("--repeats-b4", type=int, default=5, help="repeats (new notes each) at batch 4")
    parser.add_argument("--repeats-diffusers", type=int, default=3)
    parser.add_argument("--velocity", type=int, default=80)
    parser.add_argument("--quick", action="store_true", help="smoke run: 8 steps, a few configs, 1 repeat")
    parser.add_argument("--out", default="benchmarks/results/dit_caching")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats_b1, args.repeats_b4, args.repeats_diffusers = 8, 1, 1, 1
    torch.set_num_threads(1)
    torch.manual_seed(0)
    pipe = MelDiTPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    pipe.transformer.eval()
    args.guidance_scale = 1.0  # the pipeline's default (no unconditional batch)
    register_meldit_block()
    started = time.perf_counter()
    meldit = bench_meldit(pipe, args)
    diffusers_speed = bench_diffusers(args)
    hardware = f"{cpu_model()} ({os.cpu_count()} logical CPUs visible, shared)"
    met = {}
    for batch, res in meldit["results"].items():
        hits = {
            n: (r["speedup"], r["psnr_db"])
            for n, r in res["configs"].items()
            if r["speedup"] >= TARGET["speedup"] and (r["psnr_db"] or 0) >= TARGET["psnr_db"]
        }
        met[batch] = {"met": bool(hits), "configs_meeting_it": hits}
    payload = {
        "benchmark": "dit_caching",
        "what": "MelDiT (meldit-notes) pipeline, 32 Euler steps: speedup (median times, interleaved repeats) and "
        "PSNR / mel L1 of the log-mel vs the plain output of the same notes, batch 1 and 4; diffusers DiT / PixArt "
        "speed with random weights",
        "hardware": hardware,
        "threads": 1,
        "quick": args.quick,
        "steps": args.steps,
        "target": TARGET,
        "target_met": met,
        "seconds": time.perf_counter() - started,
        "load_average_at_end": os.getloadavg(),
        "meldit": meldit,
        "diffusers_random_weights": diffusers_speed,
        "environment": environment(),
    }
    out = Path(args.out)
    write_results(out.with_suffix(".json"), payload)
    plot(meldit, out.with_suffix(".png"), hardware)
    print(f"target: {met}")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")
    return payload


if __name__ == "__main__":
    main()
