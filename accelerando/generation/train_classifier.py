"""Train the ``NoteClassifier`` (instrument + MIDI pitch) on the note corpus (``accelerando.data.NoteDataset``).

Loss: cross-entropy on the instrument head plus ``--pitch_loss_weight`` times cross-entropy on the 128-way pitch
head. Augmentation (training only): a random time shift of the note (``--max_shift_frames``, the gap filled with
the log-mel floor of silence) and a random gain (``--max_gain_db``, added in the log domain, clamped at the
floor). The whole split is turned into mels once, in memory. At every checkpoint and at the end the validation
split is scored with ``note_metrics`` and appended to ``output_dir/validation.json``; the final model is a
``NoteClassifier.from_pretrained`` folder in ``output_dir/model``.

Example::

    OMP_NUM_THREADS=2 python -m accelerando.generation.train_classifier --data_dir corpora/instruments \\
        --output_dir out/note-classifier --max_train_steps 1000

    # held-out score (test split, Fréchet distance to the validation split's embeddings)
    python -c "from accelerando.generation.train_classifier import evaluate_split; \\
        print(evaluate_split('out/note-classifier/model', 'corpora/instruments', 'test', 'validation'))"
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from accelerando import training as T
from accelerando.generation.classifier import LOG_MEL_FLOOR, NoteClassifier, note_metrics

__all__ = ["augment", "build_dataset", "evaluate_split", "load_notes", "main", "parse_args"]

logger = logging.getLogger(__name__)

DB_PER_NEPER = 20 / math.log(10)  # a gain of g dB adds g / DB_PER_NEPER to a natural-log magnitude mel


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    T.add_training_args(
        parser, learning_rate=2e-3, train_batch_size=32, max_train_steps=1000, checkpointing_steps=250
    )
    add = parser.add_argument
    add("--data_dir", type=str, required=True, help="The instrument corpus folder.")
    add("--validation_split", type=str, default="validation", help="Split scored at each checkpoint.")
    add(
        "--num_frames",
        type=T.positive_int,
        default=128,
        help="Frames the classifier looks at (multiple of 32).",
    )
    add("--embedding_dim", type=T.positive_int, default=128)
    add("--dropout", type=float, default=0.2)
    add("--weight_decay", type=float, default=1e-4)
    add("--warmup_steps", type=T.non_negative_int, default=50, help="Linear warm-up before the cosine decay.")
    add("--pitch_loss_weight", type=T.positive_float, default=1.0)
    add("--label_smoothing", type=float, default=0.05)
    add("--max_shift_frames", type=T.non_negative_int, default=6, help="Random time shift, +-frames.")
    add("--max_gain_db", type=float, default=8.0, help="Random gain, +-dB.")
    args = parser.parse_args(argv)
    if args.use_ema:
        parser.error(
            "--use_ema is not supported: the classifier's BatchNorm statistics are not averaged by EMA"
        )
    return args


def build_dataset(args: argparse.Namespace, split: str) -> Dataset:
    """A split of ``NoteDataset`` (a function, so tests can swap in a small dataset)."""
    from accelerando.data import NoteDataset

    return NoteDataset(args.data_dir, split=split)


def load_notes(dataset: Dataset, num_frames: int) -> dict[str, Any]:
    """All notes of ``dataset`` as tensors: ``mel`` ``(N, n_mels, num_frames)`` (cropped from the onset or padded
    with the floor), ``program`` / ``pitch`` ``(N,)`` long, and ``families`` ``{program: family}``."""
    mels, programs, pitches, families = [], [], [], {}
    for i in range(len(dataset)):
        item = dataset[i]
        mel = torch.as_tensor(item["mel"], dtype=torch.float32)[:, :num_frames]  # (n_mels, <= num_frames)
        mels.append(F.pad(mel, (0, num_frames - mel.shape[1]), value=LOG_MEL_FLOOR))
        programs.append(int(item["program"]))
        pitches.append(int(item["pitch"]))
        families[int(item["program"])] = str(item["family"])
    if not mels:
        raise ValueError("the dataset is empty; build the corpus with `accelerando corpus instruments`")
    return {
        "mel": torch.stack(mels),
        "program": torch.tensor(programs, dtype=torch.long),
        "pitch": torch.tensor(pitches, dtype=torch.long),
        "families": families,
    }


def augment(mel: torch.Tensor, max_shift: int, max_gain_db: float, generator: torch.Generator | None = None):
    """Random time shift (``+-max_shift`` frames, gaps at the log-mel floor) and gain (``+-max_gain_db``) of
    ``(B, n_mels, T)`` log-mels; returns the same shape."""
    b, _, t = mel.shape
    if max_shift > 0:
        shift = torch.randint(-max_shift, max_shift + 1, (b, 1, 1), generator=generator, device=mel.device)
        src = torch.arange(t, device=mel.device).view(1, 1, t) - shift  # (B, 1, T) source frame of each frame
        valid = (src >= 0) & (src < t)
        mel = torch.gather(mel, 2, src.clamp(0, t - 1).expand_as(mel))
        mel = torch.where(valid, mel, torch.full_like(mel, LOG_MEL_FLOOR))
    if max_gain_db > 0:
        gain = (torch.rand(b, 1, 1, generator=generator, device=mel.device) * 2 - 1) * max_gain_db
        mel = (mel + gain / DB_PER_NEPER).clamp_min(LOG_MEL_FLOOR)
    return mel


def _lr_lambda(warmup: int, total: int):
    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return schedule


def _score(model: NoteClassifier, notes: dict[str, Any]) -> dict[str, float]:
    was_training = model.training
    model.eval()
    try:
        return note_metrics(model, notes["mel"].to(model.device), notes["program"], notes["pitch"])
    finally:
        model.train(was_training)


def main(args: argparse.Namespace) -> NoteClassifier:
    accelerator = T.create_accelerator(args, project_name="note-classifier")
    train = load_notes(build_dataset(args, "train"), args.num_frames)
    validation = load_notes(build_dataset(args, args.validation_split), args.num_frames)
    programs = sorted(train["families"])
    mel = train["mel"]
    model = NoteClassifier(
        programs=programs,
        families=[train["families"][p] for p in programs],
        n_mels=mel.shape[1],
        num_frames=args.num_frames,
        embedding_dim=args.embedding_dim,
        dropout=args.dropout,
        mel_mean=round(float(mel.mean()), 3),
        mel_std=round(float(mel.std()), 3),
    )
    T.register_checkpoint_hooks(accelerator, model)
    dataset = TensorDataset(mel, model.program_index(train["program"]), train["pitch"])
    loader = DataLoader(
        dataset, batch_size=args.train_batch_size, shuffle=True, num_workers=args.dataloader_num_workers
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(args.warmup_steps, args.max_train_steps)
    )
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    unwrapped = accelerator.unwrap_model(model)
    steps_per_epoch = T.num_update_steps_per_epoch(loader, args)
    global_step, first_epoch, resume_step = T.resume(accelerator, args, steps_per_epoch)
    bar = T.progress_bar(accelerator, args.max_train_steps, global_step)
    history_path = Path(args.output_dir) / "validation.json"
    history = json.loads(history_path.read_text()) if history_path.is_file() else []

    def validate(step: int) -> None:
        if not accelerator.is_main_process:
            return
        scores = {"step": step, **_score(unwrapped, validation)}
        history.append(scores)
        history_path.write_text(json.dumps(history, indent=2))
        accelerator.log({f"val/{k}": v for k, v in scores.items() if k != "step"}, step=step)
        logger.info("validation at step %d: %s", step, scores)

    model.train()
    for epoch in range(first_epoch, math.ceil(args.max_train_steps / steps_per_epoch)):
        for x, instrument, pitch in T.epoch_batches(accelerator, loader, epoch, first_epoch, resume_step):
            with accelerator.accumulate(model):
                out = model(augment(x, args.max_shift_frames, args.max_gain_db))
                ls = args.label_smoothing
                loss_inst = F.cross_entropy(out["instrument_logits"], instrument, label_smoothing=ls)
                loss_pitch = F.cross_entropy(out["pitch_logits"], pitch, label_smoothing=ls)
                loss = loss_inst + args.pitch_loss_weight * loss_pitch
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            if accelerator.sync_gradients:
                global_step += 1
                bar.update(1)
                bar.set_postfix(inst=f"{loss_inst.item():.3f}", pitch=f"{loss_pitch.item():.3f}")
                accelerator.log(
                    {
                        "loss": loss.item(),
                        "loss_instrument": loss_inst.item(),
                        "loss_pitch": loss_pitch.item(),
                    },
                    step=global_step,
                )
                if global_step % args.checkpointing_steps == 0:
                    T.save_checkpoint(accelerator, args, global_step)
                    validate(global_step)
            if global_step >= args.max_train_steps:
                break
        if global_step >= args.max_train_steps:
            break
    model.eval()
    T.save_final_model(accelerator, model, args)
    if global_step % args.checkpointing_steps != 0:
        validate(global_step)
    accelerator.end_training()
    return unwrapped


@torch.no_grad()
def evaluate_split(
    model: NoteClassifier | str | os.PathLike,
    data_dir: str | os.PathLike,
    split: str = "test",
    reference_split: str | None = "validation",
) -> dict[str, float]:
    """``note_metrics`` of a classifier on a corpus split, real notes labelled with what was rendered.

    With ``reference_split`` the result also has ``frechet_distance`` between the two splits' embeddings: the
    real-vs-real floor that a generator's distance to real notes should be read against.
    """
    if not isinstance(model, NoteClassifier):
        model = NoteClassifier.from_pretrained(model)
    model.eval()
    args = argparse.Namespace(data_dir=str(data_dir))
    num_frames = model.config.num_frames
    notes = load_notes(build_dataset(args, split), num_frames)
    reference = None
    if reference_split is not None:
        reference = model.embed(load_notes(build_dataset(args, reference_split), num_frames)["mel"])
    return note_metrics(model, notes["mel"], notes["program"], notes["pitch"], reference_embeddings=reference)


if __name__ == "__main__":
    main(parse_args())
