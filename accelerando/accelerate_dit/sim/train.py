"""Distill a MelDiT into a one-step generator with SIM (arXiv 2410.16794), data-free.

Each step draws labels uniformly from the teacher's ranges (program ``0..num_programs-1``, pitch and velocity
``0..127``) and generator noise, runs ``--fake_steps_per_gen_step`` fake-score steps and one generator step
(``accelerando.accelerate_dit.sim.SIMDistiller``). Flags, EMA (``--use_ema``), checkpoints and
``--resume_from_checkpoint latest`` come from ``accelerando.training``; ``--learning_rate`` is the generator's.

The generator is a MelDiT at noise level ``init_t = 1`` (``x0 = z - v_theta(z, 1000)``), so ``output_dir/model``
(and every ``checkpoint-N/model``) is a plain ``MelDiT.from_pretrained`` folder whose one Euler step from pure
noise *is* the distilled one-step sample::

    pipe = MelDiTPipeline(MelDiT.from_pretrained("out/sim/model"), FlowMatchEulerDiscreteScheduler())
    out = pipe(instrument="Violin", pitch=67, num_inference_steps=1)  # one network evaluation, no CFG

Example::

    accelerate launch -m accelerando.accelerate_dit.sim.train --teacher out/meldit/model --output_dir out/sim \\
        --train_batch_size 8 --learning_rate 1e-5 --fake_learning_rate 1e-5 --max_train_steps 20000 --use_ema
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from accelerando import training as T
from accelerando.accelerate_dit.sim.distiller import DISTANCES, ESTIMATORS, SIMConfig, SIMDistiller
from accelerando.generation.mel_dit import NUM_MIDI_VALUES, MelDiT

__all__ = ["load_teacher", "main", "parse_args", "sample_labels"]

SIM_CONFIG_NAME = "sim_config.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    T.add_training_args(parser, learning_rate=1e-5, train_batch_size=8, max_train_steps=20000)
    add = parser.add_argument
    add("--teacher", type=str, required=True, help="A MelDiT folder (config.json + safetensors).")
    add("--fake_learning_rate", type=T.positive_float, default=None, help="Default: --learning_rate.")
    add("--distance", type=str, default="pseudo_huber", choices=DISTANCES)
    add("--huber_c", type=T.positive_float, default=SIMConfig.huber_c)
    add("--estimator", type=str, default="sim", choices=ESTIMATORS)
    add("--t_min", type=float, default=SIMConfig.t_min)
    add("--t_max", type=float, default=SIMConfig.t_max)
    add("--fake_steps_per_gen_step", type=T.positive_int, default=1, help="SiD 1, DMD2 5.")
    add("--adam_beta1", type=float, default=0.0)
    add("--adam_beta2", type=float, default=0.999)
    add("--num_frames", type=T.positive_int, default=None, help="Mel frames; default the teacher's.")
    return parser.parse_args(argv)


def load_teacher(path: str | Path) -> MelDiT:
    """``MelDiT.from_pretrained(path)`` (or ``path/model`` for a training output folder), with clear errors."""
    path = Path(path)
    if (path / T.MODEL_SUBFOLDER / "config.json").is_file() and not (path / "config.json").is_file():
        path = path / T.MODEL_SUBFOLDER
    config = path / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"--teacher {str(path)!r} is not a model folder (no config.json).")
    class_name = json.loads(config.read_text()).get("_class_name")
    if class_name != "MelDiT":
        raise TypeError(
            f"--teacher {str(path)!r} holds a {class_name}, but this script distills MelDiT teachers; "
            "use SIMDistiller directly for other models."
        )
    return MelDiT.from_pretrained(path)


def sample_labels(
    batch_size: int, num_programs: int, generator: torch.Generator, device: torch.device
) -> dict[str, torch.Tensor]:
    """Uniform labels over the teacher's ranges: ``(B,)`` long ``program`` / ``pitch`` / ``velocity``."""
    highs = {"program": num_programs, "pitch": NUM_MIDI_VALUES, "velocity": NUM_MIDI_VALUES}
    return {k: torch.randint(0, h, (batch_size,), generator=generator).to(device) for k, h in highs.items()}


def main(args: argparse.Namespace) -> MelDiT:
    if args.gradient_accumulation_steps != 1:
        raise ValueError("SIM alternates two optimizers every step; --gradient_accumulation_steps must be 1.")
    accelerator = T.create_accelerator(args, project_name="sim")
    teacher = load_teacher(args.teacher)
    config = SIMConfig(
        distance=args.distance,
        huber_c=args.huber_c,
        estimator=args.estimator,
        t_min=args.t_min,
        t_max=args.t_max,
        init_t=1.0,  # what makes the saved generator a one-Euler-step MelDiT
        fake_steps_per_gen_step=args.fake_steps_per_gen_step,
        generator_lr=args.learning_rate,
        fake_lr=args.fake_learning_rate or args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        max_grad_norm=args.max_grad_norm,
    )
    sim = SIMDistiller(teacher, config)
    generator_net, fake_net = sim.generator.net, sim.fake_score.net
    ema = T.create_ema(generator_net, args, accelerator)
    T.register_checkpoint_hooks(accelerator, generator_net, ema)
    prepared = accelerator.prepare(generator_net, fake_net, sim.generator_optimizer, sim.fake_optimizer)
    sim.generator.net, sim.fake_score.net, sim.generator_optimizer, sim.fake_optimizer = prepared
    sim.teacher.to(accelerator.device)
    sim.backward, sim.clip_grad_norm = accelerator.backward, accelerator.clip_grad_norm_
    if accelerator.is_main_process:
        info = {"one_step": True, "init_t": config.init_t, "teacher": str(args.teacher), **vars(config)}
        (Path(args.output_dir) / SIM_CONFIG_NAME).write_text(json.dumps(info, indent=2, default=str))

    global_step, _, _ = T.resume(accelerator, args, steps_per_epoch=1)
    bar = T.progress_bar(accelerator, args.max_train_steps, global_step)
    cfg = teacher.config
    num_frames = args.num_frames or cfg.num_frames
    shape = (args.train_batch_size, cfg.in_channels, cfg.n_mels, num_frames)
    while global_step < args.max_train_steps:
        # Seeded per step and process, so a resumed run draws the same labels, noise and times.
        seed = (args.seed * 1_000_003 + global_step) * 1009 + accelerator.process_index
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        cond = sample_labels(args.train_batch_size, cfg.num_programs, gen, accelerator.device)
        z = torch.randn(shape, generator=gen).to(accelerator.device)
        losses = sim.train_step(z, cond)
        if ema is not None:
            ema.step(sim.generator.net.parameters())
        global_step += 1
        bar.update(1)
        accelerator.log(losses, step=global_step)
        if global_step % args.checkpointing_steps == 0:
            T.save_checkpoint(accelerator, args, global_step)
    T.save_final_model(accelerator, sim.generator.net, args, ema)
    accelerator.end_training()
    return accelerator.unwrap_model(sim.generator.net)


if __name__ == "__main__":
    main(parse_args())
