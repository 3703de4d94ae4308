"""Train Incremental FastPitch on an LJSpeech-style folder (``wavs/`` + ``metadata.csv`` + ``split.json``).

Recipe: FastPitch 1.1 (NVIDIA DeepLearningExamples) with the learned aligner, and the chunk-masked
decoder of Incremental FastPitch (Du et al., 2024): ``--mask_mode static`` trains with the fixed
``--chunk_size`` / ``--past_size`` mask, ``dynamic`` with random chunk / past sizes per utterance,
``full`` without a chunk mask (parallel FastPitch, the baseline). Batch 16. FastPitch uses LAMB with
lr 0.1 and a Noam schedule; here Adam (betas 0.9 / 0.98, eps 1e-9, weight decay 1e-6 as FastPitch) with
peak lr 1e-3, a linear warm-up over ``--lr_warmup_steps`` (1000) and an inverse-square-root decay
after it (the same schedule shape, without a LAMB dependency; not tuned against LAMB). Gradients are clipped
at 1000 (FastPitch's threshold). The aligner has its own parameter group whose learning rate is
``--aligner_lr_scale`` (default 1: the same) times the rest's, on the same schedule; a checkpoint from
before the split (one parameter group) resumes with its state mapped onto the two groups, while a
resumed two-group checkpoint keeps its saved learning rates (as for ``--learning_rate``). Loss
weights (duration / pitch / energy 0.1, aligner 1.0) and the binarization-loss warm-up
(``--binarization_start_step``, ``--binarization_warmup_steps``) are FastPitch 1.1's, in steps
instead of epochs.

Every voice in ``metadata.csv`` gets a speaker embedding (names in ``config.speakers``). Before the
first step, voiced-pitch statistics of the training split are computed once (pYIN, cached as one
``.npy`` per utterance under ``--pitch_cache_dir``; the cache is keyed by utterance id only, so
use a new folder when ``--pitch_fmin`` / ``--pitch_fmax`` change), written to
``output_dir/pitch_stats.json`` and stored in the model config (``pitch_mean``, ``pitch_std``), so every checkpoint's ``model/`` folder
is a loadable :class:`IncrementalFastPitch`.

At each checkpoint (and at the end) the validation split is scored: teacher-forced mel L1,
forward-sum loss, alignment sharpness (mean max soft-attention probability per frame), the relative
error of the predicted total duration, and one utterance's inferred mel is drawn next to its target
(``output_dir/validation/step-N.png``). Scores go to the tracker and to ``output_dir/validation.json``.

Example::

    accelerate launch -m accelerando.tts.fastpitch.train --data_dir corpora/speech \\
        --output_dir runs/fastpitch-speech --preset small --max_train_steps 100000
    accelerate launch -m accelerando.tts.fastpitch.train --data_dir corpora/speech \\
        --output_dir runs/fastpitch-speech --preset small --resume_from_checkpoint latest
    # ship the newest checkpoint with a model card
    python -c "from accelerando.tts.fastpitch.train import export_pretrained as e; \\
        e('runs/fastpitch-speech', 'accelerando/pretrained/fastpitch-speech', 'corpora/speech')"
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
from accelerando.tts.fastpitch.data import TTSDataset, collate, compute_pitch_stats
from accelerando.tts.fastpitch.model import PRESETS, IncrementalFastPitch

logger = logging.getLogger(__name__)

PITCH_STATS_FILE = "pitch_stats.json"
VALIDATION_FILE = "validation.json"
ARGS_FILE = "train_args.json"
MASK_MODES = ("static", "dynamic", "full")


def _model_config(text: str) -> dict[str, Any]:
    """``--model_config``: a JSON object or the path of a JSON file, overriding the preset."""
    path = Path(text)
    try:
        value = json.loads(path.read_text() if path.is_file() else text)
    except (json.JSONDecodeError, OSError) as err:
        raise argparse.ArgumentTypeError(
            f"must be a JSON object or a JSON file, got {text!r} ({err})"
        ) from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object of config overrides, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add FastPitch's flags and the shared training flags (with FastPitch's defaults) to ``parser``."""
    add = parser.add_argument
    add("--data_dir", type=str, required=True, help="LJSpeech-style folder (wavs/ + metadata.csv).")
    add("--preset", type=str, default="paper", choices=sorted(PRESETS), help="Model size.")
    add(
        "--model_config",
        type=_model_config,
        default=None,
        help="JSON object (or file) of IncrementalFastPitch config values overriding the preset.",
    )
    add("--mask_mode", type=str, default="static", choices=MASK_MODES, help="Decoder chunk mask.")
    add("--chunk_size", type=T.positive_int, default=30, help="Decoder chunk S_c (frames).")
    add("--past_size", type=T.non_negative_int, default=5, help="Cached past S_p (frames).")
    add("--lr_warmup_steps", type=T.non_negative_int, default=1000, help="Linear warm-up, then 1/sqrt.")
    add("--binarization_start_step", type=T.non_negative_int, default=1000, help="Bin loss starts here.")
    add("--binarization_warmup_steps", type=T.non_negative_int, default=1000, help="Bin loss ramp.")
    add("--pitch_cache_dir", type=str, default=None, help="pYIN cache (default: output_dir/pitch_cache).")
    add("--pitch_fmin", type=T.positive_float, default=65.0, help="pYIN lowest f0 (Hz).")
    add(
        "--pitch_fmax",
        type=T.positive_float,
        default=2093.0,
        help="pYIN highest f0 (Hz); FastPitch's C7. Speech rarely exceeds 800 Hz, and pYIN runs ~3x faster there.",
    )
    add(
        "--aligner_lr_scale",
        type=T.positive_float,
        default=1.0,
        help="Learning rate of the alignment encoder relative to --learning_rate (same schedule).",
    )
    add("--language", type=str, default="en-us", help="espeak-ng voice of the text front end.")
    add(
        "--num_validation_items",
        type=T.non_negative_int,
        default=64,
        help="Validation utterances scored per check (0: none).",
    )
    return T.add_training_args(
        parser,
        output_dir="output/fastpitch",
        train_batch_size=16,
        learning_rate=1e-3,
        max_train_steps=100_000,
        checkpointing_steps=1000,
        max_grad_norm=1000.0,
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="accelerando train fastpitch",
        description="Train Incremental FastPitch (text → mel).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    return add_arguments(parser).parse_args(argv)


# --------------------------------------------------------------------------------------------- data


def _datasets(args: argparse.Namespace, frontend: Any) -> tuple[TTSDataset, TTSDataset, list[str]]:
    """(train, validation, speakers): the split of ``split.json`` (every row trains when it has none)."""
    from accelerando.data.datasets import LJSpeechDataset

    root = Path(args.data_dir)
    every = LJSpeechDataset(root, split=None)
    speakers = [str(s) for s in every.speakers]  # all voices, whatever split they fall in
    try:
        train_base = LJSpeechDataset(root, split="train")
        valid_base = LJSpeechDataset(root, split="validation")
    except FileNotFoundError as err:
        logger.warning("%s; training and validating on every row of %s", err, root / "metadata.csv")
        train_base = valid_base = every
    if len(train_base) == 0:
        raise ValueError(f"{root} has no training utterances")
    if len(valid_base) == 0:
        valid_base = train_base
    cache = Path(args.pitch_cache_dir) if args.pitch_cache_dir else Path(args.output_dir) / "pitch_cache"
    pyin = dict(cache_dir=cache, pitch_fmin=args.pitch_fmin, pitch_fmax=args.pitch_fmax)
    train = TTSDataset(train_base, frontend, speakers, **pyin)
    valid = TTSDataset(valid_base, frontend, speakers, **pyin)
    return train, valid, speakers


def pitch_stats(args: argparse.Namespace, train: TTSDataset, accelerator: Any) -> dict[str, float]:
    """Voiced-pitch mean / std: read from ``output_dir`` or computed once by the main process."""
    path = Path(args.output_dir) / PITCH_STATS_FILE
    if accelerator.is_main_process and not path.is_file():
        mean, std = compute_pitch_stats(train)
        stats = {"pitch_mean": mean, "pitch_std": std, "items": len(train)}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stats, indent=2))
        logger.info("Pitch statistics over %d utterances: %s", len(train), stats)
    accelerator.wait_for_everyone()
    return json.loads(path.read_text())


def lr_lambda(warmup_steps: int):
    """Linear warm-up to 1 over ``warmup_steps``, then ``sqrt(warmup_steps / step)`` (Noam's shape)."""

    def scale(step: int) -> float:
        if warmup_steps == 0:
            return 1.0
        step = step + 1
        return step / warmup_steps if step <= warmup_steps else math.sqrt(warmup_steps / step)

    return scale


ALIGNER_GROUP = 1  # index of the alignment encoder's parameter group (0: everything else)


def _split_legacy_param_groups(optimizer: torch.optim.Optimizer, state_dict: dict) -> dict:
    """Optimizer ``load_state_dict`` pre-hook: map a one-group state (a checkpoint saved before the
    aligner had its own group) onto ``[rest, aligner]``. The flat parameter order is the same
    (the aligner's parameters come last in ``model.parameters()``), so the group's index list is
    split at the size of the current first group; the aligner group gets the saved hyperparameters
    with ``lr`` / ``initial_lr`` times its ``lr_scale``."""
    saved, current = state_dict["param_groups"], optimizer.param_groups
    if len(saved) != 1 or len(current) != 2:
        return state_dict
    (group,) = saved
    n_rest = len(current[0]["params"])
    if len(group["params"]) != n_rest + len(current[1]["params"]):
        return state_dict  # a different model: let torch raise its own error
    scale = current[1].get("lr_scale", 1.0)
    rest = {**group, "params": group["params"][:n_rest], "lr_scale": 1.0}
    aligner = {**group, "params": group["params"][n_rest:], "lr_scale": scale}
    for key in ("lr", "initial_lr"):
        if key in aligner:
            aligner[key] = aligner[key] * scale
    logger.info("Old checkpoint with one optimizer parameter group: split into [rest, aligner]")
    return {**state_dict, "param_groups": [rest, aligner]}


def build_optimizer(model: IncrementalFastPitch, args: argparse.Namespace) -> torch.optim.Adam:
    """Adam (FastPitch's betas / eps / weight decay) over two parameter groups: everything but the
    aligner at ``--learning_rate`` (group 0), the alignment encoder at ``--aligner_lr_scale`` times
    it (group :data:`ALIGNER_GROUP`). Old one-group optimizer states load (see
    :func:`_split_legacy_param_groups`)."""
    aligner = [p for n, p in model.named_parameters() if n.startswith("aligner.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("aligner.")]
    groups = [
        {"params": rest, "lr": args.learning_rate, "lr_scale": 1.0},
        {
            "params": aligner,
            "lr": args.learning_rate * args.aligner_lr_scale,
            "lr_scale": args.aligner_lr_scale,
        },
    ]
    optimizer = torch.optim.Adam(
        groups, lr=args.learning_rate, betas=(0.9, 0.98), eps=1e-9, weight_decay=1e-6
    )
    optimizer.register_load_state_dict_pre_hook(_split_legacy_param_groups)
    return optimizer


class WarmupInverseSqrt(torch.optim.lr_scheduler.LambdaLR):
    """:func:`lr_lambda` on every parameter group. Loading a scheduler state saved for fewer groups
    (before the aligner group) takes the base learning rates from the (already loaded) optimizer."""

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_steps: int) -> None:
        super().__init__(optimizer, lr_lambda(warmup_steps))

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        if len(self.base_lrs) != len(self.optimizer.param_groups):
            self.base_lrs = [g["initial_lr"] for g in self.optimizer.param_groups]
            self._last_lr = [g["lr"] for g in self.optimizer.param_groups]


# ----------------------------------------------------------------------------------------- validation


def _batches(dataset: TTSDataset, count: int, batch_size: int):
    for start in range(0, count, batch_size):
        yield collate([dataset[i] for i in range(start, min(start + batch_size, count))])


@torch.no_grad()
def validate(
    model: IncrementalFastPitch, valid: TTSDataset, args: argparse.Namespace, step: int
) -> dict[str, float]:
    """Teacher-forced mel L1, forward-sum, alignment sharpness and duration error on the validation split.

    Also draws the first validation utterance's target mel, its mel inferred from text alone and its
    teacher-forced soft alignment (``output_dir/validation/step-N.png``).
    """
    from accelerando.tts.fastpitch.aligner import ForwardSumLoss

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    count = min(args.num_validation_items, len(valid))
    sums = {"val_mel_l1": 0.0, "val_forward_sum": 0.0, "val_attn_max_prob": 0.0, "val_dur_rel_error": 0.0}
    frames_total, items_total = 0, 0
    forward_sum = ForwardSumLoss()
    first_attn = None
    for batch in _batches(valid, count, args.train_batch_size):
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        out = model(
            batch["ids"],
            batch["ids_lens"],
            batch["mel"],
            batch["mel_lens"],
            batch["pitch"],
            batch["speaker"],
            attn_prior=batch["attn_prior"],
            mask_mode="full" if args.mask_mode == "full" else "static",
        )
        frames = (
            torch.arange(batch["mel"].shape[2], device=device)[None] < batch["mel_lens"][:, None]
        ).float()
        sums["val_mel_l1"] += float(((out.mel - batch["mel"]).abs().mean(1) * frames).sum())
        sums["val_attn_max_prob"] += float((out.attn_soft[:, 0].max(-1).values * frames).sum())
        frames_total += int(frames.sum())
        if first_attn is None:  # (mel frames, tokens) of the first validation utterance
            first_attn = out.attn_soft[0, 0, : batch["mel_lens"][0], : batch["ids_lens"][0]].cpu()
        b = batch["ids"].shape[0]
        sums["val_forward_sum"] += float(forward_sum(out.attn_logprob, out.text_lens, out.mel_lens)) * b
        tokens = (
            torch.arange(out.log_dur_pred.shape[1], device=device)[None] < out.text_lens[:, None]
        ).float()
        pred_total = ((out.log_dur_pred.exp() - 1).clamp(min=0) * tokens).sum(1)
        rel = (pred_total - batch["mel_lens"]).abs() / batch["mel_lens"]
        sums["val_dur_rel_error"] += float(rel.sum())
        items_total += b
    metrics = {
        "val_mel_l1": sums["val_mel_l1"] / max(frames_total, 1),
        "val_attn_max_prob": sums["val_attn_max_prob"] / max(frames_total, 1),
        "val_forward_sum": sums["val_forward_sum"] / max(items_total, 1),
        "val_dur_rel_error": sums["val_dur_rel_error"] / max(items_total, 1),
    }
    if count > 0:
        path = Path(args.output_dir) / "validation" / f"step-{step}.png"
        _plot_inferred(model, valid[0], path, first_attn, title=f"step {step}")
    model.train(was_training)
    return metrics


def _plot_inferred(
    model: IncrementalFastPitch,
    item: dict[str, Any],
    path: Path,
    attn: torch.Tensor | None = None,
    title: str = "",
) -> None:
    """Save target mel, the mel inferred from text (streamed chunks) and, when given, the soft alignment
    ``attn`` (mel frames x tokens, teacher-forced) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    enc = model.encode(item["ids"][None], speaker=item["speaker"])
    mel = torch.cat(list(model.decode_chunks(enc)), dim=2)[0].cpu()  # (n_mels, frames)
    low, high = float(item["mel"].min()), float(item["mel"].max())  # one colour scale for both
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 2 if attn is None else 3
    fig, axes = plt.subplots(rows, 1, figsize=(8, 2.5 * rows), constrained_layout=True)
    for ax, data, name in zip(
        axes[:2],
        (item["mel"], mel),
        (f"target {item['id']}", "inferred from text (streamed chunks)"),
        strict=True,
    ):
        ax.imshow(data.numpy(), origin="lower", aspect="auto", interpolation="none", vmin=low, vmax=high)
        ax.set_title(name)
        ax.set_ylabel("mel bin")
        ax.set_xlabel("frame")
    if attn is not None:
        sharpness = float(attn.max(-1).values.mean())
        axes[2].imshow(attn.T.numpy(), origin="lower", aspect="auto", interpolation="none", vmin=0, vmax=1)
        axes[2].set_title(f"soft alignment, teacher-forced (mean max probability {sharpness:.2f})")
        axes[2].set_ylabel("phoneme")
        axes[2].set_xlabel("target frame")
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _run_validation(
    accelerator: Any, model: Any, ema: Any, valid: TTSDataset, args: argparse.Namespace, step: int
) -> None:
    if accelerator.is_main_process and args.num_validation_items > 0:
        unwrapped = accelerator.unwrap_model(model)
        if ema is not None:
            evaluated = type(unwrapped).from_config(unwrapped.config).to(accelerator.device)
            ema.copy_to(evaluated.parameters())
        else:
            evaluated = unwrapped
        metrics = validate(evaluated, valid, args, step)
        logger.info("step %d validation: %s", step, metrics)
        accelerator.log(metrics, step=step)
        path = Path(args.output_dir) / VALIDATION_FILE
        records = json.loads(path.read_text()) if path.is_file() else []
        records = [r for r in records if r.get("step") != step] + [{"step": step, **metrics}]
        path.write_text(json.dumps(records, indent=2))
    accelerator.wait_for_everyone()


# ----------------------------------------------------------------------------------------------- main


def build_model(
    args: argparse.Namespace, speakers: list[str], stats: dict[str, float]
) -> IncrementalFastPitch:
    """The preset + ``--model_config`` overrides + chunk sizes, speakers, language and pitch stats."""
    overrides = dict(args.model_config or {})
    overrides.update(
        chunk_size=args.chunk_size,
        past_size=args.past_size,
        n_speakers=len(speakers),
        speakers=speakers,
        language=args.language,
        pitch_mean=stats["pitch_mean"],
        pitch_std=stats["pitch_std"],
    )
    return IncrementalFastPitch.from_preset(args.preset, **overrides)


def main(args: argparse.Namespace) -> Path:
    """Train; returns the folder of the final model (``output_dir/model``)."""
    from accelerando.tts.frontend import TextFrontend

    accelerator = T.create_accelerator(args, project_name="fastpitch")
    if accelerator.is_main_process:
        Path(args.output_dir, ARGS_FILE).write_text(json.dumps(vars(args), indent=2, default=str))
    frontend = TextFrontend(language=args.language)
    train, valid, speakers = _datasets(args, frontend)
    stats = pitch_stats(args, train, accelerator)
    model = build_model(args, speakers, stats)
    if list(model.config.symbols or []) != frontend.symbols:
        frontend = model.text_frontend()
        train.frontend = valid.frontend = frontend
    logger.info(
        "IncrementalFastPitch %s: %d parameters, voices %s", args.preset, model.num_parameters(), speakers
    )
    ema = T.create_ema(model, args, accelerator)
    T.register_checkpoint_hooks(accelerator, model, ema)
    optimizer = build_optimizer(model, args)
    # accelerate steps a prepared scheduler once per process per optimizer step.
    scheduler = WarmupInverseSqrt(optimizer, args.lr_warmup_steps * accelerator.num_processes)
    loader = torch.utils.data.DataLoader(
        train,
        batch_size=args.train_batch_size,
        shuffle=True,
        collate_fn=collate,
        num_workers=args.dataloader_num_workers,
        drop_last=len(train) >= args.train_batch_size,
    )
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    fastpitch = accelerator.unwrap_model(model)

    def step_fn(batch: dict[str, torch.Tensor], global_step: int) -> tuple[torch.Tensor, dict]:
        out = model(
            batch["ids"],
            batch["ids_lens"],
            batch["mel"],
            batch["mel_lens"],
            batch["pitch"],
            batch["speaker"],
            attn_prior=batch["attn_prior"],
            mask_mode=args.mask_mode,
        )
        return fastpitch.loss(
            out,
            batch["mel"],
            step=global_step,
            bin_loss_start_step=args.binarization_start_step,
            bin_loss_warmup_steps=args.binarization_warmup_steps,
        )

    global_step = T.run_training_loop(
        accelerator,
        args,
        model,
        optimizer,
        loader,
        step_fn,
        ema=ema,
        lr_scheduler=scheduler,
        on_checkpoint=lambda step: _run_validation(accelerator, model, ema, valid, args, step),
        name="FastPitch",
    )
    final = T.save_final_model(accelerator, model, args, ema)
    if global_step % args.checkpointing_steps != 0:
        _run_validation(accelerator, model, ema, valid, args, global_step)
    accelerator.end_training()
    return final


# --------------------------------------------------------------------------------------------- ship


def export_pretrained(run_dir: str | Path, dest: str | Path, data_dir: str | Path | None = None) -> Path:
    """Copy a run's newest checkpoint model to ``dest`` (e.g. ``accelerando/pretrained/fastpitch-speech``)
    with a ``README.md`` model card: corpus, steps, hardware, validation mel L1 and alignment quality.
    """
    import shutil

    from accelerando.metrics.timing import cpu_model

    run_dir, dest = Path(run_dir), Path(dest)
    checkpoints = T.list_checkpoints(run_dir)
    if not checkpoints:
        raise FileNotFoundError(f"No checkpoint-N folder in {str(run_dir)!r}; train first.")
    step, folder = checkpoints[-1]
    args = json.loads((run_dir / ARGS_FILE).read_text()) if (run_dir / ARGS_FILE).is_file() else {}
    data_dir = Path(data_dir or args.get("data_dir", ""))
    corpus = (
        json.loads((data_dir / "corpus.json").read_text()) if (data_dir / "corpus.json").is_file() else {}
    )
    records = (
        json.loads((run_dir / VALIDATION_FILE).read_text()) if (run_dir / VALIDATION_FILE).is_file() else []
    )
    scores = next((r for r in records if r["step"] == step), {})
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(folder / T.MODEL_SUBFOLDER, dest)
    model = IncrementalFastPitch.from_pretrained(dest)
    cfg = model.config

    def fmt(key: str) -> str:
        return f"{scores[key]:.4f}" if key in scores else "not measured"

    history = "\n".join(
        f"| {r['step']} | {r['val_mel_l1']:.4f} | {r['val_forward_sum']:.4f} | {r['val_attn_max_prob']:.4f} "
        f"| {r['val_dur_rel_error']:.4f} |"
        for r in records
        if r["step"] <= step
    )
    image, image_note = run_dir / "validation" / f"step-{step}.png", ""
    if image.is_file():
        shutil.copyfile(image, dest / "validation.png")
        image_note = (
            "\n`validation.png`: the first validation utterance at this step: its target mel, the mel inferred\n"
            "from text (streamed chunks) and the teacher-forced soft alignment.\n"
        )

    card = f"""# Incremental FastPitch ({args.get("preset", "?")} preset) on `{data_dir.name or "?"}`

Text → 80-bin log mel (22.05 kHz, hop 256), FastPitch 1.1 with a learned aligner and the chunked decoder
of Incremental FastPitch (chunk {cfg.chunk_size} frames, past {cfg.past_size}); {model.num_parameters():,} parameters.

- Corpus: `{data_dir}` ({corpus.get("num_utterances", "?")} utterances, {corpus.get("hours", "?")} h,
  voices {", ".join(cfg.speakers or [])}); training split only, validation split held out.
- Training: {step} steps, batch {args.get("train_batch_size", "?")}, Adam lr {args.get("learning_rate", "?")}
  (warm-up {args.get("lr_warmup_steps", "?")}), mask mode `{args.get("mask_mode", "?")}`; pitch mean / std
  {cfg.pitch_mean:.1f} / {cfg.pitch_std:.1f} Hz (pYIN).
- Hardware: CPU only ({cpu_model()}), one thread, shared with other jobs.
- Validation at step {step} (validation split, teacher-forced): mel L1 {fmt("val_mel_l1")};
  forward-sum {fmt("val_forward_sum")}; mean max attention probability {fmt("val_attn_max_prob")}
  (1 = perfectly sharp alignment); predicted total duration relative error {fmt("val_dur_rel_error")}.

Validation during training (forward-sum: the aligner's CTC-style loss, lower is better; sharpness: mean max
attention probability per frame, 1 = a hard alignment; duration error: predicted vs true total length):

| step | mel L1 | forward-sum | sharpness | duration error |
| --- | --- | --- | --- | --- |
{history}
{image_note}
A small model on synthetic voices, trained as long as a shared CPU allowed: a working default and a
test fixture, not a production voice. Train on real data with `accelerando.tts.fastpitch.train`.
"""
    (dest / "README.md").write_text(card)
    return dest


if __name__ == "__main__":
    main(parse_args())
