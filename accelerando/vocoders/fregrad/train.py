"""Train FreGrad on an LJSpeech-style folder (``wavs/`` + ``metadata.csv``, optional ``split.json``).

Recipe of FreGrad (ICASSP 2024, Sec. 4.1): 22.05 kHz, 80 mels, random crops of 62 frames, batch 16,
Adam with lr 2e-4, loss = prior-scaled MSE on the noise per band + 0.1 x MR-STFT. Before the first
step the frame-energy statistics of the prior are computed once over (a subset of) the training
split, written to ``output_dir/energy_stats.json`` and stored in the model config, so every
checkpoint's ``model/`` folder is a loadable ``FreGrad`` with its prior.

At each checkpoint (and at the end) a few validation utterances are synthesised; their wavs go to
``output_dir/validation/step-N/`` and mel L1 / M-STFT to the tracker and the log. The data handling,
statistics and validation live in :mod:`accelerando.vocoders.training_utils` (shared with PeriodWave).

Example::

    accelerate launch -m accelerando.vocoders.fregrad.train --data_dir data/speech \\
        --output_dir runs/fregrad --preset small --max_train_steps 20000 --use_ema
    accelerate launch -m accelerando.vocoders.fregrad.train --data_dir data/speech \\
        --output_dir runs/fregrad --preset small --resume_from_checkpoint latest
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from accelerando import training as T
from accelerando.fileio import atomic_write_text
from accelerando.vocoders.energy import DEFAULT_ENERGY_MAX
from accelerando.vocoders.fregrad.model import PRESETS, FreGrad
from accelerando.vocoders.fregrad.prior import PRIORS, fit_band_scales, prior_split_bin
from accelerando.vocoders.training_utils import (
    ENERGY_STATS_FILE,
    add_vocoder_data_arguments,
    check_energy_max,
    energy_stats,
    fit_mel_vocoder,
    vocoder_datasets,
)

__all__ = [
    "ENERGY_STATS_FILE",
    "PRIOR_STATS_FILE",
    "add_arguments",
    "build_model",
    "calibrated_prior_stats",
    "main",
    "parse_args",
]

PRIOR_STATS_FILE = "prior_stats.json"

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add FreGrad's flags and the shared training flags (with FreGrad's defaults) to ``parser``."""
    add_vocoder_data_arguments(parser, segment_frames=62, energy_max_default=str(DEFAULT_ENERGY_MAX))
    add = parser.add_argument
    add("--preset", type=str, default="paper", choices=sorted(PRESETS), help="Model size.")
    add("--stft_loss_weight", type=float, default=0.1, help="Weight of the MR-STFT term.")
    add(
        "--prior",
        type=str,
        default="energy",
        choices=PRIORS,
        help="The frequency-wise prior: the paper's mel-half energies, or calibrated to each sub-band's level.",
    )
    add(
        "--precondition",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="Network in units of the prior's sigma (input x_t / sigma, output x sigma).",
    )
    add(
        "--std_min",
        type=T.positive_float,
        default=None,
        help="Floor of the prior's sigma (default: 0.1 for --prior energy, 0.005 for calibrated).",
    )
    add("--validation_num_steps", type=T.positive_int, default=6, help="Sampling steps at validation.")
    add(
        "--init_model",
        type=str,
        default=None,
        help="Start from this FreGrad (a folder or a bundled name, e.g. fregrad-speech): its architecture and "
        "prior are kept, so --preset, --prior, --precondition and --std_min are not read.",
    )
    return T.add_training_args(
        parser,
        output_dir="output/fregrad",
        train_batch_size=16,
        learning_rate=2e-4,
        max_train_steps=100_000,
        checkpointing_steps=5000,
        max_grad_norm=1e9,  # the reference code does not clip
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="accelerando train fregrad",
        description="Train the FreGrad vocoder.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    return check_energy_max(parser, add_arguments(parser).parse_args(argv))


def calibrated_prior_stats(args: argparse.Namespace, train_utts: Any, accelerator: Any) -> dict[str, Any]:
    """``prior_split_bin`` and ``prior_scales`` of the calibrated prior: read from ``output_dir`` or fitted once."""
    from accelerando.audio import MelConfig, mel_spectrogram

    path = Path(args.output_dir) / PRIOR_STATS_FILE
    if accelerator.is_main_process and not path.is_file():
        cfg = MelConfig()
        split = prior_split_bin(cfg.n_mels, cfg.sample_rate, cfg.f_min, cfg.f_max)
        wavs = [train_utts.load_audio(i) for i in range(min(len(train_utts), args.energy_stats_items))]
        scales = fit_band_scales([(w, mel_spectrogram(w, cfg)) for w in wavs], split, cfg.hop_length)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            path, json.dumps({"prior_split_bin": split, "prior_scales": scales, "items": len(wavs)})
        )
        logger.info("Calibrated prior over %d utterances: split bin %d, scales %s", len(wavs), split, scales)
    accelerator.wait_for_everyone()
    saved = json.loads(path.read_text())
    return {"prior_split_bin": saved["prior_split_bin"], "prior_scales": saved["prior_scales"]}


def build_model(args: argparse.Namespace, prior: dict[str, Any]) -> FreGrad:
    """The model to train: the resumed checkpoint's architecture (its weights come with the checkpoint state),
    else ``--init_model`` (weights, architecture and prior), else ``--preset`` with ``prior`` (the energy
    statistics and prior settings of this run)."""
    from accelerando.pretrained.loading import load

    resumed = T.resumed_model_folder(args)
    if resumed is not None:
        logger.info(
            "Resuming %s: the model is built from its config; --init_model is not read", resumed.parent
        )
        return FreGrad.from_config(FreGrad.load_config(resumed)).train()
    if args.init_model:
        model = load(args.init_model, expect=("FreGrad",)).float().train()
        logger.info(
            "Starting from %s: its architecture and prior; --preset and the prior flags are not read",
            args.init_model,
        )
        return model
    return FreGrad.from_preset(args.preset, **prior)


def main(args: argparse.Namespace) -> Path:
    """Train; returns the folder of the final model (``output_dir/model``)."""
    accelerator = T.create_accelerator(args, project_name="fregrad")
    train_utts, crops, valid_utts = vocoder_datasets(args)
    stats = energy_stats(args, train_utts, accelerator)
    prior = {
        "prior": args.prior,
        "std_min": args.std_min or (0.1 if args.prior == "energy" else 0.005),
        "precondition": args.precondition,
    }
    if args.prior == "calibrated":
        prior.update(calibrated_prior_stats(args, train_utts, accelerator))
    model = build_model(args, {"energy_min": stats["energy_min"], "energy_max": stats["energy_max"], **prior})
    logger.info("FreGrad: %d parameters", model.num_parameters())
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)

    def step_loss(
        batch: dict[str, Any], prepared: torch.nn.Module, fregrad: FreGrad
    ) -> tuple[torch.Tensor, dict]:
        return fregrad.training_loss(
            batch["audio"], batch["mel"], stft_weight=args.stft_loss_weight, denoiser=prepared
        )

    return fit_mel_vocoder(accelerator, args, model, optimizer, crops, valid_utts, step_loss, name="FreGrad")


if __name__ == "__main__":
    main(parse_args())
