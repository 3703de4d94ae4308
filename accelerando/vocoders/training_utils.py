"""Pieces shared by the mel vocoders' training scripts (FreGrad, PeriodWave, PeriodWave-Turbo).

- :func:`add_vocoder_data_arguments` and :func:`check_energy_max`: the data, prior and validation flags;
- :func:`vocoder_datasets`: training utterances, random training crops and validation utterances from
  an LJSpeech-style folder (``wavs/`` + ``metadata.csv``, optional ``split.json``) or LibriTTS;
- :func:`energy_stats`: the energy-based prior's statistics (:mod:`accelerando.vocoders.energy`), computed
  once and written to ``output_dir/energy_stats.json``;
- :func:`validate` and :func:`run_validation`: synthesise a few validation utterances at a checkpoint, save
  their wavs to ``output_dir/validation/step-N/`` and log mel L1 / M-STFT;
- :func:`fit_mel_vocoder`: the loop every mel vocoder's ``main`` shares (EMA, checkpoint hooks, crops loader,
  new crops each epoch, validation at each checkpoint and at the end, the final model).

A script's own flags (``--preset``, ``--validation_num_steps``, losses) stay in the script; the validation
reads ``args.validation_num_steps`` and calls ``model.synthesize(mel, num_steps=..., generator=...)``.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from accelerando import training as T
from accelerando.vocoders.energy import compute_energy_stats

__all__ = [
    "ENERGY_STATS_FILE",
    "add_corpus_arguments",
    "add_vocoder_data_arguments",
    "check_energy_max",
    "crops_loader",
    "energy_stats",
    "fit_mel_vocoder",
    "run_validation",
    "validate",
    "vocoder_datasets",
]

logger = logging.getLogger(__name__)

ENERGY_STATS_FILE = "energy_stats.json"
HOP_LENGTH = 256  # the shared MelConfig's hop; every vocoder preset uses it


def add_corpus_arguments(parser: argparse.ArgumentParser, *, segment_frames: int) -> argparse.ArgumentParser:
    """Add the corpus flags (``--data_dir``, ``--data_format``, the LibriTTS subsets, ``--segment_frames``)."""
    add = parser.add_argument
    add(
        "--data_dir",
        type=str,
        required=True,
        help="LJSpeech-style folder (wavs/ + metadata.csv) or LibriTTS.",
    )
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
    add("--segment_frames", type=T.positive_int, default=segment_frames, help="Mel frames per training crop.")
    add(
        "--overfit_ids",
        type=str,
        nargs="+",
        default=None,
        metavar="ID",
        help="Train and validate on these training utterances only (a sanity check: a vocoder should learn to "
        "copy a few utterances closely). Each step's batch then holds one random crop per utterance.",
    )
    return parser


def add_vocoder_data_arguments(
    parser: argparse.ArgumentParser, *, segment_frames: int, energy_max_default: str
) -> argparse.ArgumentParser:
    """Add the data, prior and validation flags to ``parser`` with a model's defaults.

    Args:
        segment_frames: default of ``--segment_frames`` (mel frames per training crop).
        energy_max_default: default of ``--energy_max``: a number as a string (e.g. ``"4.0"``) or ``"corpus"``.
    """
    add_corpus_arguments(parser, segment_frames=segment_frames)
    add = parser.add_argument
    add(
        "--energy_stats_items",
        type=T.positive_int,
        default=1000,
        help="Training utterances used for the prior's energy statistics (computed once).",
    )
    add(
        "--energy_max",
        type=str,
        default=energy_max_default,
        help="The prior's max frame energy: a number (PriorGrad's 4.0 override) or \"corpus\".",
    )
    add(
        "--num_validation_items", type=T.non_negative_int, default=2, help="Utterances synthesised per check."
    )
    add("--validation_seconds", type=T.positive_float, default=4.0, help="Longest validation audio.")
    return parser


def check_energy_max(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """Exit through ``parser.error`` unless ``--energy_max`` is a number or ``"corpus"``; return ``args``."""
    if args.energy_max != "corpus":
        try:
            float(args.energy_max)
        except ValueError:
            parser.error(f'--energy_max must be a number or "corpus"; got {args.energy_max!r}')
    return args


# --------------------------------------------------------------------------------------------- data


def vocoder_datasets(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(train utterances, train crops, validation utterances) from ``--data_dir``.

    An LJSpeech-style folder uses its ``split.json`` (all rows for training when it has none); a
    LibriTTS folder uses ``--train_subsets`` and ``--validation_subsets``. Without validation
    utterances the first training utterances are used for the checks. ``--overfit_ids`` narrows training and
    validation to those training utterances.
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
    if getattr(args, "overfit_ids", None):
        train_utts = valid_utts = train_utts.select(list(dict.fromkeys(args.overfit_ids)))
        logger.info(
            "Overfitting %d utterances: %s", len(train_utts), ", ".join(i[0] for i in train_utts.items)
        )
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
def validate(model: Any, valid_utts: Any, args: argparse.Namespace, step: int) -> dict[str, float]:
    """Synthesise the first validation utterances; save wavs; return mean mel L1 and M-STFT.

    ``model`` is a mel vocoder with ``config.sample_rate``, ``config.hop_length`` and
    ``synthesize(mel, num_steps=..., generator=...)``; ``args.validation_num_steps`` sets its steps.
    """
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


def _eval_model(accelerator: Any, model: torch.nn.Module, ema: Any) -> Any:
    """The unwrapped model, or a copy holding the EMA weights when training with EMA."""
    unwrapped = accelerator.unwrap_model(model)
    if ema is None:
        return unwrapped
    ema_model = type(unwrapped).from_config(unwrapped.config).to(accelerator.device)
    ema.copy_to(ema_model.parameters())
    return ema_model


def run_validation(
    accelerator: Any, model: Any, ema: Any, valid_utts: Any, args: argparse.Namespace, step: int
) -> None:
    """:func:`validate` (with the EMA weights if any) on the main process; log the metrics; sync."""
    if accelerator.is_main_process and args.num_validation_items > 0:
        metrics = validate(_eval_model(accelerator, model, ema), valid_utts, args, step)
        logger.info("step %d validation: %s", step, metrics)
        accelerator.log(metrics, step=step)
    accelerator.wait_for_everyone()


def crops_loader(crops: Any, args: argparse.Namespace) -> torch.utils.data.DataLoader:
    """Shuffled batches of ``--train_batch_size`` crops (the last short batch dropped when there is a full one)."""
    return torch.utils.data.DataLoader(
        crops,
        batch_size=args.train_batch_size,
        shuffle=True,
        num_workers=args.dataloader_num_workers,
        drop_last=len(crops) >= args.train_batch_size,
    )


def fit_mel_vocoder(
    accelerator: Any,
    args: argparse.Namespace,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    crops: Any,
    valid_utts: Any,
    step_loss: Callable[[dict[str, Any], torch.nn.Module, Any], tuple[torch.Tensor, dict]],
    *,
    name: str,
    lr_scheduler: Any = None,
) -> Path:
    """Train a mel vocoder on random crops; returns the final model's folder (``output_dir/model``).

    ``step_loss(batch, prepared_model, model) -> (loss, logs)`` computes one batch's loss: ``batch`` holds the
    crops' ``audio (B, T)``, ``mel (B, n_mels, frames)``, ``id`` and ``start_frame``; ``prepared_model`` is the
    model as Accelerate wraps it (call it for the forward pass that needs gradient sync) and ``model`` the
    unwrapped one (its loss helpers). The EMA (``--use_ema``), checkpoint hooks, the crops loader, new crops
    each epoch (the same ones after a resume), validation at every checkpoint and after the last step, and
    the final ``save_pretrained`` are shared by FreGrad, PeriodWave and MelNEWT.
    """
    ema = T.create_ema(model, args, accelerator)
    T.register_checkpoint_hooks(accelerator, model, ema)
    loader = crops_loader(crops, args)
    if lr_scheduler is None:
        prepared, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    else:
        prepared, optimizer, loader, lr_scheduler = accelerator.prepare(
            model, optimizer, loader, lr_scheduler
        )
    unwrapped = accelerator.unwrap_model(prepared)
    global_step = T.run_training_loop(
        accelerator,
        args,
        prepared,
        optimizer,
        loader,
        lambda batch, step: step_loss(batch, prepared, unwrapped),
        ema=ema,
        lr_scheduler=lr_scheduler,
        on_epoch_start=crops.set_epoch,
        on_checkpoint=lambda step: run_validation(accelerator, prepared, ema, valid_utts, args, step),
        name=name,
    )
    final = T.save_final_model(accelerator, prepared, args, ema)
    if global_step % args.checkpointing_steps != 0:
        run_validation(accelerator, prepared, ema, valid_utts, args, global_step)
    accelerator.end_training()
    return Path(final)
