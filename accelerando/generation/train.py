"""Train a MelDiT on single notes (``accelerando.data.NoteDataset``) with the rectified-flow objective.

Loss: ``|| v_theta(x_sigma, 1000 sigma, labels) - (noise - x0) ||^2`` with ``x_sigma = (1 - sigma) x0 + sigma
noise`` on normalised mels, sigma drawn uniformly or logit-normally (SD3 / FasterDiT); labels are dropped to
the null label with ``class_dropout_prob`` (a config field) for classifier-free guidance. EMA, checkpoints and
resuming come from ``accelerando.training``; the final model is a ``MelDiT.from_pretrained`` folder.

``--recipe fasterdit`` (arXiv 2410.10356, ``accelerando.accelerate_dit.fasterdit``) switches on logit-normal(0, 1)
sigmas, the mels scaled to std 1 (``--data_std``: baked into the saved config's ``mel_std``, so sampling and
``denormalize_mel`` stay consistent) and the velocity-direction loss (``--direction_loss_weight 1``);
``--recipe vanilla`` is uniform sigmas and plain MSE. Explicit flags override the recipe; with no recipe the
script keeps its historical defaults (logit-normal(0, 1), data unchanged, plain MSE).

Example::

    accelerate launch -m accelerando.generation.train --data_dir data/instruments --preset small \\
        --output_dir out/meldit --train_batch_size 32 --learning_rate 2e-4 --max_train_steps 20000 --use_ema \\
        --recipe fasterdit
"""

from __future__ import annotations

import argparse
import functools
import math
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from accelerando import training as T
from accelerando.fasterdit import (
    TIMESTEP_SAMPLERS,
    FasterDiTRecipe,
    fasterdit_loss,
    sample_timesteps,
)
from accelerando.generation.mel_dit import PITCH_CONDITIONINGS, PRESETS, MelDiT, patchify

__all__ = [
    "RECIPES",
    "build_dataset",
    "collate_notes",
    "estimate_mel_std",
    "main",
    "parse_args",
    "recipe_from_args",
    "sample_sigmas",
    "training_loss",
]

# ``--recipe`` presets; ``None`` is the script's behaviour before recipes existed.
RECIPES: dict[str | None, FasterDiTRecipe] = {
    None: FasterDiTRecipe(timestep_sampling="logit_normal"),
    "vanilla": FasterDiTRecipe.vanilla(),
    "fasterdit": FasterDiTRecipe.fasterdit(),
}
# flag -> FasterDiTRecipe field; a flag left at None takes the recipe's value.
_RECIPE_FLAGS = {
    "timestep_sampling": "timestep_sampling",
    "logit_mean": "logit_mean",
    "logit_std": "logit_std",
    "mode_scale": "mode_scale",
    "data_std": "data_std",
    "direction_loss_weight": "direction_weight",
}

LOG_MEL_FLOOR = math.log(1e-5)  # MelConfig's clamp: the log-mel value of silence


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    T.add_training_args(parser, learning_rate=2e-4, train_batch_size=32, max_train_steps=20000)
    parser.add_argument("--data_dir", type=str, required=True, help="The instrument corpus folder.")
    parser.add_argument("--preset", type=str, default="small", choices=sorted(PRESETS))
    parser.add_argument(
        "--init_model",
        type=str,
        default=None,
        help="Start from this MelDiT: a bundled name (meldit-notes), a MelDiTPipeline folder or a MelDiT folder; "
        "its architecture replaces --preset, --num_frames and --pitch_conditioning (continue training).",
    )
    parser.add_argument("--num_frames", type=int, default=128, help="Mel frames per training crop.")
    parser.add_argument("--class_dropout_prob", type=float, default=0.1)
    parser.add_argument(
        "--pitch_conditioning",
        type=str,
        default=None,
        choices=list(PITCH_CONDITIONINGS),
        help="'table': DiT's learned label vector per pitch; 'harmonic': plus the pitch's harmonic template "
        "added to the tokens of each frequency row (benchmarks/meldit_pitch_study.py compares them). "
        "Unset: the preset's ('harmonic').",
    )
    parser.add_argument(
        "--recipe",
        type=str,
        default=None,
        choices=[k for k in RECIPES if k],
        help="Defaults for the flags below: 'vanilla' (uniform, MSE) or 'fasterdit'. Unset: logit-normal, MSE.",
    )
    parser.add_argument("--timestep_sampling", type=str, default=None, choices=sorted(TIMESTEP_SAMPLERS))
    parser.add_argument("--logit_mean", type=float, default=None, help="Logit-normal mean (default 0).")
    parser.add_argument("--logit_std", type=float, default=None, help="Logit-normal std (default 1).")
    parser.add_argument("--mode_scale", type=float, default=None, help="Mode sampler scale (default 1.29).")
    parser.add_argument(
        "--data_std",
        type=float,
        default=None,
        help="Scale the normalised mels to this std (unset: unchanged).",
    )
    parser.add_argument(
        "--direction_loss_weight", type=float, default=None, help="Velocity-direction loss weight (0: off)."
    )
    parser.add_argument("--weight_decay", type=float, default=0.0)
    parser.add_argument(
        "--low_note_repeats",
        type=int,
        default=1,
        help="Show each training note below --low_note_below this many times per epoch (1: the plain split). "
        "The low notes are where the pitch misses are (the meldit-notes card).",
    )
    parser.add_argument(
        "--low_note_below", type=int, default=41, help="MIDI pitch under which --low_note_repeats applies."
    )
    args = parser.parse_args(argv)
    if args.low_note_repeats < 1:
        parser.error(
            f"--low_note_repeats must be a whole number >= 1 (1 leaves the split as it is), got {args.low_note_repeats}"
        )
    recipe = RECIPES[args.recipe]
    for flag, name in _RECIPE_FLAGS.items():
        if getattr(args, flag) is None:
            setattr(args, flag, getattr(recipe, name))
    recipe_from_args(args)  # validates the combination
    return args


def recipe_from_args(args: argparse.Namespace) -> FasterDiTRecipe:
    """The ``FasterDiTRecipe`` the resolved flags describe."""
    return FasterDiTRecipe(**{name: getattr(args, flag) for flag, name in _RECIPE_FLAGS.items()})


def build_dataset(args: argparse.Namespace) -> Dataset:
    """The training split of ``NoteDataset`` (a function, so tests can swap in a small dataset)."""
    from accelerando.data import NoteDataset

    return NoteDataset(args.data_dir, split="train")


def _item_pitches(dataset: Any) -> list[int]:
    """Each item's MIDI pitch, from the manifest rows when the dataset has them (no audio is read)."""
    rows = getattr(dataset, "rows", None)
    if rows is not None:
        return [int(row["pitch"]) for row in rows]
    return [int(dataset[i]["pitch"]) for i in range(len(dataset))]


class _Indexed(Dataset):
    """``dataset`` seen through a list of indices (an index may repeat)."""

    def __init__(self, dataset: Any, indices: list[int]):
        self.dataset, self.indices = dataset, indices
        self.rows = None if getattr(dataset, "rows", None) is None else [dataset.rows[i] for i in indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[self.indices[i]]


def oversample_low_notes(dataset: Any, below: int, repeats: int) -> Any:
    """Every item with pitch ``< below`` appears ``repeats`` times (the rest once); ``repeats=1`` returns
    ``dataset`` itself. The epoch's shuffle (seeded, resumable) then mixes the copies in."""
    if repeats == 1:
        return dataset
    indices = [
        i for i, pitch in enumerate(_item_pitches(dataset)) for _ in range(repeats if pitch < below else 1)
    ]
    return _Indexed(dataset, indices)


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
    batch_size: int,
    kind: str,
    device: torch.device,
    generator: torch.Generator | None = None,
    **sampler_kw: float,
) -> torch.Tensor:
    """Noise levels for a batch from ``fasterdit.sample_timesteps`` (``uniform``, ``logit_normal``, ``mode``,
    ``cosmap``; SD3 / FasterDiT), in (0, 1)."""
    return sample_timesteps(kind, batch_size, generator=generator, device=device, **sampler_kw)


def dataset_programs(dataset: Any) -> list[int]:
    """The sorted program numbers a note dataset holds (from its manifest rows when it has them)."""
    rows = getattr(dataset, "rows", None)
    if rows is not None:
        return sorted({int(row["program"]) for row in rows})
    return sorted({int(dataset[i]["program"]) for i in range(len(dataset))})


def estimate_mel_std(dataset: Dataset, num_frames: int, max_items: int = 256) -> float:
    """Std of the log-mels of the first ``max_items`` collated notes (deterministic, so resuming agrees)."""
    items = [dataset[i] for i in range(min(len(dataset), max_items))]
    return float(collate_notes(items, num_frames)["mel"].std())


def training_loss(
    model: MelDiT,
    x0: torch.Tensor,
    program: torch.Tensor,
    pitch: torch.Tensor,
    velocity: torch.Tensor,
    sigmas: torch.Tensor,
    direction_weight: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Rectified-flow MSE (as ``mel_dit.rectified_flow_loss``) plus FasterDiT's velocity-direction loss.

    ``x0`` ``(B, 1, n_mels, frames)`` in model space. The direction term compares the velocity of each patch
    token (the DiT's positions: ``C * ph * pw`` values each, since a mel has one channel); weight 0 gives the
    plain MSE exactly.
    """
    b = x0.shape[0]
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    s = sigmas.reshape(b, *([1] * (x0.ndim - 1)))
    x_sigma = (1 - s) * x0 + s * noise
    pred = model(x_sigma, sigmas * 1000, program, pitch, velocity).sample
    target = noise - x0
    if direction_weight != 0:
        patch = tuple(getattr(model, "module", model).config.patch_size)  # DDP-wrapped under accelerate
        pred, target = patchify(pred, patch), patchify(target, patch)  # (B, tokens, C * ph * pw)
    return fasterdit_loss(pred, target, direction_weight, dim=-1)


def load_init_model(name_or_path: str) -> MelDiT:
    """``--init_model``: a MelDiT from a bundled name, a ``MelDiTPipeline`` folder (its ``transformer/``) or a
    MelDiT folder; ``FileNotFoundError`` naming what was looked for otherwise."""
    from accelerando.pretrained import PRETRAINED_DIR

    folder = Path(name_or_path)
    if not folder.is_dir() and (PRETRAINED_DIR / name_or_path).is_dir():
        folder = PRETRAINED_DIR / name_or_path
    for candidate in (folder / "transformer", folder / "model", folder):
        if (candidate / "config.json").is_file():
            return MelDiT.from_pretrained(candidate)
    raise FileNotFoundError(
        f"--init_model {name_or_path!r} is neither a bundled checkpoint nor a folder with a MelDiT "
        "(config.json in it, in transformer/ of a MelDiTPipeline, or in model/ of a training output)"
    )


def build_model(args: argparse.Namespace) -> MelDiT:
    """The resumed checkpoint's architecture (its weights come with the checkpoint state), else ``--init_model``,
    else ``--preset`` with ``--num_frames`` / ``--pitch_conditioning``."""
    resumed = T.resumed_model_folder(args)
    if resumed is not None:
        return MelDiT.from_pretrained(resumed)
    if args.init_model:
        model = load_init_model(args.init_model)
        model.register_to_config(class_dropout_prob=args.class_dropout_prob)
        return model
    return MelDiT.from_preset(
        args.preset,
        num_frames=args.num_frames,
        class_dropout_prob=args.class_dropout_prob,
        **({} if args.pitch_conditioning is None else {"pitch_conditioning": args.pitch_conditioning}),
    )


def main(args: argparse.Namespace) -> MelDiT:
    accelerator = T.create_accelerator(args, project_name="meldit")
    dataset = oversample_low_notes(build_dataset(args), args.low_note_below, args.low_note_repeats)
    model = build_model(args)
    if model.config.num_frames != args.num_frames:
        args.num_frames = model.config.num_frames  # crops must fit the model it continues
    model.register_to_config(trained_programs=dataset_programs(dataset))  # the demo offers only these
    # FasterDiT std modulation, kept in the saved config so sampling denormalises consistently.
    if args.data_std is not None:
        measured = estimate_mel_std(dataset, args.num_frames) / model.config.mel_std  # normalised-mel std
        model.register_to_config(mel_std=model.config.mel_std / recipe_from_args(args).data_scale(measured))
    ema = T.create_ema(model, args, accelerator)
    T.register_checkpoint_hooks(accelerator, model, ema)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    loader = DataLoader(
        dataset,
        batch_size=args.train_batch_size,
        shuffle=True,
        drop_last=False,
        num_workers=args.dataloader_num_workers,
        collate_fn=functools.partial(collate_notes, num_frames=args.num_frames),
    )
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    unwrapped = accelerator.unwrap_model(model)
    sampler_kw = recipe_from_args(args).sampler_kwargs()

    def step_fn(batch: dict[str, torch.Tensor], global_step: int) -> tuple[torch.Tensor, dict]:
        x0 = unwrapped.normalize_mel(batch["mel"])  # (B, 1, n_mels, frames) model space
        sigmas = sample_sigmas(x0.shape[0], args.timestep_sampling, x0.device, **sampler_kw)
        loss = training_loss(
            model, x0, batch["program"], batch["pitch"], batch["velocity"], sigmas, args.direction_loss_weight
        )
        return loss, {}

    model.train()
    T.run_training_loop(accelerator, args, model, optimizer, loader, step_fn, ema=ema, name="MelDiT")
    T.save_final_model(accelerator, model, args, ema)
    accelerator.end_training()
    return accelerator.unwrap_model(model)


if __name__ == "__main__":
    main(parse_args())
