"""Fine-tune a trained PeriodWave into PeriodWave-Turbo (arXiv 2408.08019).

The generator is initialised from ``--pretrained_model_name_or_path`` (a ``PeriodWave`` folder, e.g. the
``model/`` folder written by :mod:`.train`); its 2 or 4 Euler steps are unrolled and trained end to end
against MPD (periods 2, 3, 5, 7, 11) and MS-SB-CQTD with

``L_G = 45 * multi-scale mel (DAC: windows 32..2048, pow 1, log only) + 2 * feature matching + LSGAN``,
``L_D = LSGAN`` on both discriminators; AdamW with lr 2e-5 for both, crops of 32,768 samples, temperature 1.

Each checkpoint's ``model/`` folder is a loadable ``PeriodWaveTurbo``; the discriminators and both optimizers
live in accelerate's state, so ``--resume_from_checkpoint latest`` continues the adversarial game.

Example::

    accelerate launch -m accelerando.vocoders.periodwave.train_turbo --data_dir data/speech \\
        --pretrained_model_name_or_path runs/periodwave/model --output_dir runs/periodwave-turbo
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import torch

from accelerando import training as T
from accelerando.audio import MultiScaleMelLoss
from accelerando.vocoders.discriminators import (
    MultiPeriodDiscriminator,
    MultiScaleSubbandCQTDiscriminator,
    discriminator_loss,
    feature_loss,
    generator_loss,
)
from accelerando.vocoders.periodwave.turbo import TURBO_STEPS, PeriodWaveTurbo
from accelerando.vocoders.training_utils import (
    add_vocoder_data_arguments,
    check_energy_max,
    crops_loader,
    run_validation,
    vocoder_datasets,
)

__all__ = ["add_arguments", "main", "parse_args"]

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add PeriodWave-Turbo's flags and the shared training flags (with the Turbo defaults) to ``parser``."""
    add_vocoder_data_arguments(parser, segment_frames=128, energy_max_default="corpus")
    add = parser.add_argument
    add(
        "--pretrained_model_name_or_path",
        type=str,
        required=True,
        help="A trained PeriodWave folder (the teacher), or a PeriodWaveTurbo folder to continue from.",
    )
    add("--num_steps", type=int, default=4, choices=TURBO_STEPS, help="Euler steps of the generator.")
    add("--temperature", type=T.positive_float, default=1.0, help="Prior temperature while fine-tuning.")
    add("--mel_loss_weight", type=float, default=45.0, help="Weight of the multi-scale mel loss.")
    add("--feature_loss_weight", type=float, default=2.0, help="Weight of feature matching.")
    add("--adversarial_loss_weight", type=float, default=1.0, help="Weight of the LSGAN generator loss.")
    add("--cqtd_filters", type=T.positive_int, default=128, help="Channels of the MS-SB-CQTD conv stack.")
    add("--mpd_channel_mult", type=T.positive_float, default=1.0, help="Channel multiplier of the MPD.")
    return T.add_training_args(
        parser,
        output_dir="output/periodwave-turbo",
        train_batch_size=8,
        learning_rate=2e-5,
        max_train_steps=1_000_000,
        checkpointing_steps=1000,
        max_grad_norm=1000.0,  # the reference clips both discriminators at 1000
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="accelerando train periodwave-turbo",
        description="Fine-tune a PeriodWave into PeriodWave-Turbo (adversarial flow matching).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    args = check_energy_max(parser, add_arguments(parser).parse_args(argv))
    args.validation_num_steps = args.num_steps  # read by the shared validation
    return args


def load_generator(path: str, num_steps: int, temperature: float) -> PeriodWaveTurbo:
    """The generator to fine-tune: a ``PeriodWave`` teacher folder, or a ``PeriodWaveTurbo`` folder to go on from.

    A Turbo folder (for example a bundled checkpoint, when the teacher's run is gone) keeps its weights and
    takes ``num_steps`` / ``temperature`` from the flags.
    """
    from accelerando.pretrained.loading import load

    source = load(
        path, expect=("PeriodWave", "PeriodWaveTurbo")
    ).float()  # a Turbo is a PeriodWave plus settings
    return PeriodWaveTurbo.from_periodwave(source.train(), num_steps=num_steps, temperature=temperature)


def main(args: argparse.Namespace) -> Path:
    """Fine-tune; returns the folder of the final ``PeriodWaveTurbo`` (``output_dir/model``)."""
    accelerator = T.create_accelerator(args, project_name="periodwave-turbo")
    _, crops, valid_utts = vocoder_datasets(args)
    model = load_generator(args.pretrained_model_name_or_path, args.num_steps, args.temperature)
    mpd = MultiPeriodDiscriminator(channel_mult=args.mpd_channel_mult)
    cqtd = MultiScaleSubbandCQTDiscriminator(sample_rate=model.config.sample_rate, filters=args.cqtd_filters)
    mel_loss = MultiScaleMelLoss(sample_rate=model.config.sample_rate, pow=1.0, mag_weight=0.0)
    logger.info("PeriodWave-Turbo: %d parameters, %d steps", model.num_parameters(), args.num_steps)
    ema = T.create_ema(model, args, accelerator)
    T.register_checkpoint_hooks(accelerator, model, ema)
    optim_g = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)
    optim_d = torch.optim.AdamW(itertools.chain(mpd.parameters(), cqtd.parameters()), lr=args.learning_rate)
    loader = crops_loader(crops, args)
    model, mpd, cqtd, optim_g, optim_d, loader = accelerator.prepare(
        model, mpd, cqtd, optim_g, optim_d, loader
    )
    mel_loss = mel_loss.to(accelerator.device)
    turbo = accelerator.unwrap_model(model)

    steps_per_epoch = T.num_update_steps_per_epoch(loader, args)
    global_step, first_epoch, resume_step = T.resume(accelerator, args, steps_per_epoch)
    bar = T.progress_bar(accelerator, args.max_train_steps, global_step)
    for epoch in range(first_epoch, math.ceil(args.max_train_steps / steps_per_epoch)):
        crops.set_epoch(epoch)
        for batch in T.epoch_batches(accelerator, loader, epoch, first_epoch, resume_step):
            y, mel = batch["audio"].unsqueeze(1), batch["mel"]  # (B, 1, T), (B, 80, frames)
            with accelerator.accumulate(model, mpd, cqtd):
                y_hat = turbo.generate_train(mel, estimator=model)  # (B, 1, T), differentiable

                # Discriminators: LSGAN on real vs detached fakes.
                loss_d = sum(discriminator_loss(*disc(y, y_hat.detach())[:2]) for disc in (mpd, cqtd))
                accelerator.backward(loss_d)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(itertools.chain(mpd.parameters(), cqtd.parameters()), 1000.0)
                optim_d.step()
                optim_d.zero_grad()

                # Generator: reconstruction + feature matching + adversarial.
                loss_mel = mel_loss(y_hat.squeeze(1), y.squeeze(1))
                loss_fm = loss_adv = 0.0
                for disc in (mpd, cqtd):
                    _, fake, fmap_r, fmap_g = disc(y, y_hat)
                    loss_fm = loss_fm + feature_loss(fmap_r, fmap_g)
                    loss_adv = loss_adv + generator_loss(fake)
                loss_g = (
                    args.mel_loss_weight * loss_mel
                    + args.feature_loss_weight * loss_fm
                    + args.adversarial_loss_weight * loss_adv
                )
                accelerator.backward(loss_g)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optim_g.step()
                optim_g.zero_grad()
                optim_d.zero_grad()  # the generator pass also reached the discriminators
            if accelerator.sync_gradients:
                if not math.isfinite(loss_g.item()):
                    raise RuntimeError(
                        f"PeriodWave-Turbo generator loss became {loss_g.item()} at step {global_step}"
                    )
                if ema is not None:
                    ema.step(model.parameters())
                global_step += 1
                bar.update(1)
                logs = {
                    "loss_g": loss_g.item(),
                    "loss_d": loss_d.item(),
                    "loss_mel": loss_mel.item(),
                    "loss_fm": loss_fm.item(),
                    "loss_adv": loss_adv.item(),
                }
                bar.set_postfix(mel=f"{logs['loss_mel']:.3f}")
                accelerator.log(logs, step=global_step)
                if global_step % args.checkpointing_steps == 0:
                    T.save_checkpoint(accelerator, args, global_step)
                    run_validation(accelerator, model, ema, valid_utts, args, global_step)
            if global_step >= args.max_train_steps:
                break
        if global_step >= args.max_train_steps:
            break
    final = T.save_final_model(accelerator, model, args, ema)
    if global_step % args.checkpointing_steps != 0:
        run_validation(accelerator, model, ema, valid_utts, args, global_step)
    accelerator.end_training()
    return final


if __name__ == "__main__":
    main(parse_args())
