"""``accelerando train MODEL [FLAGS]``: run a model's training script in this process.

Each entry of ``TRAINERS`` names a training module with ``parse_args(argv)`` and ``main(args)``; every flag after the model name
is passed to it unchanged, so ``accelerando train fregrad --help`` prints that script's flags. The
same scripts run on several processes or GPUs with ``accelerate launch -m MODULE FLAGS``.

Flags: training flags keep the names of diffusers' example training scripts, in ``--snake_case``
(``--output_dir``, ``--train_batch_size``, ``--resume_from_checkpoint latest``), so users of those scripts
know them; every user command (corpus, bench, recipe, edit, synth, serve, say, demo) takes ``--kebab-case``
flags.
"""

from __future__ import annotations

import argparse
import importlib

# model name -> training module (``parse_args(argv)`` + ``main(args)``); a model joins when its script lands.
TRAINERS: dict[str, str] = {
    "fregrad": "accelerando.vocoders.fregrad.train",
    "newt": "accelerando.vocoders.newt.train",
    "newt-speech": "accelerando.vocoders.newt.mel_train",
    "periodwave": "accelerando.vocoders.periodwave.train",
    "periodwave-turbo": "accelerando.vocoders.periodwave.train_turbo",
    "meldit": "accelerando.generation.train",
    "fastpitch": "accelerando.tts.fastpitch.train",
    "note-classifier": "accelerando.generation.train_classifier",
    "sim": "accelerando.accelerate_dit.sim.train",
    "sim-vocoder": "accelerando.accelerate_dit.sim.train_vocoder",
}


def run(args: argparse.Namespace) -> int:
    module = importlib.import_module(TRAINERS[args.model])
    module.main(module.parse_args(list(args.flags)))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from accelerando.cli import add_command

    parser = add_command(
        subparsers,
        "train",
        help="train a model (flags after the model name go to its script; see `accelerando train MODEL --help`)",
        description=__doc__,
    )
    parser.add_argument("model", choices=sorted(TRAINERS), help="which model's training script to run")
    parser.add_argument("flags", nargs=argparse.REMAINDER, help="the script's own flags")
    parser.set_defaults(func=run)
