"""Train PeriodWave (flow matching) on an LJSpeech-style or LibriTTS folder.

Recipe of PeriodWave (arXiv 2408.07547, reference configs): 22.05 kHz, 80 mels, random crops of 32,768
samples (128 frames), AdamW with lr 2e-4, the std-scaled OT-CFM loss. Before the first step the frame-energy
statistics of the prior are computed once over (a subset of) the training split (the corpus max by default,
as in the reference), written to ``output_dir/energy_stats.json`` and stored in the model config, so each
checkpoint's ``model/`` folder is a loadable ``PeriodWave`` with its prior. The data handling, statistics and
validation are the vocoders' shared ones (:mod:`accelerando.vocoders.training_utils`).
``--timestep_sampling logit_normal --direction_weight 1`` trains with FasterDiT's recipe (:mod:`accelerando.fasterdit`);
the defaults are the paper's loss, bit for bit.

Example::

    accelerate launch -m accelerando.vocoders.periodwave.train --data_dir data/speech \\
        --output_dir runs/periodwave --preset S --max_train_steps 100000 --use_ema
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from accelerando import training as T
from accelerando.vocoders.periodwave.model import PRESETS, PeriodWave
from accelerando.vocoders.training_utils import (
    ENERGY_STATS_FILE,
    add_vocoder_data_arguments,
    check_energy_max,
    energy_stats,
    fit_mel_vocoder,
    vocoder_datasets,
)

__all__ = ["ENERGY_STATS_FILE", "add_arguments", "main", "parse_args"]

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add PeriodWave's flags and the shared training flags (with PeriodWave's defaults) to ``parser``."""
    add_vocoder_data_arguments(parser, segment_frames=128, energy_max_default="corpus")
    add = parser.add_argument
    add("--preset", type=str, default="B", choices=sorted(PRESETS), help="Model size.")
    add("--validation_num_steps", type=T.positive_int, default=16, help="Midpoint ODE steps at validation.")
    add(
        "--timestep_sampling",
        type=str,
        default="uniform",
        choices=["uniform", "logit_normal"],
        help="Training times: the paper's uniform, or FasterDiT's logit-normal (accelerando.fasterdit).",
    )
    add("--logit_mean", type=float, default=0.0, help="Logit-normal mean (FasterDiT convention: t = noise).")
    add("--logit_std", type=T.positive_float, default=1.0, help="Logit-normal std.")
    add("--direction_weight", type=float, default=0.0, help="FasterDiT's velocity-direction loss weight.")
    return T.add_training_args(
        parser,
        output_dir="output/periodwave",
        train_batch_size=32,
        learning_rate=2e-4,
        max_train_steps=1_000_000,
        checkpointing_steps=10_000,
        max_grad_norm=1e9,  # the reference code does not clip
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="accelerando train periodwave",
        description="Train the PeriodWave vocoder (flow matching).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    args = check_energy_max(parser, add_arguments(parser).parse_args(argv))
    if args.direction_weight < 0:
        parser.error(f"--direction_weight must be >= 0; got {args.direction_weight}")
    return args


def main(args: argparse.Namespace) -> Path:
    """Train; returns the folder of the final model (``output_dir/model``)."""
    accelerator = T.create_accelerator(args, project_name="periodwave")
    train_utts, crops, valid_utts = vocoder_datasets(args)
    stats = energy_stats(args, train_utts, accelerator)
    model = PeriodWave.from_preset(
        args.preset, energy_min=stats["energy_min"], energy_max=stats["energy_max"]
    )
    logger.info("PeriodWave %s: %d parameters", args.preset, model.num_parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)

    def step_loss(
        batch: dict[str, Any], prepared: torch.nn.Module, periodwave: PeriodWave
    ) -> tuple[torch.Tensor, dict]:
        loss = periodwave.flow_matching_loss(
            batch["audio"],
            batch["mel"],
            estimator=prepared,
            timestep_sampling=args.timestep_sampling,
            logit_mean=args.logit_mean,
            logit_std=args.logit_std,
            direction_weight=args.direction_weight,
        )
        return loss, {}

    return fit_mel_vocoder(
        accelerator, args, model, optimizer, crops, valid_utts, step_loss, name="PeriodWave"
    )


if __name__ == "__main__":
    main(parse_args())
