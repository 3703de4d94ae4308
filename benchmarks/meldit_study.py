"""Shared harness of the small-MelDiT training studies (``fasterdit_convergence.py``, ``meldit_pitch_study.py``).

One function trains a small MelDiT on the note corpus with a given config and FasterDiT recipe, in one
process with fixed seeds (the same batches, timesteps and evaluation noise for every variant), and at each
checkpoint measures, with the EMA weights:

- ``val_flow_loss``: the flow-matching loss on the validation notes at a fixed protocol (the same noise and an
  evenly spaced timestep grid), in the variant's own data scale;
- ``sw2``: sliced W2 between Euler-sampled mels and the validation mels (data space, the corpus' fixed
  normalisation), for the validation labels;
- with the note classifier: instrument accuracy, pitch accuracy (exact / within a semitone) of the samples
  against the labels asked for, and the Fréchet distance of their classifier embeddings to the validation
  notes' (our own metric, not FAD).

This is a module of the benchmark scripts, not a script.
"""

from __future__ import annotations

import copy
import functools
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from accelerando.accelerate_dit.fasterdit import FasterDiTRecipe
from accelerando.generation import NoteClassifier, note_metrics
from accelerando.generation import train as meldit_train
from accelerando.generation.mel_dit import MelDiT
from accelerando.metrics import sliced_wasserstein2


@dataclass
class NoteStudyData:
    """Training / validation notes as tensors (``collate_notes``) and the classifier's reference embeddings."""

    train: dict[str, torch.Tensor]
    val: dict[str, torch.Tensor]
    classifier: NoteClassifier | None
    reference_embeddings: torch.Tensor | None


def load_study_data(data_dir: str, num_frames: int, classifier_path: str | None) -> NoteStudyData:
    """Load the note corpus splits (cropped / padded to ``num_frames``) and, when given, the classifier."""
    from accelerando.data import NoteDataset

    def split(name: str) -> dict[str, torch.Tensor]:
        ds = NoteDataset(data_dir, split=name)
        return meldit_train.collate_notes([ds[i] for i in range(len(ds))], num_frames)

    train, val = split("train"), split("validation")
    classifier = reference = None
    if classifier_path is not None:
        classifier = NoteClassifier.from_pretrained(classifier_path).eval()
        reference = classifier.embed(val["mel"])
    return NoteStudyData(train, val, classifier, reference)


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema <- decay ema + (1 - decay) model`` (evaluation uses EMA weights, as DiT does)."""
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.lerp_(p, 1 - decay)


@torch.no_grad()
def euler_sample(velocity: Any, noise: torch.Tensor, steps: int) -> torch.Tensor:
    """Integrate ``dx/dt = v`` from t = 1 (noise) to 0 with ``steps`` uniform Euler steps."""
    x = noise
    ts = torch.linspace(1, 0, steps + 1)
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = x + (t_next - t) * velocity(x, t.expand(x.shape[0]))
    return x


def _mel_velocity(
    model: MelDiT, labels: tuple[torch.Tensor, ...], x: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    return model(x, t * 1000, *labels).sample


def steps_to_reach(
    curve: list[float], steps: list[int], target: float, higher_is_better: bool = False
) -> int | None:
    """The first checkpoint step whose value reaches ``target`` (``<=``, or ``>=`` when higher is better)."""
    hit = (lambda v: v >= target) if higher_is_better else (lambda v: v <= target)
    return next((s for s, v in zip(steps, curve) if hit(v)), None)


def speedup(
    curves: dict[str, list[float]],
    steps: list[int],
    reference: str = "vanilla",
    higher_is_better: bool = False,
) -> dict[str, Any]:
    """Per variant: the first step reaching ``reference``'s final value, and ``reference``'s budget / that step."""
    target = curves[reference][-1]
    out = {}
    for name, curve in curves.items():
        reached = steps_to_reach(curve, steps, target, higher_is_better)
        out[name] = {
            "steps_to_reference_final": reached,
            "ratio": None if reached is None else steps[-1] / reached,
        }
    return out


def train_small_meldit(
    data: NoteStudyData,
    config: dict[str, Any],
    recipe: FasterDiTRecipe,
    *,
    steps: int,
    every: int,
    batch_size: int = 16,
    learning_rate: float = 3e-4,
    ema_decay: float = 0.99,
    sample_steps: int = 16,
    seed: int = 0,
    label: str = "",
) -> dict[str, Any]:
    """Train one variant and measure it every ``every`` steps (see the module notes). Returns the rows."""
    train, val = data.train, data.val
    torch.manual_seed(seed)
    model = MelDiT(**config)
    measured = float(model.normalize_mel(train["mel"]).std())
    model.register_to_config(mel_std=model.config.mel_std / recipe.data_scale(measured))
    ema = copy.deepcopy(model).requires_grad_(False).eval()
    opt = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    gen, tgen = torch.Generator().manual_seed(1 + 1000 * seed), torch.Generator().manual_seed(2 + 1000 * seed)
    val_gen = torch.Generator().manual_seed(3)
    n_val = val["mel"].shape[0]
    val_noise = torch.randn(val["mel"].shape, generator=val_gen)
    sample_noise = torch.randn(val["mel"].shape, generator=val_gen)
    val_t = (torch.arange(n_val) + 0.5) / n_val
    labels = lambda b, idx: (b["program"][idx], b["pitch"][idx], b["velocity"][idx])  # noqa: E731
    all_val = torch.arange(n_val)
    rows, start = [], time.time()
    for step in range(1, steps + 1):
        model.train()
        idx = torch.randint(0, train["mel"].shape[0], (batch_size,), generator=gen)
        x0 = model.normalize_mel(train["mel"][idx])
        t = recipe.sample_timesteps(batch_size, generator=tgen)
        loss = meldit_train.training_loss(model, x0, *labels(train, idx), t, recipe.direction_weight, gen)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema_update(ema, model, ema_decay)
        if step % every:
            continue
        with torch.no_grad():
            vx0 = ema.normalize_mel(val["mel"])
            s = val_t[:, None, None, None]
            pred = ema((1 - s) * vx0 + s * val_noise, val_t * 1000, *labels(val, all_val)).sample
            val_loss = float(((pred - (val_noise - vx0)) ** 2).mean())
            velocity = functools.partial(_mel_velocity, ema, labels(val, all_val))
            samples = ema.denormalize_mel(euler_sample(velocity, sample_noise, sample_steps))
        # Data space, in the corpus' fixed normalisation (mean -5, std 3) so variants share one unit.
        sw2 = sliced_wasserstein2((samples.flatten(1) + 5) / 3, (val["mel"].flatten(1) + 5) / 3)
        row: dict[str, Any] = {"step": step, "train_loss": float(loss), "val_flow_loss": val_loss, "sw2": sw2}
        if data.classifier is not None:
            row.update(
                note_metrics(
                    data.classifier, samples, val["program"], val["pitch"], data.reference_embeddings
                )
            )
            row.pop("num_notes")
        row["elapsed_s"] = time.time() - start
        rows.append(row)
        shown = {k: round(v, 4) for k, v in row.items() if k not in ("step", "train_loss")}
        print(f"{label} step {step}: {shown}", flush=True)
    return {"data_scale": recipe.data_scale(measured), "measured_normalised_std": measured, "rows": rows}
