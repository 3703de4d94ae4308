"""Does the FasterDiT recipe (arXiv 2410.10356) train faster here? Vanilla vs FasterDiT, same seed and budget.

(a) 2-D toy: a small MLP velocity net on ``GaussianMixtureFlow.default()`` data. Every recipe sees the same data
    and noise draws; at each checkpoint, 2000 points are Euler-sampled (32 steps) and compared with 2000 true
    samples (sliced W2, MMD^2) in data space, and a validation flow loss is measured at a fixed protocol (the
    same x0, noise and an evenly spaced t grid; in each recipe's own data scale, so compare it within a recipe).
    Ablations: each FasterDiT ingredient alone.
(b) A small MelDiT (harmonic pitch cue, as the presets) on the note corpus (``NoteDataset`` train /
    validation, 128 frames), several seeds, via the shared harness ``meldit_study.train_small_meldit``: at
    each checkpoint the validation flow loss, the sliced W2 between Euler-sampled and validation mels, and the
    bundled note classifier's instrument / pitch accuracy and Fréchet distance of samples generated for the
    validation labels.

"Steps to reach vanilla's final quality": the first checkpoint whose (seed-mean) metric is at or better than
vanilla's at the last checkpoint; ratio = vanilla's budget / that step (the paper: 7x on ImageNet).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/fasterdit_convergence.py --toy_steps 1500 \\
        --toy_every 150 --toy_seeds 3 --mel_steps 4800 --mel_every 800 --mel_seeds 3 --mel_recipes vanilla,fasterdit
"""

from __future__ import annotations

import argparse
import copy
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from accelerando.accelerate_dit.fasterdit import FasterDiTRecipe, fasterdit_loss, plot_snr_pdf
from accelerando.generation.toy import GaussianMixtureFlow
from accelerando.metrics import mmd2, sliced_wasserstein2
from accelerando.metrics.report import environment, write_results
from accelerando.pretrained import pretrained_path

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.fasterdit_convergence
    from meldit_study import ema_update, euler_sample, load_study_data, speedup, train_small_meldit
except ImportError:  # pragma: no cover
    from benchmarks.meldit_study import ema_update, euler_sample, load_study_data, speedup, train_small_meldit

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


# Metric -> higher is better. The validation flow loss is averaged too, but it is in each recipe's own data
# scale (FasterDiT rescales the data), so it is compared within a recipe, not across: no speedup from it.
MEL_METRICS = {
    "sw2": False,
    "frechet_distance": False,
    "instrument_accuracy": True,
    "pitch_accuracy": True,
}


def run_mel(args: argparse.Namespace) -> dict[str, Any]:
    classifier = args.classifier or str(pretrained_path("note-classifier"))
    data = load_study_data(args.data_dir, args.num_frames, classifier)
    config = {"n_mels": data.train["mel"].shape[2], "num_frames": args.num_frames, "patch_size": (8, 8),
              "hidden_size": 96, "num_layers": 3, "num_attention_heads": 3,
              "pitch_conditioning": "harmonic"}  # fmt: skip
    results: dict[str, Any] = {}
    for name in args.mel_recipes.split(","):
        per_seed = [
            train_small_meldit(
                data,
                config,
                RECIPES[name],
                steps=args.mel_steps,
                every=args.mel_every,
                batch_size=args.mel_batch,
                learning_rate=args.mel_lr,
                ema_decay=args.ema_decay,
                sample_steps=args.mel_sample_steps,
                seed=seed,
                label=f"mel {name} seed {seed}",
            )  # fmt: skip
            for seed in range(args.mel_seeds)
        ]
        rows = [r["rows"] for r in per_seed]
        mean = {
            key: [sum(seed_rows[i][key] for seed_rows in rows) / len(rows) for i in range(len(rows[0]))]
            for key in (*MEL_METRICS, "val_flow_loss")
        }
        results[name] = {
            "data_scale": per_seed[0]["data_scale"],
            "measured_normalised_std": per_seed[0]["measured_normalised_std"],
            "mean": mean,
            "per_seed": rows,
        }
    checkpoints = [r["step"] for r in results[next(iter(results))]["per_seed"][0]]
    return {
        "config": config,
        "batch_size": args.mel_batch,
        "learning_rate": args.mel_lr,
        "euler_steps": args.mel_sample_steps,
        "seeds": args.mel_seeds,
        "num_validation_notes": len(data.val["pitch"]),
        "classifier": classifier,
        "checkpoints": checkpoints,
        "recipes": results,
        "speedup": {
            key: speedup({k: v["mean"][key] for k, v in results.items()}, checkpoints, "vanilla", higher)
            for key, higher in MEL_METRICS.items()
        },
    }


def plot(payload: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 5, figsize=(24, 4.2))
    toy = payload["toy"]
    for name, res in toy["recipes"].items():
        axes[0].plot(toy["checkpoints"], res["sw2_mean"], marker="o", ms=3, label=name)
    axes[0].axhline(toy["sw2_floor_true_vs_true"], color="k", ls=":", label="true vs true")
    axes[0].set(xlabel="step", ylabel="sliced W2 (mean over seeds)", title="2-D GMM toy", yscale="log")
    axes[0].legend(fontsize=7)
    if "mel" in payload:
        mel = payload["mel"]
        panels = [("sw2", "sliced W2, samples vs validation"), ("frechet_distance", "Fréchet (classifier)"),
                  ("pitch_accuracy", "pitch accuracy of samples")]  # fmt: skip
        for ax, (key, title) in zip(axes[1:4], panels):
            for name, res in mel["recipes"].items():
                ax.plot(mel["checkpoints"], res["mean"][key], marker="o", ms=3, label=name)
            ax.set(xlabel="step", title=f"MelDiT: {title} (mean of {mel['seeds']} seeds)")
        axes[1].legend(fontsize=7)
    specs = payload["snr_pdf_specs"]
    plot_snr_pdf(specs, ax=axes[4], title="log-SNR PDF of both recipes")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def mel_latent_stats(data_dir: str, num_frames: int, max_items: int = 400, seed: int = 0) -> dict[str, Any]:
    """What FasterDiT's data-std modulation sees on MelDiT's latents: mean, std and RMS of the training notes'
    normalised mels (``(log_mel - mel_mean) / mel_std`` with the model's default constants), from a seeded sample
    of ``max_items`` notes. FasterDiT's SNR ``((1 - t) std / t)^2`` treats the data as zero-mean; a mean offset
    is signal power the std leaves out (``rms^2 = mean^2 + std^2``)."""
    from accelerando.data import NoteDataset
    from accelerando.generation import MelDiT
    from accelerando.generation.train import collate_notes

    dataset = NoteDataset(data_dir, split="train")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:max_items].tolist()
    mel = collate_notes([dataset[i] for i in order], num_frames)["mel"]
    config = MelDiT.from_preset("small").config
    x = (mel - config.mel_mean) / config.mel_std
    mean, std, rms = float(x.mean()), float(x.std()), float(x.pow(2).mean().sqrt())
    return {
        "notes": len(order),
        "log_mel_mean": float(mel.mean()),
        "log_mel_std": float(mel.std()),
        "normaliser": {"mel_mean": config.mel_mean, "mel_std": config.mel_std},
        "normalised_mean": mean,
        "normalised_std": std,
        "normalised_rms": rms,
        "mean_share_of_power": mean**2 / rms**2,
        "floor_share": float((mel < -11.0).float().mean()),
        "fasterdit_scale_to_std_1": 1.0 / std,
        "centred_normaliser": {"mel_mean": float(mel.mean()), "mel_std": float(mel.std())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default=str(Path(__file__).parents[1] / "corpora" / "instruments"))
    parser.add_argument("--toy_steps", type=int, default=2000)
    parser.add_argument("--toy_every", type=int, default=200)
    parser.add_argument("--toy_batch", type=int, default=256)
    parser.add_argument("--toy_seeds", type=int, default=3)
    parser.add_argument("--mel_steps", type=int, default=400, help="0 skips the MelDiT study.")
    parser.add_argument("--mel_every", type=int, default=100)
    parser.add_argument("--mel_seeds", type=int, default=2)
    parser.add_argument(
        "--classifier", default=None, help="Note classifier folder (default: the bundled one)."
    )
    parser.add_argument("--mel_batch", type=int, default=16)
    parser.add_argument("--mel_lr", type=float, default=3e-4)
    parser.add_argument("--mel_sample_steps", type=int, default=16)
    parser.add_argument("--num_frames", type=int, default=128, help="The classifier judges 128 frames.")
    parser.add_argument("--ema_decay", type=float, default=0.99)
    parser.add_argument(
        "--mel_recipes", default="vanilla,fasterdit,logit_normal_only", help="Comma-separated."
    )
    parser.add_argument("--results_dir", default=str(RESULTS))
    parser.add_argument(
        "--stats_only",
        action="store_true",
        help="only the mel latents' statistics (mean, std, RMS) -> results_dir/meldit_latent_stats.json",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    if args.stats_only:
        stats = {"env": environment(), **mel_latent_stats(args.data_dir, args.num_frames)}
        write_results(results_dir / "meldit_latent_stats.json", stats)
        print({k: v for k, v in stats.items() if k != "env"})
        return
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
    plot_snr_pdf(payload["snr_pdf_specs"], results_dir / "fasterdit_snr_pdf.png")
    plot(payload, results_dir / "fasterdit_convergence.png")
    write_results(results_dir / "fasterdit_convergence.json", payload)
    print("toy speedup:", payload["toy"]["speedup_sw2"])
    if "mel" in payload:
        print("mel speedup:", payload["mel"]["speedup"])


if __name__ == "__main__":
    main()
