"""RF-Solver inversion and RF-Edit on real notes with a trained MelDiT (arXiv 2411.04746 on audio).

Notes come from the instrument corpus's test split (one per instrument, round robin, seeded), as log-mels cropped
to the MelDiT's frames, and are conditioned on their own labels (program, pitch, velocity).

(a) **Reconstruction.** Each note is inverted to noise under its own condition and regenerated from that noise
    with the same solver and schedule (guidance 1 both ways), at equal model evaluations (NFE) per direction:
    Euler (plain ReFlow inversion, 1 NFE per step), RF-Solver-2 (2 per step), RF-Solver-3 (3 per step) and the
    FireFlow velocity-reuse variant (n + 1 for n steps). Reported: mel L1 in the MelDiT's normalised space and in
    dB, and PSNR (peak = the source note's range; the same in normalised and dB units), plus the L1 between two
    unrelated test notes for scale.
(b) **Instrument change (RF-Edit).** Each note is edited to a different instrument that the corpus plays at that
    pitch, with the same pitch and velocity, by three methods: RF-Edit (RF-Solver inversion storing the attention
    values V of the late blocks, regeneration sharing them for the first steps), RF-Solver inversion and
    regeneration without sharing, and plain Euler inversion and regeneration at the same NFE; plus the target
    generated from fresh noise (what the model makes of the target label alone). Reported: pitch error of the
    edit against the source in cents (median f0 from the toolkit's pYIN, ``accelerando.audio.extract_f0``, on
    Griffin-Lim audio of both mels, the vocoder the ``accelerando edit`` CLI falls back to), the note classifier's
    verdict (target instrument recognised, source pitch still recognised by its pitch head), onset difference
    (first frame within 20 dB of the note's peak frame energy) and the frame-energy envelope difference.

Inject steps and blocks follow the paper's FLUX defaults scaled to our schedule: FLUX shares V in the last 18 of
its 38 single-stream blocks (here: the second half of the blocks) for 2 of 25 steps, which ends at sigma ~0.96;
with our 8 steps and shift 3, one step ends at sigma 0.954 (``--inject-steps 1``).

Run (about 10 minutes on one shared CPU core: 12 notes edited, the first 8 of them, 8 instruments, reconstructed)::

    OMP_NUM_THREADS=1 python benchmarks/rf_solver_notes.py --model accelerando/pretrained/meldit-notes \\
        --num-notes 12   # -> benchmarks/results/rf_solver_notes.{json,png}
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Subset

from accelerando.accelerate_dit.note_edit import F0_MIN_HZ, estimate_f0_hz
from accelerando.accelerate_dit.rf_solver import RFEditConfig, rf_edit, rf_solver_invert
from accelerando.generation import (
    MelDiT,
    MelDiTPipeline,
    NoteClassifier,
    flow_model_wrapper,
    get_sigmas_shifted,
    note_metrics,
    sample_euler,
    sample_fireflow,
    sample_rf_solver,
)
from accelerando.generation.train_classifier import DB_PER_NEPER, build_dataset, load_notes
from accelerando.metrics.report import environment, summarize, write_results
from accelerando.pretrained import pretrained_path


def _rf3(*args: Any, **kwargs: Any) -> torch.Tensor:
    return sample_rf_solver(*args, order=3, **kwargs)


# name: (inversion solver of rf_solver_invert, sampler, steps for an NFE budget per direction)
SOLVERS: dict[str, tuple[str, Callable[..., torch.Tensor], Callable[[int], int]]] = {
    "euler": ("euler", sample_euler, lambda nfe: nfe),
    "rf_solver_2": ("rf_solver", sample_rf_solver, lambda nfe: nfe // 2),
    "rf_solver_3": ("rf_solver_3", _rf3, lambda nfe: nfe // 3),
    "fireflow": ("fireflow", sample_fireflow, lambda nfe: nfe - 1),
}
EDIT_METHODS = ("rf_edit", "rf_solver", "euler", "generated")
F0_BAND = 2**1.5  # the f0 search spans 1.5 octaves either side of the note's MIDI pitch
ONSET_DB = 20.0  # onset: the first frame whose energy is within this many dB of the note's loudest frame


# --- notes -------------------------------------------------------------------------------------------------------


def load_test_notes(corpus: str, num_notes: int, seed: int, num_frames: int) -> dict[str, Any]:
    """``num_notes`` test-split notes, one instrument after another (round robin over programs, seeded).

    Returns ``mel`` ``(N, n_mels, num_frames)`` log-mels (cropped from the onset or padded with the floor),
    ``program`` / ``pitch`` / ``velocity`` ``(N,)`` long and ``id`` (list of str).
    """
    if num_notes < 2:
        raise ValueError(
            f"--num-notes must be at least 2 (the unrelated-note scale pairs notes), got {num_notes}"
        )
    dataset = build_dataset(argparse.Namespace(data_dir=corpus), "test")
    by_program: dict[int, list[int]] = {}
    for i, row in enumerate(dataset.rows):
        by_program.setdefault(int(row["program"]), []).append(i)
    rng = random.Random(seed)
    groups = [rng.sample(v, len(v)) for _, v in sorted(by_program.items())]
    rng.shuffle(groups)
    order = [g[k] for k in range(max(map(len, groups), default=0)) for g in groups if k < len(g)]
    if len(order) < num_notes:
        raise ValueError(f"--num-notes {num_notes} is more than the {len(order)} notes of the test split")
    index = order[:num_notes]
    notes = load_notes(Subset(dataset, index), num_frames)
    notes["velocity"] = torch.tensor([int(dataset.rows[i]["velocity"]) for i in index], dtype=torch.long)
    notes["id"] = [dataset.rows[i]["id"] for i in index]
    return notes


def choose_targets(
    programs: torch.Tensor,
    pitches: torch.Tensor,
    candidates: Sequence[int],
    pitch_ranges: Mapping[int, tuple[int, int]] | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """A target program per note: a different one of ``candidates``, one the corpus plays at the note's pitch
    (``pitch_ranges``: program -> (lowest, highest) MIDI pitch) when there is one."""
    rng = random.Random(seed)
    targets = []
    for program, pitch in zip(programs.tolist(), pitches.tolist()):
        others = [c for c in candidates if c != program]
        if not others:
            raise ValueError(f"candidates {list(candidates)} hold no program other than the source {program}")
        if pitch_ranges is not None:
            playable = [
                c for c in others if c in pitch_ranges and pitch_ranges[c][0] <= pitch <= pitch_ranges[c][1]
            ]
            others = playable or others
        targets.append(rng.choice(others))
    return torch.tensor(targets, dtype=torch.long)


def train_pitch_ranges(corpus: str) -> dict[int, tuple[int, int]]:
    """program -> (lowest, highest) pitch in the training split (the manifest only; no audio is read)."""
    ranges: dict[int, tuple[int, int]] = {}
    for row in build_dataset(argparse.Namespace(data_dir=corpus), "train").rows:
        p, m = int(row["program"]), int(row["pitch"])
        lo, hi = ranges.get(p, (m, m))
        ranges[p] = (min(lo, m), max(hi, m))
    return ranges


# --- measurements ------------------------------------------------------------------------------------------------


def _counting(model: Callable[..., torch.Tensor]) -> tuple[Callable[..., torch.Tensor], dict[str, int]]:
    calls = {"n": 0}

    def fn(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return model(x, sigma)

    return fn, calls


def _psnr(rec: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-note PSNR in dB, ``(B,)``, with the source note's value range as the peak."""
    mse = ((rec - ref) ** 2).flatten(1).mean(1)
    peak = ref.flatten(1).amax(1) - ref.flatten(1).amin(1)
    return 10 * torch.log10(peak**2 / mse)


def reconstruction(
    transformer: MelDiT,
    mels: torch.Tensor,
    labels: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    nfe_budgets: Sequence[int],
    shift: float = 3.0,
    batch_size: int = 12,
) -> dict[str, list[dict[str, float]]]:
    """Inversion -> regeneration error of each solver at each NFE budget (per direction), guidance 1.

    ``mels`` ``(N, n_mels, frames)`` log-mels; ``labels`` ``(program, pitch, velocity)`` ``(N,)`` each.
    """
    bad = [b for b in nfe_budgets if int(b) < 3]
    if bad:
        raise ValueError(f"NFE budgets must be at least 3 (RF-Solver-3 takes 3 per step), got {bad}")
    x0 = transformer.normalize_mel(mels.float())[:, None]  # (N, 1, n_mels, frames)
    results: dict[str, list[dict[str, float]]] = {}
    for name, (solver, sampler, steps_of) in SOLVERS.items():
        rows = []
        for budget in nfe_budgets:
            steps = steps_of(int(budget))
            sigmas = get_sigmas_shifted(steps, shift=shift)
            started, nfe, recs = time.perf_counter(), 0, []
            for sl in _batches(len(x0), batch_size):
                fn, calls = _counting(flow_model_wrapper(transformer, *(v[sl] for v in labels)))
                noise = rf_solver_invert(fn, x0[sl], sigmas, solver=solver, disable=True)
                inv_calls = calls["n"]
                recs.append(sampler(fn, noise, sigmas, disable=True))
                nfe = max(nfe, inv_calls, calls["n"] - inv_calls)
            rec = torch.cat(recs)
            l1 = (rec - x0).abs().flatten(1).mean(1)  # (N,) normalised-mel units
            scale = float(transformer.config.mel_std) * DB_PER_NEPER  # normalised unit -> dB
            rows.append({
                "nfe_budget": int(budget), "steps": steps, "nfe_per_direction": nfe,
                "mel_l1": l1.mean().item(), "mel_l1_db": (l1 * scale).mean().item(),
                "psnr_db": _psnr(rec, x0).mean().item(), "psnr_db_min": _psnr(rec, x0).min().item(),
                "seconds": time.perf_counter() - started,
            })  # fmt: skip
            print(name, rows[-1], flush=True)
        results[name] = rows
    return results


def _batches(n: int, size: int) -> list[slice]:
    return [slice(i, i + size) for i in range(0, n, size)]


def frame_energy_db(mels: torch.Tensor) -> torch.Tensor:
    """Frame energy ``(B, frames)`` in dB of natural-log magnitude mels ``(B, n_mels, frames)``."""
    return 10 * torch.log10(torch.exp(2 * mels.double()).sum(1))


def onset_frames(mels: torch.Tensor, within_db: float = ONSET_DB) -> torch.Tensor:
    """First frame ``(B,)`` whose energy is within ``within_db`` of the note's loudest frame."""
    energy = frame_energy_db(mels)
    above = energy >= energy.amax(1, keepdim=True) - within_db
    return above.float().argmax(1)


def median_f0(audio: torch.Tensor, sample_rate: int, hop_length: int, pitches: torch.Tensor) -> np.ndarray:
    """Median pYIN f0 in Hz of each waveform ``(B, samples)``, ``nan`` when unvoiced: ``accelerando edit``'s
    estimator searching 1.5 octaves either side of the MIDI ``pitches`` ``(B,)`` (octave errors stay visible; the
    full range costs about 5x more)."""
    nominal = 440.0 * 2.0 ** ((pitches.double().cpu().numpy() - 69) / 12)
    return np.asarray([
        estimate_f0_hz(wav, sample_rate, hop_length, fmin=max(f / F0_BAND, F0_MIN_HZ), fmax=f * F0_BAND)
        for wav, f in zip(audio.float().cpu(), nominal)
    ])  # fmt: skip


def _cents(f0: np.ndarray, ref_hz: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1200 * np.log2(f0 / ref_hz)


def _pitch_summary(cents: np.ndarray) -> dict[str, Any]:
    found = np.isfinite(cents)
    err = np.abs(cents[found])
    return {
        "mean_abs_cents": float(err.mean()) if err.size else math.nan,
        "median_abs_cents": float(np.median(err)) if err.size else math.nan,
        "within_50_cents": float((np.abs(np.nan_to_num(cents, nan=1e9)) <= 50).mean()),
        "notes_without_pitch": int((~found).sum()),
        "per_note_cents": cents.tolist(),
    }


def edit_metrics(
    mels: torch.Tensor,
    source: Mapping[str, Any],
    targets: torch.Tensor,
    classifier: NoteClassifier,
    vocode: Callable[[torch.Tensor], torch.Tensor],
    sample_rate: int,
    hop_length: int,
) -> dict[str, Any]:
    """Edits ``(N, n_mels, frames)`` against the sources (``source``: ``mel``, ``program``, ``pitch``, ``f0`` of
    the vocoded source, ``nominal_hz`` of the MIDI pitch)."""
    mels = mels.float().cpu()
    scores = note_metrics(classifier, mels, targets, source["pitch"])
    predicted = classifier.predict(mels)["program"].cpu()
    f0 = median_f0(vocode(mels), sample_rate, hop_length, source["pitch"])
    onset_ms = (onset_frames(mels) - onset_frames(source["mel"])).abs() * hop_length / sample_rate * 1000
    envelope = (frame_energy_db(mels) - frame_energy_db(source["mel"])).abs().mean(1)
    return {
        "target_instrument_recognised": scores["instrument_accuracy"],
        "target_family_recognised": scores["family_accuracy"],
        "source_instrument_recognised": (predicted == source["program"]).float().mean().item(),
        "source_pitch_recognised": scores["pitch_accuracy"],
        "source_pitch_recognised_within_1": scores["pitch_accuracy_within_1"],
        "pitch_error_vs_source": _pitch_summary(_cents(f0, source["f0"])),
        "pitch_error_vs_midi": _pitch_summary(_cents(f0, source["nominal_hz"])),
        "onset_difference_ms": summarize(onset_ms.tolist()),
        "envelope_l1_db": envelope.mean().item(),
        "mel_l1_db_vs_source": ((mels - source["mel"]).abs().mean() * DB_PER_NEPER).item(),
    }


@torch.no_grad()
def edits(
    pipe: MelDiTPipeline,
    mels: torch.Tensor,
    labels: Mapping[str, torch.Tensor],
    targets: torch.Tensor,
    config: RFEditConfig,
    batch_size: int = 12,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """The instrument change by each method of ``EDIT_METHODS``: ``{method: (N, n_mels, frames) log-mels}``."""
    transformer = pipe.transformer
    n = config.num_steps
    euler_sigmas = get_sigmas_shifted(2 * n, shift=config.shift)  # Euler at the NFE of n RF-Solver steps
    out: dict[str, list[torch.Tensor]] = {m: [] for m in EDIT_METHODS}
    for sl in _batches(len(mels), batch_size):
        program, pitch, velocity = (labels[k][sl] for k in ("program", "pitch", "velocity"))
        src = {"instrument": program.tolist(), "pitch": pitch.tolist(), "velocity": velocity.tolist()}
        tgt = {**src, "instrument": targets[sl].tolist()}
        out["rf_edit"].append(rf_edit(pipe, mels[sl], src, tgt, config=config).mels)
        out["rf_solver"].append(rf_edit(pipe, mels[sl], src, tgt, config=config, inject_steps=0).mels)
        x0 = transformer.normalize_mel(mels[sl].float())[:, None]
        noise = rf_solver_invert(
            flow_model_wrapper(transformer, program, pitch, velocity),
            x0,
            euler_sigmas,
            solver="euler",
            disable=True,
        )
        target_fn = flow_model_wrapper(
            transformer, targets[sl], pitch, velocity, guidance_scale=config.guidance_scale
        )
        out["euler"].append(
            transformer.denormalize_mel(sample_euler(target_fn, noise, euler_sigmas, disable=True))[:, 0]
        )
        fresh = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed + sl.start))
        out["generated"].append(
            transformer.denormalize_mel(sample_euler(target_fn, fresh, euler_sigmas, disable=True))[:, 0]
        )
    return {m: torch.cat(v).float() for m, v in out.items()}


def _vocoder(
    pipe: MelDiTPipeline, n_mels: int, n_iter: int
) -> tuple[Callable[[torch.Tensor], torch.Tensor], str]:
    """The pipeline's vocoder if it has one, else Griffin-Lim (as ``accelerando edit`` does)."""
    if getattr(pipe, "vocoder", None) is not None:
        return (lambda m: pipe.vocoder.synthesize(m)), type(pipe.vocoder).__name__
    from accelerando.audio import MelConfig
    from accelerando.vocoders.griffin_lim import GriffinLim

    gl = GriffinLim(MelConfig(n_mels=n_mels), n_iter=n_iter)
    return (lambda m: gl.synthesize(m)), f"GriffinLim(n_iter={n_iter})"


def run(
    pipe: MelDiTPipeline,
    classifier: NoteClassifier,
    notes: Mapping[str, Any],
    targets: torch.Tensor,
    nfe_budgets: Sequence[int] = (6, 12, 24),
    edit_config: RFEditConfig | None = None,
    batch_size: int = 12,
    griffin_lim_iters: int = 32,
    seed: int = 0,
    recon_notes: int | None = None,
) -> dict[str, Any]:
    """Both measurements on ``notes`` (``mel`` ``(N, n_mels, frames)``, ``program`` / ``pitch`` / ``velocity``
    ``(N,)``) edited to ``targets`` ``(N,)``; the reconstruction uses the first ``recon_notes`` (default: all).
    Returns the results part of the JSON (no hardware block)."""
    from accelerando.audio import MelConfig

    edit_config = edit_config or RFEditConfig(num_steps=8, inject_steps=1)
    mels = notes["mel"].float()
    num = mels.shape[0]
    if num < 2:
        raise ValueError(f"need at least 2 notes, got {num}")
    for key in ("program", "pitch", "velocity"):
        if notes[key].shape != (num,):
            raise ValueError(f"notes[{key!r}] must have shape ({num},), got {tuple(notes[key].shape)}")
    if targets.shape != (num,) or bool((targets == notes["program"]).any()):
        raise ValueError(
            f"targets must be ({num},) programs that differ from the sources, got {targets.tolist()}"
        )
    labels = (notes["program"], notes["pitch"], notes["velocity"])
    recon_notes = num if recon_notes is None else recon_notes
    if not 1 <= recon_notes <= num:
        raise ValueError(f"recon_notes must be in 1..{num} (the number of notes), got {recon_notes}")
    transformer = pipe.transformer.eval()
    classifier = classifier.eval()

    started = time.perf_counter()
    recon = reconstruction(
        transformer, mels[:recon_notes], tuple(v[:recon_notes] for v in labels), nfe_budgets,
        shift=edit_config.shift, batch_size=batch_size,
    )  # fmt: skip
    x0 = transformer.normalize_mel(mels[: max(recon_notes, 2)])
    unrelated = (x0 - x0.roll(1, 0)).abs().flatten(1).mean(1)  # each note against the next one
    recon_seconds = time.perf_counter() - started

    started = time.perf_counter()
    edited = edits(pipe, mels, dict(zip(("program", "pitch", "velocity"), labels)), targets, edit_config, batch_size,
                   seed)  # fmt: skip
    edit_seconds = time.perf_counter() - started

    cfg = MelConfig(n_mels=transformer.config.n_mels)
    vocode, vocoder_name = _vocoder(pipe, cfg.n_mels, griffin_lim_iters)
    source_f0 = median_f0(vocode(mels), cfg.sample_rate, cfg.hop_length, notes["pitch"])
    nominal = 440.0 * 2.0 ** ((notes["pitch"].double().numpy() - 69) / 12)
    source = {"mel": mels, "program": notes["program"], "pitch": notes["pitch"], "f0": source_f0,
              "nominal_hz": nominal}  # fmt: skip
    src_scores = note_metrics(classifier, mels, notes["program"], notes["pitch"])
    measured = {
        m: edit_metrics(edited[m], source, targets, classifier, vocode, cfg.sample_rate, cfg.hop_length)
        for m in EDIT_METHODS
    }
    for m, row in measured.items():
        print(m, {k: v for k, v in row.items() if k != "pitch_error_vs_source"}, flush=True)
    scale = float(transformer.config.mel_std) * DB_PER_NEPER
    return {
        "notes": [
            {"id": i, "program": int(p), "pitch": int(q), "velocity": int(v), "target_program": int(t)}
            for i, p, q, v, t in zip(notes.get("id", [None] * num), *labels, targets)
        ],
        "reconstruction": {
            "num_notes": recon_notes,
            "guidance_scale": 1.0,
            "shift": edit_config.shift,
            "solvers": recon,
            "unrelated_notes": {
                "mel_l1": unrelated.mean().item(),
                "mel_l1_db": (unrelated * scale).mean().item(),
            },
            "seconds": recon_seconds,
        },
        "edit": {
            "num_steps": edit_config.num_steps,
            "nfe_per_direction": 2 * edit_config.num_steps,
            "inject_steps": edit_config.inject_steps,
            "inject_blocks": edit_config.resolve_blocks(len(transformer.transformer_blocks)),
            "inject_until_sigma": get_sigmas_shifted(edit_config.num_steps, shift=edit_config.shift)[
                edit_config.inject_steps
            ].item(),
            "guidance_scale": edit_config.guidance_scale,
            "vocoder": vocoder_name,
            "pitch_method": "median pYIN f0 (accelerando.accelerate_dit.note_edit.estimate_f0_hz: extract_f0, "
            "frame 2048, 10-cent bins, searched 1.5 octaves either side of the MIDI pitch) of the vocoded edit vs "
            "of the vocoded source mel, in cents; the note classifier's pitch head for the MIDI pitch",
            "source": {
                "instrument_recognised": src_scores["instrument_accuracy"],
                "pitch_recognised": src_scores["pitch_accuracy"],
                "f0_vs_midi_pitch": _pitch_summary(_cents(source_f0, nominal)),
            },
            "methods": measured,
            "seconds": edit_seconds,
        },
    }


# --- script ------------------------------------------------------------------------------------------------------


def _shown(path: str | Path) -> str:
    """``path`` relative to the working directory when it lies inside it (for the settings block)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def main(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    args.model = _shown(args.model or pretrained_path("meldit-notes"))
    args.classifier = _shown(args.classifier or pretrained_path("note-classifier"))
    pipe = MelDiTPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    classifier = NoteClassifier.from_pretrained(args.classifier).eval()
    notes = load_test_notes(args.corpus, args.num_notes, args.seed, pipe.transformer.config.num_frames)
    targets = choose_targets(
        notes["program"], notes["pitch"], classifier.programs, train_pitch_ranges(args.corpus), args.seed
    )
    config = RFEditConfig(
        num_steps=args.edit_steps, inject_steps=args.inject_steps, inject_blocks=args.inject_blocks,
        shift=args.shift, guidance_scale=args.guidance_scale,
    )  # fmt: skip
    results = run(pipe, classifier, notes, targets, args.nfe, config, args.batch_size, args.griffin_lim_iters,
                  args.seed, min(args.recon_notes, args.num_notes))  # fmt: skip
    env = environment()
    payload = {
        "suite": "rf-solver-notes",
        "hardware": {k: v for k, v in env.items() if k not in ("versions", "pretrained")},
        "versions": env["versions"],
        "settings": {**vars(args), "num_notes": len(results["notes"])},
        **results,
        "seconds_total": time.perf_counter() - started,
        "note": "Reconstruction: inversion then regeneration with the same solver, guidance 1, NFE per direction "
        "(RF-Solver-3 gets floor(NFE/3) steps). Edit: the three methods and the fresh-noise generation use "
        "the same NFE per direction; pitch error is against the source note through the same vocoder. "
        "The classifier and pYIN judge the model's output, so a weakly trained MelDiT bounds every edit figure.",
    }
    out = Path(args.out)
    write_results(out, payload)
    plot(payload, out.with_suffix(".png"))
    print(f"wrote {out} in {payload['seconds_total']:.0f} s", flush=True)
    return payload


def plot(payload: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    recon = payload["reconstruction"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    budgets = sorted({r["nfe_per_direction"] for rows in recon["solvers"].values() for r in rows})
    if budgets:
        for name, rows in recon["solvers"].items():
            nfe = [r["nfe_per_direction"] for r in rows]
            axes[0].plot(nfe, [r["mel_l1_db"] for r in rows], marker="o", label=name)
            axes[1].plot(nfe, [r["psnr_db"] for r in rows], marker="o", label=name)
        axes[0].axhline(
            recon["unrelated_notes"]["mel_l1_db"], color="gray", ls="--", label="two unrelated notes"
        )
        axes[0].set(yscale="log")
        axes[0].yaxis.set_major_formatter(ScalarFormatter())
        axes[0].yaxis.set_minor_formatter(NullFormatter())
        for ax in axes[:2]:
            ax.set(xscale="log")
            ax.set_xticks(budgets, [str(b) for b in budgets])
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.legend(fontsize=8)
    else:
        for ax in axes[:2]:
            ax.text(
                0.5, 0.5, "reconstruction not run (--nfe)", ha="center", va="center", transform=ax.transAxes
            )
    title = f"inversion -> regeneration, {recon['num_notes']} notes"
    axes[0].set(xlabel="NFE per direction", ylabel="mel L1 (dB)", title=title)
    axes[1].set(xlabel="NFE per direction", ylabel="PSNR (dB)", title="reconstruction PSNR")
    edit = payload["edit"]
    bars = {
        "target\ninstrument": "target_instrument_recognised",
        "still source\ninstrument": "source_instrument_recognised",
        "source\npitch": "source_pitch_recognised",
        "within 50 cents\n(pYIN)": None,
    }
    width = 0.8 / len(edit["methods"])
    for k, (method, row) in enumerate(edit["methods"].items()):
        values = [
            row[key] if key else row["pitch_error_vs_source"]["within_50_cents"] for key in bars.values()
        ]
        axes[2].bar(np.arange(len(bars)) + k * width, values, width, label=method)
    axes[2].set_xticks(np.arange(len(bars)) + width * (len(edit["methods"]) - 1) / 2, list(bars), fontsize=8)
    axes[2].set(ylim=(0, 1.05), ylabel="fraction of notes (instrument, pitch: classifier)",
                title=f"instrument change, {edit['nfe_per_direction']} NFE, CFG {edit['guidance_scale']}")  # fmt: skip
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default=None, help="MelDiTPipeline folder (default: the bundled meldit-notes)"
    )
    parser.add_argument("--classifier", default=None, help="NoteClassifier folder (default: the bundled one)")
    parser.add_argument("--corpus", default="corpora/instruments", help="the instrument corpus folder")
    parser.add_argument("--num-notes", type=int, default=12, help="test notes, one instrument after another")
    parser.add_argument(
        "--recon-notes", type=int, default=8, help="the first notes that (a) reconstructs (the costly part)"
    )
    parser.add_argument(
        "--nfe", type=int, nargs="*", default=[6, 12, 24], help="NFE per direction of (a); none: skip (a)"
    )
    parser.add_argument("--edit-steps", type=int, default=8, help="RF-Solver steps of the edit (2 NFE each)")
    parser.add_argument("--inject-steps", type=int, default=1, help="first steps that share the source's V")
    parser.add_argument("--inject-blocks", type=int, nargs="*", default=None, help="default: the second half")
    parser.add_argument(
        "--guidance-scale",
        type=float,
        default=3.0,
        help="classifier-free guidance of the edit's regeneration",
    )
    parser.add_argument("--shift", type=float, default=3.0, help="schedule shift (the pipeline's is 3)")
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--griffin-lim-iters", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/rf_solver_notes.json")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
