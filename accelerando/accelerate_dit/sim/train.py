"""Distill a MelDiT into a one-step generator with SIM (arXiv 2410.16794), data-free.

Each step draws labels uniformly from the teacher's ranges (program ``0..num_programs-1``, pitch and velocity
``0..127``), or with ``--label_corpus DIR`` uniformly from the (program, pitch, velocity) rows of a note corpus's
``manifest.csv`` (its ``train`` split when ``split.json`` is there; labels only, no audio is read), and generator
noise, runs ``--fake_steps_per_gen_step`` fake-score steps and one generator step
(``accelerando.accelerate_dit.sim.SIMDistiller``). Flags, EMA (``--use_ema``), checkpoints and
``--resume_from_checkpoint latest`` come from ``accelerando.training``; ``--learning_rate`` is the generator's.
Losses go to ``output_dir/sim_log.jsonl`` (one line per step).

``--guidance_scale w`` distils the classifier-free guided teacher ``v_u + w (v_c - v_u)`` (the way a pipeline
samples it, e.g. ``meldit-notes`` at its demo default 3) into a generator that needs no guidance: one network
evaluation instead of ``2 x steps``. The generator and the fake score are the teacher's weights without its
label dropout (the generator is always conditional; the fake score models the generator's conditional output).

The generator is a MelDiT at noise level ``init_t = 1`` (``x0 = z - v_theta(z, 1000)``), so ``output_dir/model``
(and every ``checkpoint-N/model``) is a plain ``MelDiT.from_pretrained`` folder whose one Euler step from pure
noise *is* the distilled one-step sample::

    pipe = MelDiTPipeline(MelDiT.from_pretrained("out/sim/model"), FlowMatchEulerDiscreteScheduler())
    out = pipe(instrument="Violin", pitch=67, num_inference_steps=1)  # one network evaluation, no CFG

Example (the paper's learning rates; the bundled ``meldit-sim-notes``, ``accelerando recipe meldit-sim-notes``, used
``--guidance_scale 3 --train_batch_size 4 --learning_rate 1e-4 --fake_learning_rate 2e-4 --ema_decay 0.99`` for 100
steps, about 13 minutes on a shared 2-core CPU; see its card)::

    accelerate launch -m accelerando.accelerate_dit.sim.train --teacher out/meldit/model --output_dir out/sim \\
        --label_corpus corpora/instruments/notes --train_batch_size 8 --learning_rate 1e-5 \\
        --fake_learning_rate 1e-5 --max_train_steps 20000 --use_ema
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import time
from pathlib import Path
from typing import Any

import torch

from accelerando import training as T
from accelerando.accelerate_dit.sim.distiller import DISTANCES, ESTIMATORS, SIMConfig, SIMDistiller
from accelerando.accelerate_dit.sim.score import ScoreModel
from accelerando.generation.mel_dit import NUM_MIDI_VALUES, MelDiT, guidance_labels, guided_velocity

__all__ = [
    "guided_teacher",
    "load_label_table",
    "load_teacher",
    "main",
    "parse_args",
    "sample_labels",
    "student",
]

SIM_CONFIG_NAME = "sim_config.json"
SIM_LOG_NAME = "sim_log.jsonl"
LABEL_KEYS = ("program", "pitch", "velocity")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="accelerando train sim", description=__doc__.split("\n\n")[0])
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
    add("--label_corpus", type=str, default=None, help="Note corpus folder whose label rows to sample.")
    add(
        "--guidance_scale",
        type=T.positive_float,
        default=1.0,
        help="Distil the classifier-free guided teacher v_u + w (v_c - v_u); 1 = no guidance.",
    )
    return parser.parse_args(argv)


def guided_teacher(teacher: MelDiT, guidance_scale: float = 1.0) -> ScoreModel:
    """The teacher as a flow :class:`ScoreModel` whose velocity is classifier-free guided at ``guidance_scale``
    (conditional and unconditional rows in one forward, :func:`guided_velocity`); ``1.0`` is the plain model."""
    if guidance_scale <= 0:
        raise ValueError(f"guidance_scale must be > 0 (1 = no guidance); got {guidance_scale}")

    def call(net: MelDiT, x: torch.Tensor, timestep: torch.Tensor, cond: dict[str, Any]) -> torch.Tensor:
        labels = guidance_labels([cond[key] for key in LABEL_KEYS], guidance_scale)
        return guided_velocity(net, x, timestep, labels, guidance_scale)

    return ScoreModel(teacher, "flow", call=call)


def student(teacher: MelDiT) -> ScoreModel:
    """A trainable copy of the teacher for the generator or the fake score: same weights, no label dropout."""
    net = copy.deepcopy(teacher)
    net.register_to_config(class_dropout_prob=0.0)
    return ScoreModel(net, "flow").copy()


def load_teacher(path: str | Path) -> MelDiT:
    """The MelDiT at ``path`` (a bundled name, a model folder or a training output), with clear errors."""
    from accelerando.pretrained.loading import class_name, load, resolve

    folder = resolve(path)
    if class_name(folder) != "MelDiT":
        raise TypeError(
            f"--teacher {str(path)!r} holds a {class_name(folder)}, but this script distills MelDiT teachers; "
            "use SIMDistiller directly for other models."
        )
    return load(folder, expect=("MelDiT",))


def load_label_table(corpus: str | Path, num_programs: int, split: str = "train") -> torch.Tensor:
    """``(N, 3)`` long (program, pitch, velocity) rows of a note corpus's ``manifest.csv`` (rows of ``split`` when
    ``split.json`` lists it), checked against the teacher's ``num_programs`` and the MIDI range."""
    corpus = Path(corpus)
    manifest = corpus / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"--label_corpus {str(corpus)!r} has no manifest.csv (a note corpus folder).")
    with manifest.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    missing = [k for k in ("id", *LABEL_KEYS) if rows and k not in rows[0]]
    if not rows or missing:
        raise ValueError(f"{manifest} has no label rows (missing columns {missing or list(LABEL_KEYS)}).")
    split_file = corpus / "split.json"
    if split_file.is_file():
        keep = set(json.loads(split_file.read_text(encoding="utf-8")).get(split, []))
        rows = [r for r in rows if r["id"] in keep] or rows
    table = torch.tensor([[int(r[k]) for k in LABEL_KEYS] for r in rows], dtype=torch.long)
    highs = torch.tensor([num_programs, NUM_MIDI_VALUES, NUM_MIDI_VALUES])
    bad = ((table < 0) | (table >= highs)).any(1)
    if bad.any():
        raise ValueError(
            f"{manifest}: label row {table[bad][0].tolist()} is outside the teacher's ranges "
            f"(program < {num_programs}, pitch and velocity < {NUM_MIDI_VALUES})."
        )
    return table


def sample_labels(
    batch_size: int,
    num_programs: int,
    generator: torch.Generator,
    device: torch.device,
    table: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """``(B,)`` long ``program`` / ``pitch`` / ``velocity``: uniform over the teacher's ranges, or uniform rows of
    ``table`` ``(N, 3)`` (``load_label_table``)."""
    if table is not None:
        rows = table[torch.randint(0, table.shape[0], (batch_size,), generator=generator)]
        return {k: rows[:, i].to(device) for i, k in enumerate(LABEL_KEYS)}
    highs = {"program": num_programs, "pitch": NUM_MIDI_VALUES, "velocity": NUM_MIDI_VALUES}
    return {k: torch.randint(0, h, (batch_size,), generator=generator).to(device) for k, h in highs.items()}


def resume_log(accelerator: Any, args: argparse.Namespace, global_step: int) -> Path:
    """``output_dir/sim_log.jsonl``, with the lines of steps after the resumed ``global_step`` dropped."""
    log_path = Path(args.output_dir) / SIM_LOG_NAME
    if accelerator.is_main_process and log_path.is_file():
        lines = log_path.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= global_step]
        log_path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    return log_path


def log_step(
    accelerator: Any, bar: Any, log_path: Path, losses: dict[str, float], global_step: int, started: float
) -> None:
    """One SIM step's losses to the progress bar, the trackers and (main process) a JSON line of the log."""
    bar.update(1)
    bar.set_postfix({k: f"{v:.4g}" for k, v in losses.items()})
    accelerator.log(losses, step=global_step)
    if accelerator.is_main_process:
        line = {"step": global_step, **losses, "seconds": round(time.perf_counter() - started, 3)}
        with log_path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(line) + "\n")


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
    table = load_label_table(args.label_corpus, teacher.config.num_programs) if args.label_corpus else None
    sim = SIMDistiller(
        guided_teacher(teacher, args.guidance_scale),
        config,
        generator=student(teacher),
        fake_score=student(teacher),
    )
    generator_net, fake_net = sim.generator.net, sim.fake_score.net
    ema = T.create_ema(generator_net, args, accelerator)
    T.register_checkpoint_hooks(accelerator, generator_net, ema)
    prepared = accelerator.prepare(generator_net, fake_net, sim.generator_optimizer, sim.fake_optimizer)
    sim.generator.net, sim.fake_score.net, sim.generator_optimizer, sim.fake_optimizer = prepared
    sim.teacher.to(accelerator.device)
    sim.backward, sim.clip_grad_norm = accelerator.backward, accelerator.clip_grad_norm_
    if accelerator.is_main_process:
        info = {"one_step": True, "init_t": config.init_t, "teacher": str(args.teacher), **vars(config)}
        info["args"] = {
            k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool, type(None)))
        }
        (Path(args.output_dir) / SIM_CONFIG_NAME).write_text(json.dumps(info, indent=2, default=str))

    global_step, _, _ = T.resume(accelerator, args, steps_per_epoch=1)
    log_path = resume_log(accelerator, args, global_step)
    bar = T.progress_bar(accelerator, args.max_train_steps, global_step)
    cfg = teacher.config
    num_frames = args.num_frames or cfg.num_frames
    shape = (args.train_batch_size, cfg.in_channels, cfg.n_mels, num_frames)
    while global_step < args.max_train_steps:
        # Seeded per step and process, so a resumed run draws the same labels, noise and times.
        seed = (args.seed * 1_000_003 + global_step) * 1009 + accelerator.process_index
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        cond = sample_labels(args.train_batch_size, cfg.num_programs, gen, accelerator.device, table)
        z = torch.randn(shape, generator=gen).to(accelerator.device)
        started = time.perf_counter()
        losses = sim.train_step(z, cond)
        if ema is not None:
            ema.step(sim.generator.net.parameters())
        global_step += 1
        log_step(accelerator, bar, log_path, losses, global_step, started)
        if global_step % args.checkpointing_steps == 0:
            T.save_checkpoint(accelerator, args, global_step)
    T.save_final_model(accelerator, sim.generator.net, args, ema)
    accelerator.end_training()
    return accelerator.unwrap_model(sim.generator.net)


if __name__ == "__main__":
    main(parse_args())
