"""Train NEWT on melodies of one instrument (``accelerando.data.MelodyDataset``, 16 kHz, f0 + loudness).

Recipe of neural waveshaping synthesis (Hayes et al., ISMIR 2021): 4 s segments, batch 8, Adam with lr 1e-3
decayed by 0.9 every 10k steps, gradient norm clipped at 2.0, multi-resolution STFT loss; the controls are
the corpus's f0 (Hz) and loudness normalised ``(dB + 80) / 80``. Every checkpoint's ``model/`` folder is a
loadable :class:`~.model.NEWT`; ``NEWT.from_pretrained(...).to_fast()`` gives the FastNEWT.

Example::

    accelerate launch -m accelerando.vocoders.newt.train --data_dir data/instruments \\
        --instrument violin --output_dir runs/newt-violin --max_train_steps 120000
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from accelerando import training as T
from accelerando.audio import MultiResolutionSTFTLoss, normalize_loudness
from accelerando.vocoders.newt.model import NEWT

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add NEWT's flags and the shared training flags (with the paper's defaults) to ``parser``."""
    add = parser.add_argument
    add("--data_dir", type=str, required=True, help="Instrument corpus folder (holds melodies/).")
    add("--instrument", type=str, default=None, help="Train on this instrument only (default: all).")
    add("--segment_frames", type=T.positive_int, default=500, help="Control frames per crop (500 = 4 s).")
    add("--model_config", type=str, default=None, help="A NEWT config.json (default: the paper model).")
    add(
        "--f0_source",
        choices=("extracted", "midi"),
        default="extracted",
        help="Training f0: pYIN on the recording (the paper's CREPE role; cached in output_dir/f0_cache) "
        "or the corpus's MIDI f0 (kept for evaluation).",
    )
    add("--lr_decay", type=T.positive_float, default=0.9, help="Learning-rate factor every interval.")
    add("--lr_decay_interval", type=T.positive_int, default=10_000, help="Steps between decays.")
    return T.add_training_args(
        parser,
        output_dir="output/newt",
        train_batch_size=8,
        learning_rate=1e-3,
        max_train_steps=120_000,
        checkpointing_steps=5000,
        max_grad_norm=2.0,
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="accelerando train newt",
        description="Train the NEWT neural waveshaping synthesiser.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    return add_arguments(parser).parse_args(argv)


class MelodySegments(Dataset):
    """Random crops of ``segment_frames`` control frames from melodies (zero-padded when shorter).

    Items: ``{"audio": (frames * hop,), "f0_hz": (frames,), "loudness": (frames,)}`` with loudness
    normalised for NEWT. Every access draws a fresh crop offset from torch's global generator, so each epoch
    sees other parts of every melody; Accelerate seeds and checkpoints that generator, so runs are
    reproducible and resume exactly (with ``num_workers=0``). ``f0_override`` maps a melody id to the f0
    track to train on (e.g. pYIN's) instead of the corpus's MIDI f0.
    """

    def __init__(
        self,
        melodies: Any,
        indices: Sequence[int],
        segment_frames: int,
        hop: int,
        f0_override: dict[str, torch.Tensor] | None = None,
    ):
        self.melodies, self.indices = melodies, list(indices)
        self.segment_frames, self.hop = segment_frames, hop
        self.f0_override = f0_override or {}

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = self.melodies[self.indices[i]]
        if item["hop_length"] != self.hop:
            raise ValueError(
                f"Melody {item['id']!r} has control hop {item['hop_length']}; the model expects {self.hop}"
            )
        if item["id"] in self.f0_override:
            f0 = self.f0_override[item["id"]].float()  # (F,), 0 Hz where unvoiced
        else:
            f0 = item["f0_hz"].float() * item["voiced"].float()  # (F,), 0 Hz where unvoiced
        loudness = normalize_loudness(item["loudness_db"].float())  # (F,)
        n = self.segment_frames
        start = 0
        if f0.shape[0] > n:
            start = int(torch.randint(0, f0.shape[0] - n + 1, (1,)))
        f0, loudness = f0[start : start + n], loudness[start : start + n]
        audio = item["audio"].float()[start * self.hop : (start + n) * self.hop]
        pad = n - f0.shape[0]
        return {
            "audio": torch.nn.functional.pad(audio, (0, n * self.hop - audio.shape[0])),
            "f0_hz": torch.nn.functional.pad(f0, (0, pad)),
            "loudness": torch.nn.functional.pad(loudness, (0, pad)),
        }


def extracted_f0(melodies: Any, indices: Sequence[int], cache_dir: Path, hop: int) -> dict[str, torch.Tensor]:
    """pYIN f0 (0 Hz where unvoiced) of each melody, aligned to its control frames; cached as ``.npy``."""
    from tqdm.auto import tqdm

    from accelerando.audio import cached_f0

    out = {}
    for i in tqdm(indices, desc="pYIN f0"):
        item = melodies[i]
        path = cache_dir / f"{item['id']}.npy"
        frames = item["f0_hz"].shape[0]
        f0 = cached_f0(item["audio"], melodies.sample_rate, path, hop, num_frames=frames)
        out[item["id"]] = torch.from_numpy(f0)
    return out


def build_model(args: argparse.Namespace) -> NEWT:
    if args.model_config is None:
        return NEWT()
    config = json.loads(Path(args.model_config).read_text())
    return NEWT.from_config(config)


def main(args: argparse.Namespace) -> Path:
    """Train; returns the folder of the final ``save_pretrained`` model."""
    from accelerando.data import MelodyDataset

    accelerator = T.create_accelerator(args, project_name="newt")
    model = build_model(args)
    if model.config.use_lookup_table:
        raise ValueError(
            "Train the MLP model (use_lookup_table=False); make a FastNEWT from it with to_fast()"
        )
    loss_fn = MultiResolutionSTFTLoss().to(accelerator.device)
    melodies = MelodyDataset(args.data_dir, split="train", sample_rate=model.config.sample_rate)
    indices = [
        i
        for i, row in enumerate(melodies.rows)
        if args.instrument is None or row["instrument"] == args.instrument
    ]
    if not indices:
        raise ValueError(f"No training melodies for instrument {args.instrument!r} in {args.data_dir}")
    if args.segment_frames * model.config.control_hop <= max(loss_fn.fft_sizes) // 2:
        raise ValueError(
            f"--segment_frames {args.segment_frames} gives {args.segment_frames * model.config.control_hop} "
            f"samples, too short for the MR-STFT loss's {max(loss_fn.fft_sizes)}-point FFT; use more frames"
        )
    f0_override = None
    if args.f0_source == "extracted":
        f0_override = extracted_f0(
            melodies, indices, Path(args.output_dir) / "f0_cache", model.config.control_hop
        )
    data = MelodySegments(
        melodies, indices, args.segment_frames, model.config.control_hop, f0_override=f0_override
    )
    loader = torch.utils.data.DataLoader(
        data,
        batch_size=args.train_batch_size,
        shuffle=True,
        drop_last=len(data) >= args.train_batch_size,
        num_workers=args.dataloader_num_workers,
    )
    ema = T.create_ema(model, args, accelerator)
    T.register_checkpoint_hooks(accelerator, model, ema)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, args.lr_decay_interval, args.lr_decay)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)

    def step_fn(batch: dict[str, torch.Tensor], global_step: int) -> tuple[torch.Tensor, dict]:
        audio = model(batch["f0_hz"], batch["loudness"])  # (B, T), fresh noise and phases
        return loss_fn(audio, batch["audio"]), {}

    T.run_training_loop(
        accelerator,
        args,
        model,
        optimizer,
        loader,
        step_fn,
        ema=ema,
        lr_scheduler=scheduler,
        on_epoch_start=lambda epoch: model.train(),
        name="NEWT",
    )
    final = T.save_final_model(accelerator, model, args, ema)
    accelerator.end_training()
    return Path(final)


if __name__ == "__main__":
    main(parse_args())
