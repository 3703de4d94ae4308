"""Distill a PeriodWave, PeriodWave-Turbo or FreGrad vocoder into a one-step ``SIMVocoder`` with SIM, data-free.

Score Implicit Matching (arXiv 2410.16794; :mod:`accelerando.accelerate_dit.sim.distiller`) through the vocoder
score adapters of :mod:`accelerando.accelerate_dit.sim.vocoders`. Each step takes a batch of mel crops of the
training split (``--data_dir``, the vocoder training scripts' data flags; the crops' audio is never used), draws
generator noise, runs ``--fake_steps_per_gen_step`` fake-score steps and one generator step. The fake score starts
from the teacher; the student (generator) from the teacher too, or from a smaller preset of the same family
(``--student_preset``, ``--student_init teacher|fresh``). ``--learning_rate`` is the generator's. Flags, EMA
(``--use_ema``), checkpoints and ``--resume_from_checkpoint latest`` come from ``accelerando.training``; losses go
to ``output_dir/sim_log.jsonl``. ``output_dir/model`` (and every ``checkpoint-N/model``) is a
``SIMVocoder.from_pretrained`` folder: ``synthesize(mel)`` with one network evaluation.

One process only for now: the adapters call the backbone's helpers (mel encoder, prior) outside a DDP forward.

Example (the settings of ``benchmarks/vocoder_plugins.py``)::

    accelerando train sim-vocoder --teacher periodwave-turbo-s-speech --data_dir corpora/speech \\
        --output_dir runs/sim-periodwave --train_batch_size 2 --segment_frames 32 --learning_rate 1e-5 \\
        --max_train_steps 300
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from accelerando import training as T
from accelerando.accelerate_dit.sim.distiller import DISTANCES, ESTIMATORS, SIMConfig, SIMDistiller
from accelerando.accelerate_dit.sim.train import log_step, resume_log
from accelerando.accelerate_dit.sim.vocoders import SIMVocoder, vocoder_score_model
from accelerando.vocoders.training_utils import add_corpus_arguments, crops_loader, vocoder_datasets

__all__ = ["TEACHER_CLASSES", "load_teacher", "main", "parse_args"]

TEACHER_CLASSES = ("PeriodWave", "PeriodWaveTurbo", "FreGrad")
SIM_CONFIG_NAME = "sim_config.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="accelerando train sim-vocoder", description=__doc__.split("\n\n")[0]
    )
    T.add_training_args(
        parser,
        output_dir="output/sim-vocoder",
        learning_rate=1e-5,
        train_batch_size=4,
        max_train_steps=20000,
    )
    add = parser.add_argument
    add(
        "--teacher",
        type=str,
        required=True,
        help="A bundled name or folder of a PeriodWave(-Turbo) or FreGrad.",
    )
    add_corpus_arguments(parser, segment_frames=32)  # only the mels of the training split are used
    add(
        "--student_preset",
        type=str,
        default=None,
        help="A smaller preset of the teacher's family (default: its own).",
    )
    add("--student_init", type=str, default="teacher", choices=["teacher", "fresh"])
    add(
        "--init_t",
        type=float,
        default=None,
        help="Generator noise level; default per family (default_init_t).",
    )
    add("--fake_learning_rate", type=T.positive_float, default=None, help="Default: --learning_rate.")
    add("--distance", type=str, default="pseudo_huber", choices=DISTANCES)
    add("--huber_c", type=T.positive_float, default=SIMConfig.huber_c)
    add("--estimator", type=str, default="sim", choices=ESTIMATORS)
    add("--t_min", type=float, default=SIMConfig.t_min)
    add("--t_max", type=float, default=None, help="Default 0.98 (PeriodWave), init_t (FreGrad).")
    add("--fake_steps_per_gen_step", type=T.positive_int, default=1, help="SiD 1, DMD2 5.")
    add("--adam_beta1", type=float, default=0.0)
    add("--adam_beta2", type=float, default=0.999)
    return parser.parse_args(argv)


def load_teacher(path: str | Path) -> torch.nn.Module:
    """The vocoder at ``path`` (bundled name, model folder or training output), frozen, with clear errors."""
    from accelerando.pretrained.loading import class_name, load, resolve

    folder = resolve(path)
    if class_name(folder) not in TEACHER_CLASSES:
        raise TypeError(
            f"--teacher {str(path)!r} holds a {class_name(folder) or 'model without a class name'}; "
            f"sim-vocoder distills {', '.join(TEACHER_CLASSES)}."
        )
    return load(folder, expect=TEACHER_CLASSES).requires_grad_(False)


def main(args: argparse.Namespace) -> SIMVocoder:
    if args.gradient_accumulation_steps != 1:
        raise ValueError("SIM alternates two optimizers every step; --gradient_accumulation_steps must be 1.")
    accelerator = T.create_accelerator(args, project_name="sim-vocoder")
    if accelerator.num_processes > 1:
        raise ValueError("sim-vocoder runs on one process for now (see the module docstring).")
    teacher = load_teacher(args.teacher)
    student = SIMVocoder.from_teacher(teacher, args.student_preset, args.student_init, args.init_t)
    init_t = student.config.init_t
    t_max = args.t_max if args.t_max is not None else (0.98 if init_t == 1.0 else init_t)
    config = SIMConfig(
        distance=args.distance,
        huber_c=args.huber_c,
        estimator=args.estimator,
        t_min=args.t_min,
        t_max=t_max,
        init_t=init_t,  # what makes SIMVocoder.synthesize the distilled one-step sample
        fake_steps_per_gen_step=args.fake_steps_per_gen_step,
        generator_lr=args.learning_rate,
        fake_lr=args.fake_learning_rate or args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        max_grad_norm=args.max_grad_norm,
    )
    teacher_score = vocoder_score_model(teacher)
    fake_score = teacher_score.copy()
    for module in fake_score.modules():  # a deterministic score estimate: no stochastic depth
        if isinstance(module.__dict__.get("drop_path"), float):
            module.drop_path = 0.0
    sim = SIMDistiller(teacher_score, config, generator=student.score_model(), fake_score=fake_score)
    ema = T.create_ema(student, args, accelerator)
    T.register_checkpoint_hooks(accelerator, student, ema)
    _, crops, _ = vocoder_datasets(args)
    loader = crops_loader(crops, args)
    prepared = accelerator.prepare(
        student, sim.fake_score.net, sim.generator_optimizer, sim.fake_optimizer, loader
    )
    student, sim.fake_score.net, sim.generator_optimizer, sim.fake_optimizer, loader = prepared
    sim.generator.net = student.backbone
    sim.teacher.to(accelerator.device)
    sim.backward, sim.clip_grad_norm = accelerator.backward, accelerator.clip_grad_norm_
    if accelerator.is_main_process:
        info = {"one_step": True, "teacher": str(args.teacher), "teacher_class": type(teacher).__name__}
        info.update(vars(config))
        info["student_parameters"] = student.num_parameters()
        info["args"] = {
            k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool, type(None)))
        }
        (Path(args.output_dir) / SIM_CONFIG_NAME).write_text(json.dumps(info, indent=2, default=str))

    steps_per_epoch = len(loader)
    global_step, first_epoch, resume_step = T.resume(accelerator, args, steps_per_epoch)
    log_path = resume_log(accelerator, args, global_step)
    bar = T.progress_bar(accelerator, args.max_train_steps, global_step)
    epoch = first_epoch
    while global_step < args.max_train_steps:
        for batch in T.epoch_batches(accelerator, loader, epoch, first_epoch, resume_step):
            mel = batch["mel"]  # (B, n_mels, frames); batch["audio"] is not used
            # Seeded per step and process, so a resumed run draws the same noise and times.
            seed = (args.seed * 1_000_003 + global_step) * 1009 + accelerator.process_index
            torch.manual_seed(seed)
            z = torch.randn(student.sample_shape(mel), generator=torch.Generator().manual_seed(seed))
            started = time.perf_counter()
            losses = sim.train_step(z.to(mel.device), {"mel": mel})
            if ema is not None:
                ema.step(student.parameters())
            global_step += 1
            log_step(accelerator, bar, log_path, losses, global_step, started)
            if global_step % args.checkpointing_steps == 0:
                T.save_checkpoint(accelerator, args, global_step)
            if global_step >= args.max_train_steps:
                break
        epoch += 1
    T.save_final_model(accelerator, student, args, ema)
    accelerator.end_training()
    return accelerator.unwrap_model(student)


if __name__ == "__main__":
    main(parse_args())
