"""A small training scaffold shared by every accelerando training script (functions, not a framework).

It follows the diffusers ``examples/`` conventions: the usual snake_case flags, an ``Accelerator`` built
from them, EMA through ``diffusers.training_utils.EMAModel``, ``save_state`` checkpoints named
``checkpoint-{step}`` that also hold a loadable ``save_pretrained`` model (EMA weights when EMA is on),
and ``--resume_from_checkpoint latest`` that continues the exact batch sequence.

Checkpoints are atomic: the state is written to ``checkpoint-{step}.tmp`` and renamed when complete, so
a run killed mid-write never leaves a folder that ``latest`` would pick.

Example (a whole training script; ``tests/training/train_tiny.py`` is a fuller one)::

    import argparse
    import torch
    import torch.nn.functional as F
    from diffusers.configuration_utils import register_to_config
    from accelerando import training as T
    from accelerando.modeling import AccelerandoModel

    class Line(AccelerandoModel):
        @register_to_config
        def __init__(self, dim: int = 3):
            super().__init__()
            self.fc = torch.nn.Linear(dim, 1)

        def forward(self, x):  # (B, dim) -> (B, 1)
            return self.fc(x)

    parser = T.add_training_args(argparse.ArgumentParser(), max_train_steps=100, checkpointing_steps=20)
    args = parser.parse_args()
    accelerator = T.create_accelerator(args, project_name="line")
    model = Line()
    ema = T.create_ema(model, args, accelerator)
    T.register_checkpoint_hooks(accelerator, model, ema)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)
    x = torch.randn(256, 3)
    dataset = torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True))
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.train_batch_size, shuffle=True)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)

    def step_fn(batch, global_step):  # the loss of one (micro-)batch, and extra scalars to log
        x, y = batch
        return F.mse_loss(model(x), y), {}

    T.run_training_loop(accelerator, args, model, optimizer, loader, step_fn, ema=ema, name="Line")
    T.save_final_model(accelerator, model, args, ema)
    accelerator.end_training()
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, LoggerType, ProjectConfiguration, set_seed
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from accelerando.modeling import replace_dir_atomically

__all__ = [
    "MIXED_PRECISIONS",
    "MODEL_SUBFOLDER",
    "add_training_args",
    "native_bf16",
    "resolve_mixed_precision",
    "create_accelerator",
    "launched_without_devices",
    "create_ema",
    "register_checkpoint_hooks",
    "save_checkpoint",
    "list_checkpoints",
    "find_resume_checkpoint",
    "resumed_model_folder",
    "resume",
    "num_update_steps_per_epoch",
    "epoch_batches",
    "progress_bar",
    "run_training_loop",
    "save_final_model",
]

logger = logging.getLogger(__name__)

MIXED_PRECISIONS = ("no", "fp16", "bf16", "auto")  # --mixed_precision; see resolve_mixed_precision

MODEL_SUBFOLDER = "model"  # inside each checkpoint and output_dir: the loadable save_pretrained model
EMA_STATE_NAME = "ema_state.json"  # EMA counters; the EMA weights themselves are MODEL_SUBFOLDER
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
REPORT_TO = ["none", *(t.value for t in LoggerType)]


def _number(kind: type, minimum: float, strict: bool, what: str):
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if value < minimum or (strict and value == minimum) or (kind is float and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    return parse


positive_int = _number(int, 0, True, "a positive integer")
non_negative_int = _number(int, 0, False, "a non-negative integer")
positive_float = _number(float, 0.0, True, "a positive number")


def _decay(text: str) -> float:
    value = _number(float, 0.0, True, "a number in (0, 1)")(text)
    if value >= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1), got {text!r}")
    return value


def add_training_args(parser: argparse.ArgumentParser, **defaults: Any) -> argparse.ArgumentParser:
    """Add the shared training flags to ``parser``; ``defaults`` override their defaults per script.

    Bad values (``--train_batch_size 0``, ``--mixed_precision fp8``, ...) make argparse exit with a
    message naming the flag, the value and what is accepted.
    """
    add = parser.add_argument
    add("--output_dir", type=str, default="output", help="Where checkpoints, logs and the final model go.")
    add("--train_batch_size", type=positive_int, default=16, help="Batch size per device.")
    add("--learning_rate", type=positive_float, default=1e-4)
    add("--max_train_steps", type=positive_int, default=1000, help="Optimizer steps in total.")
    add("--gradient_accumulation_steps", type=positive_int, default=1)
    add(
        "--mixed_precision",
        type=str,
        default="no",
        choices=MIXED_PRECISIONS,
        help="auto: bf16 where the hardware computes it natively (a bf16 GPU; a CPU with AVX512-BF16 or AMX), "
        "else fp32. On other CPUs bf16 is emulated and several times slower than fp32.",
    )
    add("--checkpointing_steps", type=positive_int, default=500, help="Save a checkpoint every N steps.")
    add("--checkpoints_total_limit", type=positive_int, default=None, help="Keep at most N checkpoints.")
    add("--resume_from_checkpoint", type=str, default=None, help='A checkpoint folder, or "latest".')
    add("--seed", type=non_negative_int, default=0, help="Seeds weights, noise and the data order.")
    add("--report_to", type=str, default="none", choices=REPORT_TO, help="Experiment tracker.")
    add("--use_ema", action=argparse.BooleanOptionalAction, default=False, help="Keep an EMA of the weights.")
    add("--ema_decay", type=_decay, default=0.9999)
    add("--dataloader_num_workers", type=non_negative_int, default=0)
    add("--max_grad_norm", type=positive_float, default=1.0)
    add("--logging_dir", type=str, default="logs", help="Tracker folder, relative to output_dir.")
    known = {action.dest for action in parser._actions}
    unknown = sorted(set(defaults) - known)
    if unknown:
        raise ValueError(
            f"add_training_args got defaults for unknown flags {unknown}; known flags: {sorted(known)}"
        )
    parser.set_defaults(**defaults)
    return parser


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):  # x86 / Arm
            return set(value.split())
    return set()


def native_bf16(device: str = "cpu") -> bool:
    """Whether ``device`` ("cpu" or "cuda") computes bfloat16 natively rather than by emulation.

    A CPU counts when it has AVX512-BF16, AMX-BF16 (x86) or the Arm BF16 extension; on CPUs without them
    torch runs bf16 autocast through conversions, measured 4x (FreGrad) to 11x (PeriodWave-Turbo) slower than fp32.
    """
    if device == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device != "cpu":
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16", "bf16"})


def resolve_mixed_precision(requested: str, on_cpu: bool) -> str:
    """The precision to train in for ``--mixed_precision requested``: ``auto`` becomes bf16 where it is
    native (see ``native_bf16``), else ``no``; explicit values are kept (with a warning for emulated bf16)."""
    if requested not in MIXED_PRECISIONS:
        raise ValueError(f"mixed_precision must be one of {', '.join(MIXED_PRECISIONS)}; got {requested!r}")
    if requested not in ("auto", "bf16"):
        return requested
    device = "cpu" if on_cpu else "cuda"
    native = native_bf16(device)
    if requested == "auto":
        chosen = "bf16" if native else "no"
        logger.info(
            "--mixed_precision auto: %s (%s bf16 on this %s)",
            chosen,
            "native" if native else "no native",
            device,
        )
        return chosen
    if not native:
        logger.warning(
            "--mixed_precision bf16 on a %s without native bf16: it is emulated and several times slower than "
            "fp32 here; --mixed_precision auto (or no) trains in fp32 on such hardware.",
            device,
        )
    return requested


def launched_without_devices() -> bool:
    """True when ``accelerate launch`` started several processes on a machine without accelerator devices.

    Such processes must use the CPU (gloo) process group (``Accelerator(cpu=True)`` / ``PartialState(cpu=True)``):
    otherwise ``--multi_gpu`` there starts N unrelated single-process runs writing into the same folder.
    """
    device_api = getattr(torch, "accelerator", None)
    has_device = device_api.is_available() if device_api is not None else torch.cuda.is_available()
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not has_device


def create_accelerator(args: argparse.Namespace, project_name: str = "accelerando") -> Accelerator:
    """Build the ``Accelerator`` for ``args``: project folders, seed, logging and trackers.

    The data order is seeded too (accelerate's seedable sampler, ``data_seed = args.seed``), so every
    process shuffles alike and a resumed run sees the same batches; call ``epoch_batches`` each epoch.
    """
    output_dir = Path(args.output_dir)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    on_cpu = launched_without_devices() or not torch.cuda.is_available()
    args.mixed_precision = resolve_mixed_precision(args.mixed_precision, on_cpu)
    project_config = ProjectConfiguration(
        project_dir=str(output_dir), logging_dir=str(output_dir / args.logging_dir)
    )
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=project_config,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
        cpu=launched_without_devices(),
    )
    if accelerator.num_processes != world_size:
        raise RuntimeError(
            f"The launcher started {world_size} processes but accelerate set up {accelerator.num_processes}; "
            "check `accelerate config` / the launch flags."
        )
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("accelerando").setLevel(
        logging.INFO if accelerator.is_local_main_process else logging.WARNING
    )
    logger.info("%s", accelerator.state)
    set_seed(args.seed)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        if args.report_to != "none":
            config = {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))}
            accelerator.init_trackers(project_name, config=config)
    return accelerator


def create_ema(model: torch.nn.Module, args: argparse.Namespace, accelerator: Accelerator) -> EMAModel | None:
    """An ``EMAModel`` of ``model``'s parameters when ``--use_ema`` is on, else ``None``.

    Call it with the unwrapped model before ``accelerator.prepare``; step it with ``ema.step(model.parameters())``
    after each optimizer step (``accelerator.sync_gradients``).
    """
    if not args.use_ema:
        return None
    ema = EMAModel(model.parameters(), decay=args.ema_decay, model_cls=type(model), model_config=model.config)
    ema.to(accelerator.device)
    return ema


def register_checkpoint_hooks(
    accelerator: Accelerator, model: torch.nn.Module, ema: EMAModel | None = None
) -> None:
    """Make every ``save_state`` folder also hold ``MODEL_SUBFOLDER/``, a ``save_pretrained`` model.

    That model has the EMA weights when ``ema`` is given (the raw weights stay in accelerate's own files),
    and loading a state restores the EMA from it, so no pickled EMA object is ever written.
    """

    def save_hook(models: list[torch.nn.Module], weights: list[dict], output_dir: str) -> None:
        if not accelerator.is_main_process:
            return
        unwrapped = accelerator.unwrap_model(model)
        if ema is None:
            unwrapped.save_pretrained(Path(output_dir, MODEL_SUBFOLDER))
            return
        ema_model = type(unwrapped).from_config(unwrapped.config)
        ema.copy_to(ema_model.parameters())
        ema_model.save_pretrained(Path(output_dir, MODEL_SUBFOLDER))
        counters = {k: v for k, v in ema.state_dict().items() if k != "shadow_params"}
        Path(output_dir, EMA_STATE_NAME).write_text(json.dumps(counters, indent=2))

    def load_hook(models: list[torch.nn.Module], input_dir: str) -> None:
        if ema is None:
            return
        unwrapped = accelerator.unwrap_model(model)
        folder = Path(input_dir, MODEL_SUBFOLDER)
        ema_model = type(unwrapped).from_pretrained(folder)
        ema.load_state_dict(json.loads(Path(input_dir, EMA_STATE_NAME).read_text()))
        ema.shadow_params = [p.detach().clone() for p in ema_model.parameters()]
        ema.to(accelerator.device)

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


def list_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete ``checkpoint-{step}`` folders in ``output_dir`` as ``(step, path)``, oldest first (``*.tmp`` ignored)."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    found = [
        (int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _CHECKPOINT_RE.match(p.name))
    ]
    return sorted(found)


def save_checkpoint(accelerator: Accelerator, args: argparse.Namespace, step: int) -> Path:
    """Save the full training state as ``output_dir/checkpoint-{step}``, atomically; then prune.

    All processes must call it. The state goes to ``checkpoint-{step}.tmp`` first; the main process
    renames it when every process has finished writing, then deletes the oldest checkpoints beyond
    ``--checkpoints_total_limit`` and leftovers of killed writes.
    """
    output_dir = Path(args.output_dir)
    final_dir = output_dir / f"checkpoint-{step}"
    tmp_dir = output_dir / f"checkpoint-{step}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp_dir))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        replace_dir_atomically(tmp_dir, final_dir)
        for stale in output_dir.glob("checkpoint-*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
        limit = args.checkpoints_total_limit
        checkpoints = list_checkpoints(output_dir)
        if limit is not None and len(checkpoints) > limit:
            for _, old in checkpoints[: len(checkpoints) - limit]:
                logger.info("Removing old checkpoint %s (checkpoints_total_limit=%d)", old, limit)
                shutil.rmtree(old)
        logger.info("Saved checkpoint %s", final_dir)
    accelerator.wait_for_everyone()
    return final_dir


def find_resume_checkpoint(args: argparse.Namespace) -> Path | None:
    """The checkpoint ``--resume_from_checkpoint`` names, or ``None`` to start fresh.

    ``"latest"`` picks the highest complete ``checkpoint-{step}`` in ``output_dir`` (``*.tmp`` folders of
    killed writes are ignored) and returns ``None`` when there is none. An explicit path (absolute, or
    relative to the working directory or to ``output_dir``) must exist.
    """
    value = args.resume_from_checkpoint
    if value is None:
        return None
    if value == "latest":
        checkpoints = list_checkpoints(args.output_dir)
        if not checkpoints:
            logger.info("No checkpoint found in %s; starting fresh.", args.output_dir)
            return None
        return checkpoints[-1][1]
    path = Path(value)
    if not path.is_dir() and (Path(args.output_dir) / value).is_dir():
        path = Path(args.output_dir) / value
    if not path.is_dir():
        raise FileNotFoundError(
            f"--resume_from_checkpoint {value!r} is not an existing checkpoint folder "
            f'(looked in the working directory and in {args.output_dir}); pass a checkpoint-N folder or "latest".'
        )
    if not _CHECKPOINT_RE.match(path.name):
        raise ValueError(
            f"--resume_from_checkpoint {value!r} is not a complete checkpoint: expected a folder named "
            "checkpoint-<step> (a *.tmp folder is an unfinished write)."
        )
    return path


def resumed_model_folder(args: argparse.Namespace) -> Path | None:
    """The ``model/`` folder of the checkpoint that ``--resume_from_checkpoint`` resumes, or ``None``.

    A resumed run rebuilds its architecture from this folder's config (its weights then come with the checkpoint
    state), so the flags that chose the model on the first start (a preset, ``--init_model``) are not read again
    and the folder they named may be gone.
    """
    checkpoint = find_resume_checkpoint(args)
    if checkpoint is None or not (checkpoint / MODEL_SUBFOLDER / "config.json").is_file():
        return None
    return checkpoint / MODEL_SUBFOLDER


def num_update_steps_per_epoch(dataloader: Any, args: argparse.Namespace) -> int:
    """Optimizer steps per epoch of the prepared ``dataloader`` with gradient accumulation."""
    return max(1, math.ceil(len(dataloader) / args.gradient_accumulation_steps))


def resume(accelerator: Accelerator, args: argparse.Namespace, steps_per_epoch: int) -> tuple[int, int, int]:
    """Load the checkpoint chosen by ``--resume_from_checkpoint``; return ``(global_step, first_epoch, resume_step)``.

    ``resume_step`` is the number of batches of ``first_epoch`` already consumed; pass all three to
    ``epoch_batches``. Returns ``(0, 0, 0)`` when starting fresh. All processes must call it.
    """
    path = find_resume_checkpoint(args)
    if path is None:
        return 0, 0, 0
    logger.info("Resuming from %s", path)
    accelerator.load_state(str(path))
    global_step = int(_CHECKPOINT_RE.match(path.name).group(1))
    first_epoch = global_step // steps_per_epoch
    resume_step = (global_step % steps_per_epoch) * args.gradient_accumulation_steps
    return global_step, first_epoch, resume_step


def epoch_batches(
    accelerator: Accelerator, dataloader: Any, epoch: int, first_epoch: int, resume_step: int
) -> Iterable:
    """The prepared ``dataloader`` for ``epoch``: shuffled by ``seed + epoch``, resumed batches skipped.

    Setting the epoch explicitly (instead of relying on generator state) is what makes the order after
    a resume identical to the uninterrupted run.
    """
    dataloader.set_epoch(epoch)
    if epoch == first_epoch and resume_step > 0:
        skipped = accelerator.skip_first_batches(dataloader, resume_step)
        skipped.set_epoch(epoch)
        return skipped
    return dataloader


def progress_bar(accelerator: Accelerator, total: int, initial: int = 0) -> tqdm:
    """A tqdm bar of optimizer steps, shown on the local main process only."""
    return tqdm(total=total, initial=initial, desc="Steps", disable=not accelerator.is_local_main_process)


def save_final_model(
    accelerator: Accelerator, model: torch.nn.Module, args: argparse.Namespace, ema: EMAModel | None = None
) -> Path:
    """Save the trained model (EMA weights when ``ema`` is given) to ``output_dir/MODEL_SUBFOLDER``."""
    accelerator.wait_for_everyone()
    target = Path(args.output_dir) / MODEL_SUBFOLDER
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        if ema is not None:
            final = type(unwrapped).from_config(unwrapped.config)
            ema.copy_to(final.parameters())
            unwrapped = final
        unwrapped.save_pretrained(target)
    accelerator.wait_for_everyone()
    return target


def run_training_loop(
    accelerator: Accelerator,
    args: argparse.Namespace,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    dataloader: Any,
    step_fn: Callable[[Any, int], tuple[torch.Tensor, dict[str, Any]]],
    *,
    ema: EMAModel | None = None,
    lr_scheduler: Any = None,
    on_epoch_start: Callable[[int], None] | None = None,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
    name: str = "model",
) -> int:
    """Train the prepared ``model`` for ``--max_train_steps`` optimizer steps; return the final global step.

    ``step_fn(batch, global_step) -> (loss, logs)`` computes the loss of one (micro-)batch inside
    ``accelerator.accumulate(model)``; ``global_step`` counts the optimizer steps done so far and ``logs``
    holds extra scalars (tensors or numbers) for the tracker. The loop resumes from
    ``--resume_from_checkpoint``, walks ``epoch_batches``, and per batch does backward, clipping to
    ``--max_grad_norm`` (on sync), ``optimizer.step``, ``lr_scheduler.step`` and ``zero_grad``. After each
    optimizer step it raises if the loss is not finite, steps ``ema``, advances the progress bar, logs
    ``{"loss", "lr" (with a scheduler), **logs}`` to the tracker, calls ``on_step(global_step, loss)``,
    and every ``--checkpointing_steps`` calls ``save_checkpoint`` then ``on_checkpoint(global_step)``.
    ``on_epoch_start(epoch)`` runs before each epoch's batches. All processes must call it.
    """
    steps_per_epoch = num_update_steps_per_epoch(dataloader, args)
    global_step, first_epoch, resume_step = resume(accelerator, args, steps_per_epoch)
    bar = progress_bar(accelerator, args.max_train_steps, global_step)
    for epoch in range(first_epoch, math.ceil(args.max_train_steps / steps_per_epoch)):
        if on_epoch_start is not None:
            on_epoch_start(epoch)
        for batch in epoch_batches(accelerator, dataloader, epoch, first_epoch, resume_step):
            with accelerator.accumulate(model):
                loss, extra = step_fn(batch, global_step)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                if lr_scheduler is not None:
                    lr_scheduler.step()
                optimizer.zero_grad()
            if accelerator.sync_gradients:
                value = loss.item()
                if not math.isfinite(value):
                    raise RuntimeError(f"{name} training loss became {value} at step {global_step}")
                if ema is not None:
                    ema.step(model.parameters())
                global_step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4f}")
                logs = {"loss": value}
                if lr_scheduler is not None:
                    logs["lr"] = lr_scheduler.get_last_lr()[0]
                logs.update(
                    {k: v.item() if isinstance(v, torch.Tensor) else float(v) for k, v in extra.items()}
                )
                accelerator.log(logs, step=global_step)
                if on_step is not None:
                    on_step(global_step, loss)
                if global_step % args.checkpointing_steps == 0:
                    save_checkpoint(accelerator, args, global_step)
                    if on_checkpoint is not None:
                        on_checkpoint(global_step)
            if global_step >= args.max_train_steps:
                return global_step
    return global_step
