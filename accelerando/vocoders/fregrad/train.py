"""Train FreGrad on an LJSpeech-style folder (``wavs/`` + ``metadata.csv``, optional ``split.json``).

Recipe of FreGrad (ICASSP 2024, Sec. 4.1): 22.05 kHz, 80 mels, random crops of 62 frames, batch 16,
Adam with lr 2e-4, loss = prior-scaled MSE on the noise per band + 0.1 x MR-STFT. Before the first
step the frame-energy statistics of the prior are computed once over (a subset of) the training
split, written to ``output_dir/energy_stats.json`` and stored in the model config, so every
checkpoint's ``model/`` folder is a loadable ``FreGrad`` with its prior.

At each checkpoint (and at the end) a few validation utterances are synthesised; their wavs go to
``output_dir/validation/step-N/`` and mel L1 / M-STFT to the tracker and the log.

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
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from accelerando import training as T
from accelerando.vocoders.fregrad.model import PRESETS, FreGrad
from accelerando.vocoders.fregrad.prior import DEFAULT_ENERGY_MAX, compute_energy_stats

logger = logging.getLogger(__name__)

ENERGY_STATS_FILE = "energy_stats.json"
HOP_LENGTH = 256  # the shared MelConfig's hop; every preset uses it


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add FreGrad's flags and the shared training flags (with FreGrad's defaults) to ``parser``."""
    add = parser.add_argument
    add("--data_dir", type=str, required=True, help="LJSpeech-style folder (wavs/ + metadata.csv).")
    add("--data_format", type=str, default="auto", choices=["auto", "ljspeech", "libritts"])
    add(
        "--train_subsets", type=str, nargs="+", default=["train-clean-100"], help="LibriTTS training subsets."
    )
    add(
        "--validation_subsets",
        type=str,
        nargs="+",
        default=["dev-clean"],
        help="LibriTTS validation subsets.",
    )
    add("--preset", type=str, default="paper", choices=sorted(PRESETS), help="Model size.")
    add("--segment_frames", type=T.positive_int, default=62, help="Mel frames per training crop.")
    add("--stft_loss_weight", type=float, default=0.1, help="Weight of the MR-STFT term.")
    add(
        "--energy_stats_items",
        type=T.positive_int,
        default=1000,
        help="Training utterances used for the prior's energy statistics (computed once).",
    )
    add(
        "--energy_max",
        type=str,
        default=str(DEFAULT_ENERGY_MAX),
        help="The prior's max frame energy: a number (PriorGrad's 4.0 override) or \"corpus\".",
    )
    add(
        "--num_validation_items", type=T.non_negative_int, default=2, help="Utterances synthesised per check."
    )
    add("--validation_seconds", type=T.positive_float, default=4.0, help="Longest validation audio.")
    add("--validation_num_steps", type=T.positive_int, default=6, help="Sampling steps at validation.")
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
    args = add_arguments(parser).parse_args(argv)
    if args.energy_max != "corpus":
        try:
            float(args.energy_max)
        except ValueError:
            parser.error(f'--energy_max must be a number or "corpus"; got {args.energy_max!r}')
    return args


# --------------------------------------------------------------------------------------------- data


def _datasets(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(train utterances, train crops, validation utterances) from ``--data_dir``.

    An LJSpeech-style folder uses its ``split.json`` (all rows for training when it has none); a
    LibriTTS folder uses ``--train_subsets`` and ``--validation_subsets``. Without validation
    utterances the first training utterances are used for the checks.
    """
    from accelerando.data.datasets import AudioSegmentDataset, LibriTTSDataset, LJSpeechDataset

    root = Path(args.data_dir)
    data_format = args.data_format
    if data_format == "auto":
        data_format = "ljspeech" if (root / "metadata.csv").is_file() else "libritts"
    if data_format == "ljspeech":
        try:
            train_utts = LJSpeechDataset(root, split="train")
            valid_utts = LJSpeechDataset(root, split="validation")
        except FileNotFoundError as err:
            if not (root / "metadata.csv").is_file():
                raise
            logger.warning("%s; training on every row of %s", err, root / "metadata.csv")
            train_utts = valid_utts = LJSpeechDataset(root, split=None)
    else:
        train_utts = LibriTTSDataset(root, subsets=args.train_subsets)
        try:
            valid_utts = LibriTTSDataset(root, subsets=args.validation_subsets)
        except FileNotFoundError as err:
            logger.warning("%s; validating on training utterances", err)
            valid_utts = train_utts
    if len(train_utts) == 0:
        raise ValueError(f"{root} has no training utterances")
    if len(valid_utts) == 0:
        valid_utts = train_utts
    crops = AudioSegmentDataset(train_utts, segment_length=args.segment_frames * HOP_LENGTH, seed=args.seed)
    return train_utts, crops, valid_utts


def energy_stats(args: argparse.Namespace, train_utts: Any, accelerator: Any) -> dict[str, float]:
    """The prior's energy statistics: read from ``output_dir`` or computed once by the main process."""
    from accelerando.audio import mel_spectrogram

    path = Path(args.output_dir) / ENERGY_STATS_FILE
    if accelerator.is_main_process and not path.is_file():
        count = min(len(train_utts), args.energy_stats_items)
        if count == 0:
            raise ValueError(f"{args.data_dir} has no training utterances")
        mels = [mel_spectrogram(train_utts.load_audio(i)) for i in range(count)]
        low, high = compute_energy_stats(mels)
        energy_max = high if args.energy_max == "corpus" else float(args.energy_max)
        if not energy_max > low:
            raise ValueError(
                f"The corpus's minimum frame energy {low:.4g} is not below --energy_max {energy_max:.4g}; "
                "pass --energy_max corpus (or a larger number)."
            )
        stats = {
            "energy_min": low,
            "energy_max": energy_max,
            "corpus_energy_max": high,
            "items": count,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stats, indent=2))
        logger.info("Energy statistics over %d utterances: %s", count, stats)
    accelerator.wait_for_everyone()
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------------------- validation


@torch.no_grad()
def validate(model: FreGrad, valid_utts: Any, args: argparse.Namespace, step: int) -> dict[str, float]:
    """Synthesise the first validation utterances; save wavs; return mean mel L1 and M-STFT."""
    from accelerando.audio import mel_spectrogram, save_audio
    from accelerando.metrics import mel_l1, mstft_distance

    model.eval()
    cfg = model.config
    max_samples = int(args.validation_seconds * cfg.sample_rate) // cfg.hop_length * cfg.hop_length
    folder = Path(args.output_dir) / "validation" / f"step-{step}"
    scores: dict[str, list[float]] = {"val_mel_l1": [], "val_mstft": []}
    device = next(model.parameters()).device
    for i in range(min(args.num_validation_items, len(valid_utts))):
        item = valid_utts[i]
        audio = item["audio"][:max_samples]
        mel = mel_spectrogram(audio).to(device)  # (1, 80, frames)
        wav = model.synthesize(mel, num_steps=args.validation_num_steps, generator=_generator(device, i))[
            0
        ].cpu()
        ref = audio[: wav.shape[-1]]
        name = str(item.get("id", i)).replace("/", "_")
        save_audio(folder / f"{name}.wav", wav, cfg.sample_rate)
        scores["val_mel_l1"].append(mel_l1(wav, ref))
        if ref.shape[-1] > 1024:
            scores["val_mstft"].append(mstft_distance(wav, ref))
    model.train()
    return {k: sum(v) / len(v) for k, v in scores.items() if v}


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _eval_model(accelerator: Any, model: torch.nn.Module, ema: Any) -> FreGrad:
    unwrapped = accelerator.unwrap_model(model)
    if ema is None:
        return unwrapped
    ema_model = type(unwrapped).from_config(unwrapped.config).to(accelerator.device)
    ema.copy_to(ema_model.parameters())
    return ema_model


def _run_validation(
    accelerator: Any, model: Any, ema: Any, valid_utts: Any, args: argparse.Namespace, step: int
):
    if accelerator.is_main_process and args.num_validation_items > 0:
        metrics = validate(_eval_model(accelerator, model, ema), valid_utts, args, step)
        logger.info("step %d validation: %s", step, metrics)
        accelerator.log(metrics, step=step)
    accelerator.wait_for_everyone()


# ----------------------------------------------------------------------------------------------- main


def main(args: argparse.Namespace) -> Path:
    """Train; returns the folder of the final model (``output_dir/model``)."""
    accelerator = T.create_accelerator(args, project_name="fregrad")
    train_utts, crops, valid_utts = _datasets(args)
    stats = energy_stats(args, train_utts, accelerator)
    model = FreGrad.from_preset(args.preset, energy_min=stats["energy_min"], energy_max=stats["energy_max"])
    logger.info("FreGrad %s: %d parameters", args.preset, model.num_parameters())
    ema = T.create_ema(model, args, accelerator)
    T.register_checkpoint_hooks(accelerator, model, ema)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    loader = torch.utils.data.DataLoader(
        crops,
        batch_size=args.train_batch_size,
        shuffle=True,
        num_workers=args.dataloader_num_workers,
        drop_last=len(crops) >= args.train_batch_size,
    )
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    fregrad = accelerator.unwrap_model(model)

    steps_per_epoch = T.num_update_steps_per_epoch(loader, args)
    global_step, first_epoch, resume_step = T.resume(accelerator, args, steps_per_epoch)
    bar = T.progress_bar(accelerator, args.max_train_steps, global_step)
    for epoch in range(first_epoch, math.ceil(args.max_train_steps / steps_per_epoch)):
        crops.set_epoch(epoch)  # new random crops each epoch, the same ones after a resume
        for batch in T.epoch_batches(accelerator, loader, epoch, first_epoch, resume_step):
            with accelerator.accumulate(model):
                audio, mel = batch["audio"], batch["mel"]  # (B, T), (B, 80, frames)
                loss, parts = fregrad.training_loss(
                    audio, mel, stft_weight=args.stft_loss_weight, denoiser=model
                )
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            if accelerator.sync_gradients:
                if not math.isfinite(loss.item()):
                    raise RuntimeError(f"FreGrad training loss became {loss.item()} at step {global_step}")
                if ema is not None:
                    ema.step(model.parameters())
                global_step += 1
                bar.update(1)
                logs = {"loss": loss.item(), **{k: v.item() for k, v in parts.items()}}
                bar.set_postfix(loss=f"{logs['loss']:.4f}")
                accelerator.log(logs, step=global_step)
                if global_step % args.checkpointing_steps == 0:
                    T.save_checkpoint(accelerator, args, global_step)
                    _run_validation(accelerator, model, ema, valid_utts, args, global_step)
            if global_step >= args.max_train_steps:
                break
        if global_step >= args.max_train_steps:
            break
    final = T.save_final_model(accelerator, model, args, ema)
    if global_step % args.checkpointing_steps != 0:
        _run_validation(accelerator, model, ema, valid_utts, args, global_step)
    accelerator.end_training()
    return final


if __name__ == "__main__":
    main(parse_args())
