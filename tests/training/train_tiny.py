"""Train a tiny MLP regression with the accelerando training scaffold (a test fixture and an example).

Run it alone or under ``accelerate launch``::

    python tests/training/train_tiny.py --output_dir /tmp/tiny --max_train_steps 12 --checkpointing_steps 4
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 tests/training/train_tiny.py --output_dir /tmp/tiny2

It writes ``losses.jsonl`` (one ``{"step", "epoch", "loss"}`` line per optimizer step, rank 0 only) and,
at the end, ``final-rank{R}.json`` per process with the world size and SHA-256 hashes of the weights.
``--step_sleep`` (or env ``TRAIN_TINY_STEP_SLEEP``) pauses after each step so a test can kill it mid-run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from diffusers.optimization import get_scheduler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from accelerando import training as T
from accelerando.modeling import AccelerandoModel


class TinyMLP(AccelerandoModel):
    """A 2-layer MLP: ``(B, in_features) -> (B, 1)``."""

    @register_to_config
    def __init__(self, in_features: int = 4, hidden: int = 16):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))  # (B, 1)


def make_dataset(num_samples: int, in_features: int, seed: int) -> TensorDataset:
    """Seeded synthetic regression data: ``y = sin(x @ w) + 0.05 * noise``."""
    gen = torch.Generator().manual_seed(seed + 1234)
    x = torch.randn(num_samples, in_features, generator=gen)
    w = torch.randn(in_features, 1, generator=gen)
    y = torch.sin(x @ w) + 0.05 * torch.randn(num_samples, 1, generator=gen)
    return TensorDataset(x, y)


def params_sha256(params: Iterable[torch.Tensor]) -> str:
    """Hash of the exact bytes of ``params`` (order matters)."""
    digest = hashlib.sha256()
    for p in params:
        digest.update(p.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    T.add_training_args(
        parser,
        train_batch_size=8,
        learning_rate=1e-2,
        max_train_steps=12,
        checkpointing_steps=4,
        use_ema=True,
    )
    parser.add_argument("--num_samples", type=T.positive_int, default=48)
    parser.add_argument("--hidden", type=T.positive_int, default=16)
    parser.add_argument("--step_sleep", type=float, default=float(os.environ.get("TRAIN_TINY_STEP_SLEEP", 0)))
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> None:
    accelerator = T.create_accelerator(args, project_name="train_tiny")
    model = TinyMLP(hidden=args.hidden)  # after create_accelerator: the init is seeded
    ema = T.create_ema(model, args, accelerator)
    T.register_checkpoint_hooks(accelerator, model, ema)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)
    loader = DataLoader(
        make_dataset(args.num_samples, 4, args.seed),
        batch_size=args.train_batch_size,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(args.seed),
        num_workers=args.dataloader_num_workers,
    )
    # accelerate steps a prepared scheduler once per process per optimizer step.
    scheduler = get_scheduler(
        "cosine",
        optimizer,
        num_warmup_steps=2 * accelerator.num_processes,
        num_training_steps=args.max_train_steps * accelerator.num_processes,
    )
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)

    loss_log = Path(args.output_dir) / "losses.jsonl"
    current = {"epoch": 0}

    def on_epoch_start(epoch: int) -> None:
        current["epoch"] = epoch
        model.train()

    def step_fn(batch: list[torch.Tensor], global_step: int) -> tuple[torch.Tensor, dict]:
        x, y = batch
        x = x + 0.01 * torch.randn_like(x)  # global-RNG noise: checks that resume restores RNG state
        return F.mse_loss(model(x), y), {}

    def on_step(global_step: int, loss: torch.Tensor) -> None:
        mean_loss = accelerator.gather(loss.detach()[None]).mean().item()
        if accelerator.is_main_process:
            with loss_log.open("a") as f:
                f.write(
                    json.dumps({"step": global_step, "epoch": current["epoch"], "loss": mean_loss}) + "\n"
                )
                f.flush()
                os.fsync(f.fileno())
        if args.step_sleep > 0:
            time.sleep(args.step_sleep)

    global_step = T.run_training_loop(
        accelerator,
        args,
        model,
        optimizer,
        loader,
        step_fn,
        ema=ema,
        lr_scheduler=scheduler,
        on_epoch_start=on_epoch_start,
        on_step=on_step,
        name="TinyMLP",
    )

    T.save_final_model(accelerator, model, args, ema)
    unwrapped = accelerator.unwrap_model(model)
    final = {
        "rank": accelerator.process_index,
        "world_size": accelerator.num_processes,
        "steps": global_step,
        "params_sha256": params_sha256(unwrapped.parameters()),
        "ema_sha256": params_sha256(ema.shadow_params) if ema is not None else None,
    }
    Path(args.output_dir, f"final-rank{accelerator.process_index}.json").write_text(json.dumps(final))
    accelerator.end_training()


if __name__ == "__main__":
    main(parse_args())
