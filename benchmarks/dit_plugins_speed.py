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

Configs: ToMe ratio 0.3 / 0.5 / 0.7 merging before self-attention only (the paper's default) and
before the MLP too (``_mlp``); FORA N = 2 / 3 / 4 and its first-order Taylor forecast
(``fora_taylor1_N3``); diffusers' hooks where they apply -- FirstBlockCache (MelDiT's block is
registered with diffusers' block registry for it), PyramidAttentionBroadcast, TaylorSeerCache
(interval 3, first order, caching the same sub-modules as FORA) and FasterCache (attention
extrapolation only: these loops have no guidance batch), driven through a cache context set by
hand (these models lack ``CacheMixin.cache_context``) and reset before every generation. MagCache
needs ``mag_ratios`` calibrated on trained weights: it is measured in ``dit_plugins_quality.py``.

What bounds the speedups (MelDiT): two probes run with the others. ``probe_fora_cached`` refreshes
once (step 0) and reuses the caches for every other step, so its time gives the cost of a fully
cached step (embedders, adaLN gates, residual adds, final layer, the Euler update) as a fraction
``c`` of a full step; FORA with ``R`` refreshes in ``S`` steps cannot beat ``S / (R + (S - R) c)``.
``probe_tome_0.5_mlp_fixed`` reuses one matching for every block and step: the ceiling of ToMe 0.5
with free matching.

Weights are random (seed 0), so only the speed is meaningful (``dit_plugins_quality.py`` measures
fidelity on the trained MelDiT). Issue targets: FORA N=3 >= 2.5x and ToMe 0.5 >= 1.4x on MelDiT's
640 tokens. Writes ``benchmarks/results/dit_plugins_speed.{json,png}``::

    python benchmarks/dit_plugins_speed.py            # 1 thread, 3 repeats
    python benchmarks/dit_plugins_speed.py --quick    # smoke run: tiny models, 1 repeat
"""

from __future__ import annotations

import argparse
import copy
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from diffusers import DiTTransformer2DModel, PixArtTransformer2DModel
from diffusers import hooks as dhooks
from diffusers.hooks._helpers import TransformerBlockMetadata, TransformerBlockRegistry
from diffusers.hooks.hooks import CacheContext, HookRegistry, _set_cache_context
from torch import nn

from accelerando.accelerate_dit import FORAConfig, ToMeConfig, apply_fora, apply_tome
from accelerando.accelerate_dit._registry import find_blocks
from accelerando.generation import MelDiT
from accelerando.generation.mel_dit import MelDiTBlock
from accelerando.metrics.report import environment, save_figure, write_results
from accelerando.metrics.timing import compare_speed, cpu_model

# The targets; ToMe 0.5 is reported both as the paper's default (attention only) and with the MLP merged.
TARGETS = {"meldit_small": {"fora_N3": 2.5, "tome_0.5": 1.4, "tome_0.5_mlp": 1.4}}
DIT_S = {"num_attention_heads": 6, "attention_head_dim": 64, "num_layers": 12}
TINY = {"num_attention_heads": 2, "attention_head_dim": 16, "num_layers": 2}
Apply = Callable[[nn.Module], Any]


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


# ------------------------------------------------------------------- configs shared with dit_plugins_quality.py

_T = {"now": 1000.0}  # the current call's timestep, read by the diffusers hooks' timestep callbacks


def current_timestep() -> float:
    """The timestep of the model call in progress (``track_timestep`` keeps it)."""
    return _T["now"]


def track_timestep(model: nn.Module) -> torch.utils.hooks.RemovableHandle:
    """Record every call's timestep for :func:`current_timestep` (a forward pre-hook; runs before diffusers' hooks)."""

    def pre_hook(_module: nn.Module, args: tuple, kwargs: dict) -> None:
        t = kwargs.get("timestep", args[1] if len(args) > 1 else None)
        if t is not None:
            _T["now"] = float(torch.as_tensor(t).max())

    return model.register_forward_pre_hook(pre_hook, with_kwargs=True)


def register_meldit_block() -> None:
    """Describe ``MelDiTBlock`` to diffusers' (private) block registry, which FirstBlockCache and MagCache need."""
    TransformerBlockRegistry.register(MelDiTBlock, TransformerBlockMetadata(return_hidden_states_index=0))


def start_generation(model: nn.Module) -> None:
    """Reset diffusers' stateful hooks and enter a cache context, as ``CacheMixin.cache_context("cond")`` would."""
    HookRegistry.check_if_exists_or_initialize(model).reset_stateful_hooks()
    _set_cache_context(model, CacheContext("cond"))


def tome(ratio: float, mlp: bool) -> Apply:
    return lambda m: apply_tome(m, ToMeConfig(ratio=ratio, merge_mlp=mlp))


def fora(interval: int, forecast: str = "none", **kw: Any) -> Apply:
    return lambda m: apply_fora(m, FORAConfig(interval=interval, forecast=forecast, **kw))


def diffusers_fbc(threshold: float) -> Apply:
    return lambda m: dhooks.apply_first_block_cache(m, dhooks.FirstBlockCacheConfig(threshold=threshold))


def diffusers_pab(skip: int) -> Apply:
    config = dhooks.PyramidAttentionBroadcastConfig(
        spatial_attention_block_skip_range=skip,
        spatial_attention_timestep_skip_range=(-1, 1001),  # every step, like FORA
        current_timestep_callback=current_timestep,
    )
    return lambda m: dhooks.apply_pyramid_attention_broadcast(m, config)


def diffusers_taylorseer(interval: int, order: int = 1) -> Apply:
    config = dhooks.TaylorSeerCacheConfig(
        cache_interval=interval,
        disable_cache_before_step=1,
        max_order=order,
        taylor_factors_dtype=torch.float32,  # bf16 factors are slow on CPU
        # The default patterns (re.fullmatch "^transformer_blocks.*attn") miss "attn1": name the sub-modules
        # FORA caches too.
        cache_identifiers=[r"transformer_blocks\.\d+\.(attn1|attn2|ff)"],
    )
    return lambda m: dhooks.apply_taylorseer_cache(m, config)


def diffusers_fastercache(skip: int) -> Apply:
    """FasterCache's attention extrapolation (``is_guidance_distilled``: no unconditional-branch skipping, which
    assumes diffusers' [uncond; cond] batch order -- MelDiTPipeline puts the conditional rows first).

    The first step (timestep 1000) is kept out of the skip range: with ``is_guidance_distilled`` diffusers 0.42
    would skip the very first call too, with no cache yet (``TypeError``).
    """
    config = dhooks.FasterCacheConfig(
        spatial_attention_block_skip_range=skip,
        spatial_attention_timestep_skip_range=(-1, 999),
        tensor_format="BCHW",
        is_guidance_distilled=True,
        current_timestep_callback=current_timestep,
    )
    return lambda m: dhooks.apply_faster_cache(m, config)


def diffusers_magcache(mag_ratios: list[float], steps: int, threshold: float = 0.06) -> Apply:
    config = dhooks.MagCacheConfig(
        threshold=threshold, mag_ratios=torch.tensor(mag_ratios), num_inference_steps=steps
    )
    return lambda m: dhooks.apply_mag_cache(m, config)


def fixed_matching_probe(model: nn.Module) -> None:
    """ToMe 0.5 (attention and MLP) whose first matching is reused for every block and step: free matching."""
    apply_tome(model, ToMeConfig(ratio=0.5, merge_mlp=True))
    first: dict[str, Any] = {}
    for found in find_blocks(model):
        for slot in ("attn", "mlp"):
            for _, module in found.submodules(slot):
                hook = module.__dict__["_accelerando_hooks"]["tome"]
                original = hook._matching

                def reuse(image: torch.Tensor, grid: Any, r: int, original: Any = original) -> Any:
                    if "m" not in first:
                        first["m"] = original(image, grid, r)
                    return first["m"]

                hook._matching = reuse


class ComputeCounter:
    """Counts the attention and MLP calls of every block, and the tokens they see (hooks on their first layer)."""

    def __init__(self, model: nn.Module) -> None:
        self.calls = 0
        self.tokens = 0
        self.handles = []
        for found in find_blocks(model):
            for slot in ("attn", "mlp"):
                for _, module in found.submodules(slot):
                    first = next(m for m in module.modules() if isinstance(m, nn.Linear))
                    self.handles.append(first.register_forward_pre_hook(self._count))

    def _count(self, _module: nn.Module, args: tuple) -> None:
        self.calls += 1
        self.tokens += args[0].shape[:-1].numel()

    def take(self) -> tuple[int, int]:
        """``(calls, tokens)`` since the last take."""
        out = (self.calls, self.tokens)
        self.calls = self.tokens = 0
        return out


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
            start_generation(model)
        x0 = x = self.init()
        ts = torch.linspace(1.0, 0.0, self.steps + 1)
        for i in range(self.steps):
            t, dt = float(ts[i]) * 1000.0, float(ts[i + 1] - ts[i])
            _T["now"] = t
            x = x + dt * self.call(model, x, t)
        return x - x0  # the displacement the model made (random weights move x only slightly)


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


def configs(case: Case) -> tuple[dict[str, tuple[Apply, bool]], dict[str, str]]:
    """``{name: (apply(model), uses_diffusers_hooks)}`` for this case, and ``{name: reason}`` skipped."""
    meldit = isinstance(case.model, MelDiT)
    out: dict[str, tuple[Apply, bool]] = {"baseline": (lambda m: None, False)}
    for ratio in (0.3, 0.5, 0.7):
        out[f"tome_{ratio}"] = (tome(ratio, mlp=False), False)
    for ratio in (0.3, 0.5, 0.7):
        out[f"tome_{ratio}_mlp"] = (tome(ratio, mlp=True), False)
    for n in (2, 3, 4):
        out[f"fora_N{n}"] = (fora(n), False)
    out["fora_taylor1_N3"] = (fora(3, "taylor1"), False)
    if meldit:
        register_meldit_block()
    for thr in (0.05, 0.2):
        out[f"diffusers_fbc_{thr}"] = (diffusers_fbc(thr), True)
    for k in (2, 3):
        out[f"diffusers_pab_{k}"] = (diffusers_pab(k), True)
    out["diffusers_taylorseer_3"] = (diffusers_taylorseer(3), True)
    out["diffusers_fastercache_2"] = (diffusers_fastercache(2), True)
    skipped = {
        "diffusers_magcache": "MagCache needs mag_ratios calibrated on trained weights: measured in "
        "dit_plugins_quality.py on the trained MelDiT"
    }
    if meldit:
        out["probe_fora_cached"] = (fora(case.steps), False)  # one refresh: the cost of a fully cached step
        out["probe_tome_0.5_mlp_fixed"] = (fixed_matching_probe, False)
    return out, skipped


def fora_bound(speedup_cached: float, steps: int, interval: int) -> dict[str, float]:
    """The speedup FORA with ``interval`` cannot beat, from the measured speedup of the one-refresh probe.

    With ``c`` the cost of a fully cached step over a full step, ``S / speedup_cached = 1 + (S - 1) c``.
    """
    c = (steps / speedup_cached - 1.0) / (steps - 1)
    refreshes = math.ceil(steps / interval)
    return {
        "cached_step_cost_fraction": c,
        "refreshes": refreshes,
        "bound": steps / (refreshes + (steps - refreshes) * c),
        "bound_free_cached_steps": steps / refreshes,
    }


def bench_case(case: Case, repeats: int, warmup: int) -> dict[str, Any]:
    cfgs, skipped = configs(case)
    models: dict[str, nn.Module] = {}
    outputs: dict[str, torch.Tensor] = {}
    compute: dict[str, dict[str, int]] = {}
    for name, (apply, hooks) in list(cfgs.items()):
        model = copy.deepcopy(case.model) if name != "baseline" else case.model
        counter = ComputeCounter(model)
        try:
            apply(model)
            outputs[name] = case.run(model, hooks)  # one untimed pass each (also a warm-up)
        except Exception as err:  # a diffusers hook that does not apply to this model: report it, go on
            skipped[name] = f"{type(err).__name__}: {err}"
            del cfgs[name]
            continue
        finally:
            for handle in counter.handles:
                handle.remove()
        calls, tokens = counter.take()
        compute[name] = {"attn_mlp_calls": calls, "attn_mlp_tokens": tokens}
        models[name] = model

    def runner(name: str) -> Callable[[], torch.Tensor]:
        hooks = cfgs[name][1]

        def run() -> torch.Tensor:
            return case.run(models[name], hooks)

        return run

    base = outputs["baseline"]
    timing = compare_speed({name: runner(name) for name in cfgs}, repeats=repeats, warmup=warmup)
    med = {name: r["median_s"] for name, r in timing["results"].items()}
    speedup = timing["speedup_over_baseline"]
    base_compute = compute["baseline"]
    result = {
        "model": case.describe,
        "tokens": case.tokens,
        "steps": case.steps,
        "median_s": med,
        "speedup": speedup,
        # attention + MLP calls and the tokens they saw, relative to the baseline (counted by hooks).
        "compute_fraction": {n: {k: v / base_compute[k] for k, v in c.items()} for n, c in compute.items()},
        "rel_l2_to_baseline": {n: float((o - base).norm() / base.norm()) for n, o in outputs.items()},
        # Configs whose output is bit-identical to the baseline skipped nothing in this loop (e.g. a
        # FirstBlockCache threshold that random weights never meet).
        "no_effect": [n for n, o in outputs.items() if n != "baseline" and torch.equal(o, base)],
        "skipped": skipped,
        "timing": timing,
    }
    if "probe_fora_cached" in speedup:
        result["bounds"] = {
            f"fora_N{n}": fora_bound(speedup["probe_fora_cached"], case.steps, n) for n in (2, 3, 4)
        }
        result["bounds"]["tome_0.5_mlp_free_matching"] = speedup.get("probe_tome_0.5_mlp_fixed")
    return result


def plot(results: dict[str, dict], path: Path, hardware: str, threads: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 4.0), squeeze=False)
    for ax, (name, res) in zip(axes[0], results.items(), strict=True):
        names = list(res["speedup"])
        vals = [res["speedup"][n] for n in names]
        palette = {"tome": "tab:blue", "fora": "tab:orange", "diffusers": "tab:green", "probe": "lightgray"}
        colors = [palette.get(n.split("_")[0], "gray") for n in names]
        ax.bar(range(len(names)), vals, color=colors)
        for cfg, bound in res.get("bounds", {}).items():
            if cfg in names and isinstance(bound, dict):
                i = names.index(cfg)
                ax.plot([i - 0.4, i + 0.4], [bound["bound"]] * 2, color="k", lw=1, ls="--")
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
        top = 1.2 * max(v for n, v in zip(names, vals, strict=True) if not n.startswith("probe"))
        ax.set_ylim(0, top)  # the cached-step probe is off the scale: its bar is clipped, its value written
        for i, v in enumerate(vals):
            ax.annotate(f"{v:.2f}", (i, min(v, 0.93 * top)), ha="center", va="bottom", fontsize=7)
        for cfg, target in TARGETS.get(name, {}).items():
            if cfg in names:
                i = names.index(cfg)
                ax.plot([i - 0.4, i + 0.4], [target, target], color="red", lw=2)
        ax.axhline(1.0, color="k", lw=0.6)
        ax.set_title(f"{name}: {res['tokens']} tokens, {res['steps']} steps", fontsize=9)
        ax.set_ylabel("speedup over baseline (x)")
    fig.suptitle(
        f"random weights, speed only; {hardware[:70]}, {threads} threads (red: issue targets; dashed: the bound "
        "set by the cost of a cached step)",
        fontsize=8,
    )
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
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
                f"  {n:26s} {res['median_s'][n]:8.3f} s  x{s:5.2f}  rel-L2 to baseline "
                f"{res['rel_l2_to_baseline'][n]:.2e}  compute {res['compute_fraction'][n]}",
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
    bounds = results.get("meldit_small", {}).get("bounds")
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
        "what_bounds_the_speedups": {
            "fora": "a cached step still runs the embedders, every block's adaLN modulation, gates and residual "
            "adds, the final layer and the Euler update; probe_fora_cached measures that cost as a fraction of a "
            "full step (bounds.*.cached_step_cost_fraction), and FORA with R refreshes in S steps cannot beat "
            "S / (R + (S - R) * fraction). With 32 steps and N = 3 there are 11 refreshes, so even free cached "
            "steps cap it at 32 / 11 = 2.91x.",
            "tome": "merging removes work only inside the wrapped sub-modules (attention and, with _mlp, the MLP) "
            "and costs a matching per block and step plus a merge / unmerge per sub-module; norms, modulation, "
            "residual adds and the final layer keep every token. probe_tome_0.5_mlp_fixed reuses one matching "
            "everywhere (free matching): the ceiling of ToMe 0.5 with the MLP merged.",
            "meldit_bounds": bounds,
        },
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
