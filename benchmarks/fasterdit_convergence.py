"""Does the FasterDiT recipe (arXiv 2410.10356) train faster here? Vanilla vs FasterDiT, same seed and budget.

(a) 2-D toy: a small MLP velocity net on ``GaussianMixtureFlow.default()`` data. Every recipe sees the same data
    and noise draws; at each checkpoint, 2000 points are Euler-sampled (32 steps) and compared with 2000 true
    samples (sliced W2, MMD^2) in data space, and a validation flow loss is measured at a fixed protocol (the
    same x0, noise and an evenly spaced t grid; in each recipe's own data scale, so compare it within a recipe).
    Ablations: each FasterDiT ingredient alone.
(b) A small MelDiT on the note corpus (``NoteDataset`` train / validation), same protocol: sliced W2 between
    Euler-sampled and validation log-mels (data space) and the validation flow loss. The note classifier does
    not exist yet, so no accuracy / Fréchet distance of samples.

"Steps to reach vanilla's final quality": the first checkpoint whose sliced W2 is at or below vanilla's at the
last checkpoint; ratio = vanilla's budget / that step (the paper: 7x on ImageNet).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/fasterdit_convergence.py --toy_steps 1500 \\
        --toy_every 150 --toy_seeds 2 --mel_steps 1000 --mel_every 100
"""

from __future__ import annotations

import argparse
import copy
import functools
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from accelerando.accelerate_dit.fasterdit import FasterDiTRecipe, fasterdit_loss, plot_snr_pdf
from accelerando.generation import train as meldit_train
from accelerando.generation.mel_dit import MelDiT
from accelerando.generation.toy import GaussianMixtureFlow
from accelerando.metrics import mmd2, sliced_wasserstein2
from accelerando.metrics.report import environment, write_results

RESULTS = Path(__file__).parent / "results"
RECIPES = {
    "vanilla": FasterDiTRecipe.vanilla(),
    "fasterdit": FasterDiTRecipe.fasterdit(),
    "logit_normal_only": FasterDiTRecipe(timestep_sampling="logit_normal"),
    "data_std_only": FasterDiTRecipe(data_std=1.0),
    "direction_only": FasterDiTRecipe(direction_weight=1.0),
}


class VelocityMLP(nn.Module):
    """``v(x, t)`` for ``(B, d)`` points: an MLP on ``[x, sin/cos(2^k pi t)]``."""

    def __init__(self, dim: int = 2, hidden: int = 128, freqs: int = 6):
        super().__init__()
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(freqs), persistent=False)
        self.net = nn.Sequential(
            nn.Linear(dim + 2 * freqs, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, dim),
        )  # fmt: skip

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        angles = t[:, None] * self.freqs  # (B, freqs)
        return self.net(torch.cat([x, angles.sin(), angles.cos()], dim=1))


@torch.no_grad()
def euler_sample(velocity: Any, noise: torch.Tensor, steps: int) -> torch.Tensor:
    """Integrate ``dx/dt = v`` from t = 1 (noise) to 0 with ``steps`` uniform Euler steps."""
    x = noise
    ts = torch.linspace(1, 0, steps + 1)
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = x + (t_next - t) * velocity(x, t.expand(x.shape[0]))
    return x


def _mel_velocity(
    model: MelDiT, labels: tuple[torch.Tensor, ...], x: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    return model(x, t * 1000, *labels).sample


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema <- decay ema + (1 - decay) model`` (evaluation uses EMA weights, as DiT does)."""
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.lerp_(p, 1 - decay)


def steps_to_reach(curve: list[float], steps: list[int], target: float) -> int | None:
    """The first checkpoint step whose value is <= ``target`` (None if never)."""
    return next((s for s, v in zip(steps, curve) if v <= target), None)


def speedup(curves: dict[str, list[float]], steps: list[int]) -> dict[str, Any]:
    target = curves["vanilla"][-1]
    out = {}
    for name, curve in curves.items():
        reached = steps_to_reach(curve, steps, target)
        out[name] = {
            "steps_to_vanilla_final": reached,
            "ratio": None if reached is None else steps[-1] / reached,
        }
    return out


def run_toy(args: argparse.Namespace) -> dict[str, Any]:
    gmm = GaussianMixtureFlow.default()
    data = gmm.sample_data(200_000, seed=1).float()
    measured = float(data.std())
    truth = gmm.sample_data(2000, seed=2).float()
    eval_noise = gmm.sample_noise(2000, seed=3).float()
    val_x0, val_noise = gmm.sample_data(4096, seed=4).float(), gmm.sample_noise(4096, seed=5).float()
    val_t = (torch.arange(4096) + 0.5) / 4096  # fixed, evenly spaced
    checkpoints = list(range(args.toy_every, args.toy_steps + 1, args.toy_every))
    results: dict[str, Any] = {}
    for name, recipe in RECIPES.items():
        per_seed = []
        for seed in range(args.toy_seeds):
            torch.manual_seed(seed)
            model = VelocityMLP()
            ema = copy.deepcopy(model).requires_grad_(False)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            gen = torch.Generator().manual_seed(100 + seed)  # the same batches and noise for every recipe
            tgen = torch.Generator().manual_seed(200 + seed)
            c = recipe.data_scale(measured)
            rows = []
            for step in range(1, args.toy_steps + 1):
                idx = torch.randint(0, data.shape[0], (args.toy_batch,), generator=gen)
                x0, noise = data[idx] * c, torch.randn(args.toy_batch, 2, generator=gen)
                t = recipe.sample_timesteps(args.toy_batch, generator=tgen)
                xt = (1 - t[:, None]) * x0 + t[:, None] * noise
                loss = fasterdit_loss(model(xt, t), noise - x0, recipe.direction_weight, dim=1)
                opt.zero_grad()
                loss.backward()
                opt.step()
                ema_update(ema, model, args.ema_decay)
                if step in checkpoints:
                    with torch.no_grad():
                        samples = euler_sample(ema, eval_noise, 32) / c
                        vx0 = val_x0 * c
                        vxt = (1 - val_t[:, None]) * vx0 + val_t[:, None] * val_noise
                        val = float(((ema(vxt, val_t) - (val_noise - vx0)) ** 2).mean())
                    rows.append(
                        {"step": step, "sw2": sliced_wasserstein2(samples, truth), "mmd2": mmd2(samples, truth),
                         "val_flow_loss": val}
                    )  # fmt: skip
            per_seed.append(rows)
        results[name] = {
            "data_scale": recipe.data_scale(measured),
            "sw2_mean": [sum(r[i]["sw2"] for r in per_seed) / len(per_seed) for i in range(len(checkpoints))],
            "mmd2_mean": [
                sum(r[i]["mmd2"] for r in per_seed) / len(per_seed) for i in range(len(checkpoints))
            ],
            "per_seed": per_seed,
        }
        print(f"toy {name}: sw2 {[round(v, 3) for v in results[name]['sw2_mean']]}", flush=True)
    floor = sliced_wasserstein2(gmm.sample_data(2000, seed=9).float(), truth)
    return {
        "checkpoints": checkpoints,
        "measured_data_std": measured,
        "sw2_floor_true_vs_true": floor,
        "recipes": results,
        "speedup_sw2": speedup({k: v["sw2_mean"] for k, v in results.items()}, checkpoints),
    }


def _load_mels(split: str, num_frames: int, root: str) -> dict[str, torch.Tensor]:
    from accelerando.data import NoteDataset

    ds = NoteDataset(root, split=split)
    return meldit_train.collate_notes([ds[i] for i in range(len(ds))], num_frames)


def run_mel(args: argparse.Namespace) -> dict[str, Any]:
    train, val = (
        _load_mels("train", args.num_frames, args.data_dir),
        _load_mels("validation", args.num_frames, args.data_dir),
    )
    checkpoints = list(range(args.mel_every, args.mel_steps + 1, args.mel_every))
    config = {"n_mels": train["mel"].shape[2], "num_frames": args.num_frames, "patch_size": (8, 8),
              "hidden_size": 96, "num_layers": 3, "num_attention_heads": 3}  # fmt: skip
    n_val = val["mel"].shape[0]
    results: dict[str, Any] = {}
    for name in args.mel_recipes.split(","):
        recipe = RECIPES[name]
        torch.manual_seed(0)
        model = MelDiT(**config)
        measured = float(model.normalize_mel(train["mel"]).std())
        model.register_to_config(mel_std=model.config.mel_std / recipe.data_scale(measured))
        ema = copy.deepcopy(model).requires_grad_(False).eval()
        opt = torch.optim.AdamW(model.parameters(), lr=args.mel_lr)
        gen, tgen = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
        val_gen = torch.Generator().manual_seed(3)
        val_noise = torch.randn(val["mel"].shape, generator=val_gen)
        sample_noise = torch.randn((n_val, *val["mel"].shape[1:]), generator=val_gen)
        val_t = (torch.arange(n_val) + 0.5) / n_val
        labels = lambda b, idx: (b["program"][idx], b["pitch"][idx], b["velocity"][idx])  # noqa: E731
        rows, start = [], time.time()
        for step in range(1, args.mel_steps + 1):
            model.train()
            idx = torch.randint(0, train["mel"].shape[0], (args.mel_batch,), generator=gen)
            x0 = model.normalize_mel(train["mel"][idx])
            t = recipe.sample_timesteps(args.mel_batch, generator=tgen)
            loss = meldit_train.training_loss(model, x0, *labels(train, idx), t, recipe.direction_weight, gen)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            ema_update(ema, model, args.ema_decay)
            if step in checkpoints:
                allv = torch.arange(n_val)
                with torch.no_grad():
                    vx0 = ema.normalize_mel(val["mel"])
                    s = val_t[:, None, None, None]
                    pred = ema((1 - s) * vx0 + s * val_noise, val_t * 1000, *labels(val, allv)).sample
                    val_loss = float(((pred - (val_noise - vx0)) ** 2).mean())
                    velocity = functools.partial(_mel_velocity, ema, labels(val, allv))
                    samples = ema.denormalize_mel(euler_sample(velocity, sample_noise, args.mel_sample_steps))
                # Data space, in the corpus' fixed normalisation (mean -5, std 3) so recipes share one unit.
                sw2 = sliced_wasserstein2((samples.flatten(1) + 5) / 3, (val["mel"].flatten(1) + 5) / 3)
                rows.append(
                    {"step": step, "sw2": sw2, "val_flow_loss": val_loss, "elapsed_s": time.time() - start}
                )
                print(
                    f"mel {name} step {step}: sw2 {sw2:.4f} val {val_loss:.4f} ({time.time() - start:.0f}s)",
                    flush=True,
                )
        results[name] = {
            "data_scale": recipe.data_scale(measured),
            "measured_normalised_std": measured,
            "rows": rows,
        }
    return {
        "config": config,
        "batch_size": args.mel_batch,
        "learning_rate": args.mel_lr,
        "euler_steps": args.mel_sample_steps,
        "checkpoints": checkpoints,
        "recipes": results,
        "speedup_sw2": speedup({k: [r["sw2"] for r in v["rows"]] for k, v in results.items()}, checkpoints),
        "note_classifier": "not available yet: no classifier accuracy / Frechet distance of samples",
    }


def plot(payload: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    toy = payload["toy"]
    for name, res in toy["recipes"].items():
        axes[0].plot(toy["checkpoints"], res["sw2_mean"], marker="o", ms=3, label=name)
    axes[0].axhline(toy["sw2_floor_true_vs_true"], color="k", ls=":", label="true vs true")
    axes[0].set(xlabel="step", ylabel="sliced W2 (mean over seeds)", title="2-D GMM toy", yscale="log")
    axes[0].legend(fontsize=7)
    if "mel" in payload:
        mel = payload["mel"]
        for name, res in mel["recipes"].items():
            axes[1].plot(
                [r["step"] for r in res["rows"]], [r["sw2"] for r in res["rows"]], marker="o", label=name
            )
        axes[1].set(xlabel="step", ylabel="sliced W2 of samples vs validation", title="MelDiT on notes")
        axes[1].legend(fontsize=7)
    specs = payload["snr_pdf_specs"]
    plot_snr_pdf(specs, ax=axes[2], title="log-SNR PDF of both recipes")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default=str(Path(__file__).parents[1] / "corpora" / "instruments"))
    parser.add_argument("--toy_steps", type=int, default=2000)
    parser.add_argument("--toy_every", type=int, default=200)
    parser.add_argument("--toy_batch", type=int, default=256)
    parser.add_argument("--toy_seeds", type=int, default=3)
    parser.add_argument("--mel_steps", type=int, default=400, help="0 skips the MelDiT study.")
    parser.add_argument("--mel_every", type=int, default=100)
    parser.add_argument("--mel_batch", type=int, default=16)
    parser.add_argument("--mel_lr", type=float, default=3e-4)
    parser.add_argument("--mel_sample_steps", type=int, default=16)
    parser.add_argument("--num_frames", type=int, default=64)
    parser.add_argument("--ema_decay", type=float, default=0.99)
    parser.add_argument(
        "--mel_recipes", default="vanilla,fasterdit,logit_normal_only", help="Comma-separated."
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    payload: dict[str, Any] = {
        "paper": "FasterDiT, arXiv 2410.10356 (7x on ImageNet 256)",
        "env": environment(),
    }
    payload["recipes"] = {k: vars(v) for k, v in RECIPES.items()}
    payload["ema_decay"] = args.ema_decay
    payload["toy"] = run_toy(args)
    mel_std_raw = None
    if args.mel_steps > 0:
        payload["mel"] = run_mel(args)
        mel_std_raw = payload["mel"]["recipes"]["vanilla"]["measured_normalised_std"]
    toy_std = payload["toy"]["measured_data_std"]
    payload["snr_pdf_specs"] = {
        f"vanilla, toy (std {toy_std:.2f})": {"kind": "uniform", "data_std": toy_std},
        "fasterdit, toy (scaled to std 1)": {"kind": "logit_normal", "data_std": 1.0},
    }
    if mel_std_raw is not None:
        payload["snr_pdf_specs"][f"vanilla, mels (std {mel_std_raw:.2f})"] = {
            "kind": "uniform",
            "data_std": mel_std_raw,
        }
    plot_snr_pdf(payload["snr_pdf_specs"], RESULTS / "fasterdit_snr_pdf.png")
    plot(payload, RESULTS / "fasterdit_convergence.png")
    write_results(RESULTS / "fasterdit_convergence.json", payload)
    print("toy speedup:", payload["toy"]["speedup_sw2"])
    if "mel" in payload:
        print("mel speedup:", payload["mel"]["speedup_sw2"])


if __name__ == "__main__":
    main()
