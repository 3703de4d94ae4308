"""``accelerando recipe NAME``: rebuild or resume a bundled checkpoint with one command; ``--export`` ships it.

A recipe is the corpus build plus the training stages that made a bundled checkpoint, with the exact flags its
model card names. Running it again resumes every stage from its latest checkpoint (``--resume_from_checkpoint
latest``): a stage whose run already reached its step budget is skipped, so the command is safe to repeat at
the start of every session. ``--max_train_steps N`` raises the budget of the last stage (train longer).
``--paper`` swaps the CPU-sized settings for the paper's (for a GPU). ``--from-bundled`` starts the last
stage from the bundled checkpoint itself when the earlier stages' runs are gone (e.g. a new machine).
``--export`` copies the last stage's newest checkpoint into ``accelerando/pretrained/NAME`` (float16 weights
where the recipe says so, to keep the package small; NEWT's lookup-table form where it says so, for speed),
keeping the folder's model card.

Flags: the recipe's own flags are ``--kebab-case`` like every user command's; ``--max-train-steps`` is also
accepted as ``--max_train_steps``, the name the training scripts give it, since training flags keep the names
of diffusers' example training scripts (``--snake_case``, see ``accelerando train --help``).

Example::

    accelerando recipe --list
    accelerando recipe periodwave-turbo-s-speech --from-bundled --max_train_steps 3000   # resume / go on
    accelerando recipe periodwave-turbo-s-speech --export
    accelerando recipe fregrad-speech --dry-run            # print the commands only
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["RECIPES", "Recipe", "Stage", "export", "run_recipe"]

CORPUS = ["speech", "--out", "corpora/speech", "--hours", "1", "--jobs", "2"]
TTS_MELS = "corpora/speech-tts-mels"  # fastpitch-speech's free-running mels of the training texts
CPU_DATA = ["--data_dir", "corpora/speech", "--mixed_precision", "auto", "--checkpoints_total_limit", "3"]


@dataclass(frozen=True)
class Stage:
    """One training run: ``accelerando train TRAINER FLAGS --output_dir RUN`` (``paper`` flags replace ``cpu``)."""

    trainer: str
    run: str
    steps: int
    cpu: list[str]
    paper: list[str] = field(default_factory=list)
    init_flag: str | None = None  # the flag that takes the previous stage's model (or the bundled one)


@dataclass(frozen=True)
class Recipe:
    """How a bundled checkpoint is made: the corpus, the stages, and how it is stored."""

    name: str
    stages: list[Stage]
    corpus: list[str] = field(default_factory=lambda: list(CORPUS))
    # more ``accelerando corpus`` commands built after ``corpus`` (resumable, e.g. an acoustic model's mels)
    derived: list[list[str]] = field(default_factory=list)
    float16: bool = False
    lookup_tables: bool = False  # ship the FastNEWT form (``to_fast()``: waveshapers as lookup tables)
    pipeline: bool = (
        False  # ship a MelDiTPipeline folder (the model as its transformer, the shipped scheduler)
    )
    # inference-only config values set in the shipped config (chosen by measurement; see the model card)
    inference_config: dict = field(default_factory=dict)


_MELDIT_LOW = (
    "--use_ema --ema_decay 0.999 --mixed_precision auto --train_batch_size 32 --low_note_repeats 16 "
    "--checkpointing_steps 250 --checkpoints_total_limit 3 --data_dir corpora/instruments"
).split()


def _meldit_low_stage(run: str, steps: int, learning_rate: str) -> Stage:
    """A meldit-notes fine-tuning stage that shows every note below MIDI 41 sixteen times per epoch (the same
    flags on a CPU and on a GPU: it fine-tunes the small preset)."""
    flags = [*_MELDIT_LOW, "--learning_rate", learning_rate]
    return Stage("meldit", run, steps, flags, flags, init_flag="--init_model")


RECIPES: dict[str, Recipe] = {
    "fregrad-speech": Recipe(
        "fregrad-speech",
        [
            Stage(
                "fregrad",
                "runs/fregrad-speech",
                20_000,
                "--preset small --prior calibrated --precondition --learning_rate 5e-4 --use_ema "
                "--train_batch_size 16 --checkpointing_steps 500".split()
                + CPU_DATA,
                "--preset paper --use_ema --data_dir corpora/speech --checkpointing_steps 5000".split(),
                init_flag="--init_model",
            )
        ],
    ),
    "periodwave-turbo-s-speech": Recipe(
        "periodwave-turbo-s-speech",
        [
            Stage(
                "periodwave",
                "runs/periodwave-s",
                20_000,
                "--preset S --use_ema --segment_frames 32 --train_batch_size 16 --learning_rate 4e-4 "
                "--checkpointing_steps 500".split()
                + CPU_DATA,
                "--preset S --use_ema --data_dir corpora/speech".split(),
            ),
            Stage(
                "periodwave-turbo",
                "runs/periodwave-turbo-s",
                10_000,
                "--num_steps 4 --segment_frames 32 --train_batch_size 8 --learning_rate 2e-4 --mpd_channel_mult 0.25 "
                "--cqtd_filters 32 --checkpointing_steps 100".split()
                + CPU_DATA,
                "--num_steps 4 --data_dir corpora/speech".split(),
                init_flag="--pretrained_model_name_or_path",
            ),
        ],
        float16=True,
    ),
    "meldit-notes": Recipe(
        "meldit-notes",
        [
            Stage(
                "meldit",
                "runs/meldit-notes",
                5000,
                "--preset small --use_ema --mixed_precision auto --train_batch_size 16 --learning_rate 3e-4 "
                "--checkpointing_steps 200 --checkpoints_total_limit 3 --data_dir corpora/instruments".split(),
                "--preset full --use_ema --train_batch_size 256 --learning_rate 1e-4 --checkpointing_steps 5000 "
                "--data_dir corpora/instruments".split(),
                init_flag="--init_model",
            ),
            # The notes below MIDI 41 need many more passes than the corpus gives them (see the card): each one
            # sixteen times per epoch, then the same at a third of the learning rate.
            _meldit_low_stage("runs/meldit-notes-low", 3465, "3e-4"),
            _meldit_low_stage("runs/meldit-notes-low-anneal", 4385, "1e-4"),
        ],
        corpus=["instruments", "--out", "corpora/instruments", "--only", "notes"],
        pipeline=True,
    ),
    # SIM one-step distillation of the bundled meldit-notes, guided as the demo samples it (guidance 3); data-free
    # (the corpus gives the label rows only). 20 steps: the best checkpoint on the validation labels for the
    # 5000-step teacher and again for the fine-tuned one (see the card: later ones drift). The paper's settings: its
    # learning rates, batch 32.
    "meldit-sim-notes": Recipe(
        "meldit-sim-notes",
        [
            Stage(
                "sim",
                "runs/meldit-sim-notes",
                20,
                "--teacher meldit-notes/transformer --label_corpus corpora/instruments/notes --guidance_scale 3 "
                "--train_batch_size 4 --learning_rate 1e-4 --fake_learning_rate 2e-4 --use_ema --ema_decay 0.99 "
                "--checkpointing_steps 10 --checkpoints_total_limit 3 --seed 0".split(),
                "--teacher meldit-notes/transformer --label_corpus corpora/instruments/notes --guidance_scale 3 "
                "--train_batch_size 32 --learning_rate 1e-5 --fake_learning_rate 1e-5 --use_ema "
                "--checkpointing_steps 1000".split(),
            )
        ],
        corpus=["instruments", "--out", "corpora/instruments", "--only", "notes"],
        float16=True,
    ),
    "newt-speech": Recipe(
        "newt-speech",
        [
            Stage(
                "newt-speech",
                "runs/newt-speech",
                20_000,
                "--train_batch_size 16 --segment_frames 64 --use_ema --ema_decay 0.999 "
                "--checkpointing_steps 500 --data_dir corpora/speech --checkpoints_total_limit 3 "
                "--model_config accelerando/vocoders/newt/configs/aperiodicity.json "
                f"--cycle_mels {TTS_MELS} --cycle_weight 3.0 --cycle_batch_size 8".split(),
                "--train_batch_size 32 --segment_frames 128 --use_ema --ema_decay 0.999 --data_dir corpora/speech "
                "--model_config accelerando/vocoders/newt/configs/mel_newt_full.json "
                f"--cycle_mels {TTS_MELS}".split(),
                init_flag="--init_model",
            )
        ],
        derived=[["tts-mels", "--data_dir", "corpora/speech", "--out", TTS_MELS]],
        lookup_tables=True,
    ),
}


def _latest(run: str | Path) -> tuple[int, Path | None]:
    from accelerando.training import list_checkpoints

    found = list_checkpoints(run) if Path(run).is_dir() else []
    return found[-1] if found else (0, None)


def stage_commands(
    recipe: Recipe, paper: bool, max_train_steps: int | None, from_bundled: bool
) -> list[list[str]]:
    """The ``accelerando`` argument lists the recipe runs, in order (corpus first)."""
    from accelerando.pretrained import PRETRAINED_DIR

    if from_bundled and recipe.stages[-1].init_flag is None:
        raise ValueError(
            f"recipe {recipe.name!r} cannot start from the bundled checkpoint: its last stage "
            f"({recipe.stages[-1].trainer}) takes no initial model; run it without --from-bundled"
        )
    commands = [["corpus", *recipe.corpus], *(["corpus", *c] for c in recipe.derived)]
    previous: str | None = None
    for i, stage in enumerate(recipe.stages):
        last = i == len(recipe.stages) - 1
        if from_bundled and not last:
            continue  # the last stage starts from the bundled checkpoint instead
        init = str(PRETRAINED_DIR / recipe.name) if from_bundled else previous
        previous = f"{stage.run}/model"
        steps = max_train_steps if (last and max_train_steps) else stage.steps
        if _latest(stage.run)[0] >= steps:
            continue  # this run already reached its budget
        flags = list(stage.paper if paper else stage.cpu)
        if stage.init_flag and init is not None:  # a first stage from scratch takes no initial model
            flags += [stage.init_flag, init]
        commands.append(
            ["train", stage.trainer, *flags, "--output_dir", stage.run, "--max_train_steps", str(steps),
             "--resume_from_checkpoint", "latest"]
        )  # fmt: skip
    return commands


def run_recipe(name: str, paper: bool = False, max_train_steps: int | None = None, from_bundled: bool = False,
               dry_run: bool = False) -> list[list[str]]:  # fmt: skip
    """Build the corpus (resumable) and run or resume each stage; returns the commands run."""
    from accelerando.cli import main as cli_main

    commands = stage_commands(_recipe(name), paper, max_train_steps, from_bundled)
    for argv in commands:
        print("accelerando " + " ".join(argv), flush=True)
        if not dry_run and cli_main(argv) != 0:
            raise RuntimeError(f"recipe {name!r} stopped: `accelerando {' '.join(argv[:2])}` failed")
    return commands


def export(name: str, checkpoint: str | Path | None = None) -> Path:
    """Copy the last stage's newest checkpoint model (or ``checkpoint``) into ``pretrained/NAME``; keep the card.

    Written to a temporary folder beside the target and renamed into place, so a failed export leaves the
    shipped checkpoint as it was.
    """
    from accelerando.pretrained import PRETRAINED_DIR
    from accelerando.pretrained.loading import load

    recipe = _recipe(name)
    if checkpoint is None:
        _, latest = _latest(recipe.stages[-1].run)
        if latest is None:
            raise FileNotFoundError(
                f"{recipe.stages[-1].run} has no checkpoint to export; run the recipe first"
            )
        checkpoint = latest  # the loader takes the checkpoint's model/ sub-folder
    source = Path(checkpoint)
    model = load(source)
    if recipe.lookup_tables:
        model = model.to_fast()
    if recipe.float16:
        model = model.half()
    if recipe.pipeline:
        model = _as_pipeline(model, PRETRAINED_DIR / name)
    target = PRETRAINED_DIR / name
    with tempfile.TemporaryDirectory(dir=PRETRAINED_DIR, prefix=f".{name}-") as tmp:
        staged = Path(tmp) / name
        model.save_pretrained(staged)
        config_file = staged / ("transformer/config.json" if recipe.pipeline else "config.json")
        config = json.loads(config_file.read_text())
        config.pop("_name_or_path", None)  # where it was trained is no part of the shipped checkpoint
        unknown = set(recipe.inference_config) - set(config)
        if unknown:
            raise ValueError(
                f"Recipe {name}: inference_config names {sorted(unknown)}, not in the model's config"
            )
        config.update(recipe.inference_config)
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        for file in staged.rglob("*"):
            if file.is_file():
                file.chmod(0o644)
        # The card and what it shows (README, curves, pictures, their JSON) stay; weights and configs are new.
        for extra in sorted(target.iterdir()) if target.is_dir() else []:
            if extra.is_file() and extra.suffix != ".safetensors" and not (staged / extra.name).exists():
                shutil.copy2(extra, staged / extra.name)
        backup = Path(tmp) / "previous"
        if target.exists():
            target.rename(backup)
        staged.rename(target)
    logger.info("Exported %s to %s", source, target)
    return target


def _as_pipeline(transformer: Any, shipped: Path) -> Any:
    """A ``MelDiTPipeline`` around ``transformer`` with the shipped pipeline's scheduler (or shift 3.0 Euler)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from accelerando.generation import MelDiTPipeline

    if (shipped / "scheduler").is_dir():
        scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(shipped, subfolder="scheduler")
    else:
        scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    return MelDiTPipeline(transformer=transformer, scheduler=scheduler)


def _recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"Unknown recipe {name!r}; available: {', '.join(sorted(RECIPES))}")
    return RECIPES[name]


def run(args: argparse.Namespace) -> int:
    if args.list or not args.name:
        for recipe in RECIPES.values():
            print(f"{recipe.name}: " + " -> ".join(f"{s.trainer} ({s.run})" for s in recipe.stages))
        return 0
    if args.export:
        print(export(args.name, args.checkpoint))
        return 0
    run_recipe(args.name, args.paper, args.max_train_steps, args.from_bundled, args.dry_run)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from accelerando.cli import add_command

    parser = add_command(
        subparsers, "recipe", help="rebuild, resume or export a bundled checkpoint", description=__doc__
    )
    parser.add_argument("name", nargs="?", help=f"one of: {', '.join(sorted(RECIPES))}")
    parser.add_argument("--list", action="store_true", help="list the recipes")
    parser.add_argument("--paper", action="store_true", help="the paper's settings (for a GPU)")
    parser.add_argument("--max-train-steps", "--max_train_steps", dest="max_train_steps", type=int, default=None,
                        help="step budget of the last stage (default: the recipe's)")  # fmt: skip
    parser.add_argument("--from-bundled", action="store_true",
                        help="start the last stage from the bundled checkpoint when earlier runs are gone")  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="print the commands without running them")
    parser.add_argument(
        "--export", action="store_true", help="copy the newest checkpoint into pretrained/NAME"
    )
    parser.add_argument("--checkpoint", default=None, help="with --export: a model folder to export instead")
    parser.set_defaults(func=run)
