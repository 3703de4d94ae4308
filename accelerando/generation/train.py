"""Train a MelDiT on single notes (``accelerando.data.NoteDataset``) with the rectified-flow objective.

Loss: ``|| v_theta(x_sigma, 1000 sigma, labels) - (noise - x0) ||^2`` with ``x_sigma = (1 - sigma) x0 + sigma
noise`` on normalised mels, sigma drawn uniformly or logit-normally (SD3 / FasterDiT); labels are dropped to
the null label with ``class_dropout_prob`` (a config field) for classifier-free guidance. EMA, checkpoints and
resuming come from ``accelerando.training``; the final model is a ``MelDiT.from_pretrained`` folder.

Example::

    accelerate launch -m accelerando.generation.train --data_dir data/instruments --preset small \\
        --output_dir out/meldit --train_batch_size 32 --learning_rate 2e-4 --max_train_steps 20000 --use_ema
"""

from __future__ import annotations

import argparse
import functools
import math
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from accelerando import training as T
from accelerando.generation.mel_dit import PRESETS, MelDiT, rectified_flow_loss

__all__ = ["build_dataset", "collate_notes", "main", "parse_args", "sample_sigmas"]

LOG_MEL_FLOOR = math.log(1e-5)  # MelConfig's clamp: the log-mel value of silence


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    T.add_training_args(parser, learning_rate=2e-4, train_batch_size=32, max_train_steps=20000)
    parser.add_argument("--data_dir", type=str, required=True, help="The instrument corpus folder.")
    parser.add_argument("--preset", type=str, default="small", choices=sorted(PRESETS))
    parser.add_argument("--num_frames", type=int, default=128, help="Mel frames per training crop.")
    parser.add_argument("--class_dropout_prob", type=float, default=0.1)
    parser.add_argument(
        "--timestep_sampling", type=str, default="logit_normal", choices=["uniform", "logit_normal"]
    )
    parser.add_argument("--weight_decay", type=float, default=0.0)
    return parser.parse_args(argv)


def build_dataset(args: argparse.Namespace) -> Dataset:
    """The training split of ``NoteDataset`` (a function, so tests can swap in a small dataset)."""
    from accelerando.data import NoteDataset

    return NoteDataset(args.data_dir, split="train")


def collate_notes(items: list[dict[str, Any]], num_frames: int) -> dict[str, torch.Tensor]:
    """Stack notes: mels cropped from the onset or padded with silence to ``num_frames``.

    Returns ``mel`` ``(B, 1, n_mels, num_frames)`` natural-log mels and ``(B,)`` long ``program`` / ``pitch`` /
    ``velocity``.
    """
    mels = []
    for item in items:
        mel = torch.as_tensor(item["mel"], dtype=torch.float32)[:, :num_frames]  # (n_mels, <= num_frames)
        pad = num_frames - mel.shape[1]
        mels.append(torch.nn.functional.pad(mel, (0, pad), value=LOG_MEL_FLOOR))
    labels = {
        k: torch.tensor([int(item[k]) for item in items], dtype=torch.long)
        for k in ("program", "pitch", "velocity")
    }
    return {"mel": torch.stack(mels)[:, None], **labels}


def sample_sigmas(
    batch_size: int, kind: str, device: torch.device, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Noise levels for a batch: ``uniform`` in [0, 1] or ``logit_normal`` (sigmoid of N(0, 1); Esser et al. 2024)."""
    if kind == "uniform":
        return torch.rand(batch_size, generator=generator, device=device)
    if kind == "logit_normal":
        return torch.sigmoid(torch.randn(batch_size, generator=generator, device=device))
    raise ValueError(f"Unknown timestep sampling {kind!r}; choose 'uniform' or 'logit_normal'.")


def main(args: argparse.Namespace) -> MelDiT:
    accelerator = T.create_accelerator(args, project_name="meldit")
    model = MelDiT.from_preset(
        args.preset, num_frames=args.num_frames, class_dropout_prob=args.class_dropout_prob
    )
    ema = T.create_ema(model, args, accelerator)
    T.register_checkpoint_hooks(accelerator, model, ema)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    loader = DataLoader(
        build_dataset(args),
        batch_size=args.train_batch_size,
        shuffle=True,
        drop_last=False,
        num_workers=args.dataloader_num_workers,
        collate_fn=functools.partial(collate_notes, num_frames=args.num_frames),
    )
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    steps_per_epoch = T.num_update_steps_per_epoch(loader, args)
    global_step, first_epoch, resume_step = T.resume(accelerator, args, steps_per_epoch)
    bar = T.progress_bar(accelerator, args.max_train_steps, global_step)
    unwrapped = accelerator.unwrap_model(model)
    model.train()
    for epoch in range(first_epoch, math.ceil(args.max_train_steps / steps_per_epoch)):
        for batch in T.epoch_batches(accelerator, loader, epoch, first_epoch, resume_step):
            with accelerator.accumulate(model):
                x0 = unwrapped.normalize_mel(batch["mel"])  # (B, 1, n_mels, frames) model space
                sigmas = sample_sigmas(x0.shape[0], args.timestep_sampling, x0.device)
                loss = rectified_flow_loss(
                    model, x0, batch["program"], batch["pitch"], batch["velocity"], sigmas
                )
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            if accelerator.sync_gradients:
                if ema is not None:
                    ema.step(model.parameters())
                global_step += 1
                bar.update(1)
                accelerator.log({"loss": loss.detach().item()}, step=global_step)
                if global_step % args.checkpointing_steps == 0:
                    T.save_checkpoint(accelerator, args, global_step)
            if global_step >= args.max_train_steps:
                break
        if global_step >= args.max_train_steps:
            break
    T.save_final_model(accelerator, model, args, ema)
    accelerator.end_training()
    return accelerator.unwrap_model(model)


if __name__ == "__main__":
    main(parse_args())
