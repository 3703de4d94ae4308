"""DiT acceleration plugins on CPU: ToMe and FORA (ours) vs diffusers' cache hooks, side by side.

For each model a fixed denoising loop (descending timesteps, so the step trackers see one
generation per call) is timed with every acceleration config, interleaved in one process by
:func:`accelerando.metrics.timing.compare_speed`; the first config is the unaccelerated baseline:

- ``dit_s2``: diffusers ``DiTTransformer2DModel``, DiT-S/2-like (12 layers, 384 wide, 6 heads),
  32 x 32 latent, patch 2 -> 256 tokens, 16 steps (``--large`` adds 64 x 64 -> 1024 tokens);
- ``pixart_s2``: diffusers ``PixArtTransformer2DModel`` of the same size with cross-attention to
  16 random caption tokens, 256 tokens, 16 steps;
- ``meldit_small``: ``MelDiT.from_preset("small")`` (80 x 128 mel, (4, 4) patches -> 640 tokens),
  32 Euler steps.

Configs: ToMe ratio 0.3 / 0.5 / 0.7 (``accelerando.accelerate_dit.apply_tome``); FORA N = 2 / 3 / 4
(``apply_fora``); diffusers hooks where they apply — FirstBlockCache, PyramidAttentionBroadcast and
TaylorSeerCache (interval 3, first order, caching the same sub-modules as FORA), driven through a cache context set by hand (these two diffusers models lack
``CacheMixin.cache_context``) and reset before every generation. Hooks that do not apply are listed
under ``skipped`` with the reason.

Weights are random (seed 0), so only the speed is meaningful. The output distance to the baseline
(relative L2 of the total Euler displacement ``x_end - x_start``) is reported for information: on random weights it says nothing
about fidelity, and FirstBlockCache's speed depends on how often its threshold triggers, which
random weights decide arbitrarily. Issue targets: FORA N=3 >= 2.5x and ToMe 0.5 >= 1.4x on
MelDiT's 640 tokens. Writes ``benchmarks/results/dit_plugins_speed.{json,png}``::

    python benchmarks/dit_plugins_speed.py            # 2 threads, 3 repeats
    python benchmarks/dit_plugins_speed.py --quick    # smoke run: tiny models, 1 repeat
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from diffusers import DiTTransformer2DModel, PixArtTransformer2DModel
from diffusers import hooks as dhooks
from diffusers.hooks.hooks import CacheContext, HookRegistry, _set_cache_context
from torch import nn

from accelerando.accelerate_dit import FORAConfig, ToMeConfig, apply_fora, apply_tome
from accelerando.generation import MelDiT
from accelerando.metrics.report import environment, write_results
from accelerando.metrics.timing import compare_speed, cpu_model

TARGETS = {"meldit_small": {"fora_N3": 2.5, "tome_0.5": 1.4}}
DIT_S = {"num_attention_heads": 6, "attention_head_dim": 64, "num_layers": 12}
_T = {"now": 1000.0}  # the loop's current timestep, read by PAB's current_timestep_callback
TINY = {"num_attention_heads": 2, "attention_head_dim": 16, "num_layers": 2}


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random values for every weight (adaLN-zero and output layers included), so every block computes.

    Matrices get ``N(0, 1 / fan_in)`` (unit-gain), vectors ``N(0, 0.02^2)``.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            std = (p[0].numel() ** -0.5) if p.dim() >= 2 else 0.02
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return model.eval()


# ---------------------------------------------------------------------------------------------- models


class Case:
    """A model and its denoising loop: ``run(model)`` returns the final sample."""

    def __init__(self, name: str, model: nn.Module, steps: int, tokens: int, describe: str) -> None:
        self.name, self.model, self.steps, self.tokens, self.describe = name, model, steps, tokens, describe
        self.diffusers_model = isinstance(model, DiTTransformer2DModel | PixArtTransformer2DModel)

    def call(self, model: nn.Module, x: torch.Tensor, t: float) -> torch.Tensor:
        raise NotImplementedError

    def init(self) -> torch.Tensor:
        raise NotImplementedError

    @torch.inference_mode()
    def run(self, model: nn.Module, diffusers_hooks: bool) -> torch.Tensor:
        """``steps`` calls at descending timesteps 1000 -> 1000 / steps, Euler updates; returns ``x_end - x_start``."""
        if diffusers_hooks:
            HookRegistry.check_if_exists_or_initialize(model).reset_stateful_hooks()
        x0 = x = self.init()
        ts = torch.linspace(1.0, 0.0, self.steps + 1)
        for i in range(self.steps):
            t, dt = float(ts[i]) * 1000.0, float(ts[i + 1] - ts[i])
            _T["now"] = t
            ctx = _cache_context(model, i, self.steps, t) if diffusers_hooks else contextlib.nullcontext()
            with ctx:
                v = self.call(model, x, t)
            x = x + dt * v
        return x - x0  # the displacement the model made (random weights move x only slightly)


@contextlib.contextmanager
def _cache_context(model: nn.Module, step: int, steps: int, t: float) -> Iterator[None]:
    """What ``CacheMixin.cache_context("cond", ...)`` does, for models without the mixin."""
    _set_cache_context(model, CacheContext("cond", step_index=step, num_inference_steps=steps, timestep=t))
    try:
        yield
    finally:
        _set_cache_context(model, None)


class DiTCase(Case):
    def __init__(self, size: int, arch: dict, steps: int) -> None:
        model = DiTTransformer2DModel(
            **arch, in_channels=4, out_channels=8, sample_size=size, patch_size=2, num_embeds_ada_norm=1000
        )
        tokens = (size // 2) ** 2
        super().__init__(
            f"dit_s2_{tokens}tok",
            randomize(model),
            steps,
            tokens,
            f"DiTTransformer2DModel {arch}, latent 4x{size}x{size}, patch 2, class-conditional, batch 1",
        )
        self.size = size

    def init(self) -> torch.Tensor:
        return torch.randn(1, 4, self.size, self.size, generator=torch.Generator().manual_seed(1))

    def call(self, model: nn.Module, x: torch.Tensor, t: float) -> torch.Tensor:
        out = model(x, timestep=torch.tensor([t]), class_labels=torch.tensor([7])).sample
        return out[:, :4]


class PixArtCase(Case):
    def __init__(self, size: int, arch: dict, steps: int, caption_channels: int) -> None:
        width = arch["num_attention_heads"] * arch["attention_head_dim"]
        model = PixArtTransformer2DModel(
            **arch,
            in_channels=4,
            out_channels=8,
            sample_size=size,
            patch_size=2,
            cross_attention_dim=width,
            caption_channels=caption_channels,
        )
        tokens = (size // 2) ** 2
        super().__init__(
            f"pixart_s2_{tokens}tok",
            randomize(model),
            steps,
            tokens,
            f"PixArtTransformer2DModel {arch}, latent 4x{size}x{size}, patch 2, 16 caption tokens "
            f"x {caption_channels}, batch 1",
        )
        self.size = size
        self.caption = torch.randn(1, 16, caption_channels, generator=torch.Generator().manual_seed(2))

    def init(self) -> torch.Tensor:
        return torch.randn(1, 4, self.size, self.size, generator=torch.Generator().manual_seed(1))

    def call(self, model: nn.Module, x: torch.Tensor, t: float) -> torch.Tensor:
        out = model(
            x,
            encoder_hidden_states=self.caption,
            timestep=torch.tensor([t]),
            added_cond_kwargs={"resolution": None, "aspect_ratio": None},
        ).sample
        return out[:, :4]


class MelDiTCase(Case):
    def __init__(self, steps: int, tiny: bool) -> None:
        overrides = {"hidden_size": 32, "num_layers": 2, "num_attention_heads": 2} if tiny else {}
        model = randomize(MelDiT.from_preset("small", **overrides))
        cfg = model.config
        grid = (cfg.n_mels // cfg.patch_size[0]) * (cfg.num_frames // cfg.patch_size[1])
        super().__init__(
            "meldit_small",
            model,
            steps,
            grid,
            f"MelDiT.from_preset('small'{', tiny overrides' if tiny else ''}): 1 x {cfg.n_mels} x "
            f"{cfg.num_frames} mel, patch {tuple(cfg.patch_size)}, batch 1, Euler",
        )
        self.shape = (1, 1, cfg.n_mels, cfg.num_frames)

    def init(self) -> torch.Tensor:
        return torch.randn(self.shape, generator=torch.Generator().manual_seed(1))

    def call(self, model: nn.Module, x: torch.Tensor, t: float) -> torch.Tensor:
        labels = {"program": torch.tensor([0]), "pitch": torch.tensor([60]), "velocity": torch.tensor([100])}
        return model(x, timestep=torch.tensor([t]), **labels).sample


# --------------------------------------------------------------------------------------------- configs


def _current_timestep() -> float:
    return _T["now"]


def configs(case: Case) -> tuple[dict[str, tuple[Callable[[nn.Module], Any], bool]], dict[str, str]]:
    """``{name: (apply(model), uses_diffusers_hooks)}`` for this case, and ``{name: reason}`` skipped."""
    out: dict[str, tuple[Callable[[nn.Module], Any], bool]] = {"baseline": (lambda m: None, False)}
    for ratio in (0.3, 0.5, 0.7):
        out[f"tome_{ratio}"] = (lambda m, r=ratio: apply_tome(m, ToMeConfig(ratio=r)), False)
    for n in (2, 3, 4):
        out[f"fora_N{n}"] = (lambda m, n=n: apply_fora(m, FORAConfig(interval=n)), False)
    skipped: dict[str, str] = {}
    if case.diffusers_model:
        for thr in (0.1, 0.4):
            out[f"diffusers_fbc_{thr}"] = (
                lambda m, thr=thr: dhooks.apply_first_block_cache(
                    m, dhooks.FirstBlockCacheConfig(threshold=thr)
                ),
                True,
            )
    else:
        skipped["diffusers_fbc"] = (
            "FirstBlockCache: MelDiTBlock is not in diffusers' transformer-block registry"
        )
    for k in (2, 3):
        out[f"diffusers_pab_{k}"] = (
            lambda m, k=k: dhooks.apply_pyramid_attention_broadcast(
                m,
                dhooks.PyramidAttentionBroadcastConfig(
                    spatial_attention_block_skip_range=k,
                    spatial_attention_timestep_skip_range=(-1, 1001),  # every step, like FORA
                    current_timestep_callback=_current_timestep,
                ),
            ),
            True,
        )
    out["diffusers_taylorseer_3"] = (
        lambda m: dhooks.apply_taylorseer_cache(
            m,
            dhooks.TaylorSeerCacheConfig(
                cache_interval=3,
                disable_cache_before_step=1,
                max_order=1,
                taylor_factors_dtype=torch.float32,  # bf16 factors are slow on CPU
                # The default patterns (re.fullmatch "^transformer_blocks.*attn") miss "attn1": name the
                # sub-modules FORA caches too.
                cache_identifiers=[r"transformer_blocks\.\d+\.(attn1|attn2|ff)"],
            ),
        ),
        True,
    )
    skipped["diffusers_fastercache"] = (
        "FasterCache: fails on these models in diffusers 0.42.1 (TypeError 'NoneType' object is not "
        "subscriptable; it expects a pipeline-driven guidance setup)"
    )
    skipped["diffusers_magcache"] = (
        "MagCache: needs model-specific mag_ratios from a calibration run on trained weights; "
        "meaningless with random weights"
    )
    return out, skipped


def bench_case(case: Case, repeats: int, warmup: int) -> dict[str, Any]:
    cfgs, skipped = configs(case)
    models: dict[str, nn.Module] = {}
    for name, (apply, _) in cfgs.items():
        models[name] = copy.deepcopy(case.model) if name != "baseline" else case.model
        apply(models[name])

    def runner(name: str) -> Callable[[], torch.Tensor]:
        hooks = cfgs[name][1]

        def run() -> torch.Tensor:
            return case.run(models[name], hooks)

        return run

    outputs = {name: runner(name)() for name in cfgs}  # one untimed pass each (also a warm-up)
    base = outputs["baseline"]
    timing = compare_speed({name: runner(name) for name in cfgs}, repeats=repeats, warmup=warmup)
    med = {name: r["median_s"] for name, r in timing["results"].items()}
    return {
        "model": case.describe,
        "tokens": case.tokens,
        "steps": case.steps,
        "median_s": med,
        "speedup": timing["speedup_over_baseline"],
        "rel_l2_to_baseline": {n: float((o - base).norm() / base.norm()) for n, o in outputs.items()},
        # Configs whose output is bit-identical to the baseline skipped nothing in this loop (e.g. a
        # FirstBlockCache threshold that random weights never meet).
        "no_effect": [n for n, o in outputs.items() if n != "baseline" and torch.equal(o, base)],
        "skipped": skipped,
        "timing": timing,
    }


def plot(results: dict[str, dict], path: Path, hardware: str, threads: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 4.0), squeeze=False)
    for ax, (name, res) in zip(axes[0], results.items(), strict=True):
        names = list(res["speedup"])
        vals = [res["speedup"][n] for n in names]
        colors = [
            "gray"
            if n == "baseline"
            else "tab:blue"
            if n.startswith("tome")
            else "tab:orange"
            if n.startswith("fora")
            else "tab:green"
            for n in names
        ]
        ax.bar(range(len(names)), vals, color=colors)
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
        for i, v in enumerate(vals):
            ax.annotate(f"{v:.2f}", (i, v), ha="center", va="bottom", fontsize=7)
        for cfg, target in TARGETS.get(name, {}).items():
            if cfg in names:
                i = names.index(cfg)
                ax.plot([i - 0.4, i + 0.4], [target, target], color="red", lw=2)
        ax.axhline(1.0, color="k", lw=0.6)
        ax.set_title(f"{name}: {res['tokens']} tokens, {res['steps']} steps", fontsize=9)
        ax.set_ylabel("speedup over baseline (x)")
    fig.suptitle(
        f"random weights, speed only; {hardware[:70]}, {threads} threads (red: issue targets)", fontsize=8
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=0, help="extra warm-ups (one untimed pass always runs)")
    parser.add_argument("--dit_steps", type=int, default=16)
    parser.add_argument("--meldit_steps", type=int, default=32)
    parser.add_argument("--large", action="store_true", help="also DiT-S/2 at 64 x 64 latents (1024 tokens)")
    parser.add_argument("--only", nargs="+", default=None, help="case names to run (default: all)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: tiny models, 4 steps, 1 repeat, 1 thread"
    )
    parser.add_argument("--out", default="benchmarks/results/dit_plugins_speed")
    args = parser.parse_args(argv)
    arch = TINY if args.quick else DIT_S
    if args.quick:
        args.repeats, args.dit_steps, args.meldit_steps, args.threads = 1, 4, 4, 1
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cases: list[Case] = [DiTCase(32, arch, args.dit_steps)]
    if args.large:
        cases.append(DiTCase(64, arch, args.dit_steps))
    cases += [
        PixArtCase(32, arch, args.dit_steps, 64 if args.quick else 1024),
        MelDiTCase(args.meldit_steps, args.quick),
    ]
    if args.only:
        cases = [c for c in cases if c.name in args.only]

    results: dict[str, dict] = {}
    for case in cases:
        res = bench_case(case, args.repeats, args.warmup)
        results[case.name] = res
        print(f"\n{case.name} ({case.tokens} tokens, {case.steps} steps)")
        for n, s in res["speedup"].items():
            print(
                f"  {n:24s} {res['median_s'][n]:8.3f} s  x{s:5.2f}  rel-L2 to baseline "
                f"{res['rel_l2_to_baseline'][n]:.2e}",
                flush=True,
            )
    hardware = f"{cpu_model()} ({os.cpu_count()} logical CPUs visible, shared)"
    targets = {
        case: {
            cfg: {
                "target": t,
                "measured": results[case]["speedup"].get(cfg),
                "met": (results[case]["speedup"].get(cfg) or 0.0) >= t,
            }
            for cfg, t in cfgs.items()
        }
        for case, cfgs in TARGETS.items()
        if case in results
    }
    payload = {
        "benchmark": "dit_plugins_speed",
        "what": "fixed denoising loops (descending timesteps), per-config median time and speedup vs the "
        "unaccelerated model, timed interleaved (compare_speed)",
        "weights": "random (seed 0): speed only; rel_l2_to_baseline is for information and says nothing "
        "about fidelity",
        "hardware": hardware,
        "threads": args.threads,
        "quick": args.quick,
        "repeats": args.repeats,
        "load_average_at_end": os.getloadavg(),
        "targets": targets,
        "results": results,
        "environment": environment(),
    }
    out = Path(args.out)
    write_results(out.with_suffix(".json"), payload)
    plot(results, out.with_suffix(".png"), hardware, args.threads)
    print(f"targets: {targets}")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")
    return payload


if __name__ == "__main__":
    main()
