"""Does MelDiT learn the asked pitch faster with a harmonic-template pitch cue than with DiT's label table?

Two small MelDiTs, identical but for ``pitch_conditioning`` (``"table"``: a learned vector per MIDI pitch into
adaLN, DiT's class-label design; ``"harmonic"``: the same plus the pitch's harmonic template embedded per
patch row and added to the tokens), trained side by side with the same seed, batches and timesteps
(logit-normal, MSE), judged at each checkpoint by the note classifier on samples for the validation labels
(pitch accuracy, instrument accuracy, Fréchet distance) plus the validation flow loss. JSON + PNG.

    OMP_NUM_THREADS=1 python benchmarks/meldit_pitch_study.py --steps 1200 --every 300
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from accelerando.accelerate_dit.fasterdit import FasterDiTRecipe
from accelerando.metrics.report import environment, write_results
from accelerando.pretrained import pretrained_path

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.meldit_pitch_study
    from meldit_study import load_study_data, speedup, train_small_meldit
except ImportError:  # pragma: no cover
    from benchmarks.meldit_study import load_study_data, speedup, train_small_meldit

RESULTS = Path(__file__).parent / "results"
METRICS = {
    "pitch_accuracy": "pitch accuracy (exact)",
    "instrument_accuracy": "instrument accuracy",
    "frechet_distance": "Fréchet distance (classifier embedding)",
    "val_flow_loss": "validation flow loss",
}


def plot(payload: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.2 * len(METRICS), 3.8))
    for ax, (key, title) in zip(axes, METRICS.items()):
        for name, res in payload["variants"].items():
            ax.plot([r["step"] for r in res["rows"]], [r[key] for r in res["rows"]], marker="o", label=name)
        ax.set(xlabel="training step", title=title)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"Small MelDiT pitch conditioning ({payload['hardware']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default=str(Path(__file__).parents[1] / "corpora" / "instruments"))
    parser.add_argument("--classifier", default=None, help="Default: the bundled note-classifier.")
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--every", type=int, default=300)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=3e-4)
    parser.add_argument("--hidden_size", type=int, default=96)
    parser.add_argument("--num_layers", type=int, default=3)
    parser.add_argument("--sample_steps", type=int, default=16)
    parser.add_argument(
        "--variants", default="table,harmonic", help="Comma-separated pitch_conditioning values."
    )
    parser.add_argument("--out", default=str(RESULTS / "meldit_pitch_study.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_study_data(args.data_dir, 128, args.classifier or str(pretrained_path("note-classifier")))
    base = {"n_mels": 80, "num_frames": 128, "patch_size": (4, 4), "hidden_size": args.hidden_size,
            "num_layers": args.num_layers, "num_attention_heads": 3}  # fmt: skip
    recipe = FasterDiTRecipe(timestep_sampling="logit_normal")  # the training script's default
    variants = {}
    for name in args.variants.split(","):
        variants[name] = train_small_meldit(
            data, {**base, "pitch_conditioning": name}, recipe, steps=args.steps, every=args.every,
            batch_size=args.batch_size, learning_rate=args.learning_rate, sample_steps=args.sample_steps,
            label=name,
        )  # fmt: skip
    checkpoints = [r["step"] for r in next(iter(variants.values()))["rows"]]
    env = environment()
    payload = {
        "suite": "meldit-pitch-conditioning",
        "hardware": f"{env['cpu_model']}, {env['cpu_count']} cores, torch threads {env['torch_threads']}",
        "versions": env["versions"],
        "settings": {
            **vars(args),
            "config": base,
            "recipe": vars(recipe),
            "num_validation_notes": len(data.val["pitch"]),
        },
        "checkpoints": checkpoints,
        "variants": variants,
    }
    reference = args.variants.split(",")[0]
    payload["steps_to_reference_final_pitch_accuracy"] = speedup(
        {k: [r["pitch_accuracy"] for r in v["rows"]] for k, v in variants.items()},
        checkpoints,
        reference,
        True,
    )
    write_results(Path(args.out), payload)
    plot(payload, Path(args.out).with_suffix(".png"))
    print(payload["steps_to_reference_final_pitch_accuracy"])


if __name__ == "__main__":
    main()
