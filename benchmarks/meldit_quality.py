"""MelDiT quality at several step counts, judged by the bundled note classifier.

For the labels of the corpus's test notes (program, pitch, velocity), the pipeline generates one note each at
every step count; the classifier reports instrument accuracy (recognised == asked), pitch accuracy (exact and
within a semitone) and our Fréchet distance to the test notes' embeddings, read against the real-vs-real floor
(test vs validation notes). Also the time per note. Writes JSON + PNG. ``--split validation`` uses the
validation notes' labels instead (and the test notes as the floor's other side): choose checkpoints there.

With ``--independent`` the same notes (and the real ones, at their own velocity) are also judged without the
classifier (``accelerando.generation.note_check``): instrument by the nearest fluidsynth render of the asked
pitch and velocity among the model's trained programs (``instrument_accuracy_render``), pitch by pYIN on the
Griffin-Lim-vocoded note (``pitch_accuracy_pyin`` and ``_within_1``, ``pitch_octave_error_pyin``; over the
``pyin_num_notes`` notes asked at MIDI 41 or above) and, below MIDI 41, by the nearest render of the asked
program among the pitches within six semitones (``pitch_accuracy_render_low`` over ``render_low_num_notes``).
Needs fluidsynth and the GM soundfont.

    python benchmarks/meldit_quality.py --model accelerando/pretrained/meldit-notes \\
        --corpus corpora/instruments --steps 8 16 32 --max-notes 45 [--independent]
    python benchmarks/meldit_quality.py --model accelerando/pretrained/meldit-sim-notes --steps 1 --independent
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from accelerando.data.midi_render import DEFAULT_SOUNDFONT, check_render_dependencies
from accelerando.generation import MelDiTPipeline, NoteClassifier, note_metrics
from accelerando.generation.note_check import (
    PYIN_MIN_MIDI,
    NoteRenderer,
    candidate_programs,
    independent_note_metrics,
    mel_config_from,
)
from accelerando.generation.train_classifier import build_dataset, load_notes
from accelerando.metrics.report import environment, write_results
from accelerando.pretrained import pretrained_path
from accelerando.pretrained.loading import load


def load_pipeline(path: str | Path) -> MelDiTPipeline:
    """A ``MelDiTPipeline`` folder as is; a bare MelDiT (a training checkpoint's ``model/``, or a SIM one-step
    generator such as ``meldit-sim-notes``) with the flow-matching Euler scheduler at the shipped pipeline's shift
    (3; for one step from pure noise the shift makes no difference)."""
    if (Path(path) / "model_index.json").is_file():
        return MelDiTPipeline.from_pretrained(path)
    return MelDiTPipeline(load(path, expect=("MelDiT",)), FlowMatchEulerDiscreteScheduler(shift=3.0))


def main(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    if args.independent:
        check_render_dependencies(args.soundfont)  # fail before generating anything
    pipe = load_pipeline(args.model)
    clf = NoteClassifier.from_pretrained(args.classifier or pretrained_path("note-classifier")).eval()
    ns = argparse.Namespace(data_dir=args.corpus)
    other = "validation" if args.split == "test" else "test"
    test_set = build_dataset(ns, args.split)
    real = load_notes(test_set, clf.config.num_frames)
    reference = clf.embed(real["mel"])
    floor = clf.embed(load_notes(build_dataset(ns, other), clf.config.num_frames)["mel"])
    n = min(args.max_notes, len(real["program"]))
    programs, pitches = real["program"][:n], real["pitch"][:n]
    velocities = torch.full((n,), args.velocity, dtype=torch.long)
    judge = _independent_judge(args, pipe, programs, pitches) if args.independent else None
    rows = []
    for steps in args.steps:
        started = time.perf_counter()
        mels = []
        for start in range(0, n, args.batch_size):
            sl = slice(start, start + args.batch_size)
            out = pipe(
                instrument=programs[sl].tolist(), pitch=pitches[sl].tolist(), velocity=velocities[sl].tolist(),
                num_inference_steps=steps, guidance_scale=args.guidance_scale,
                generator=torch.Generator().manual_seed(args.seed + start), output_type="pt",
            )  # fmt: skip
            mels.append(out.mels.float())
        seconds = time.perf_counter() - started
        scores = note_metrics(clf, torch.cat(mels), programs, pitches, reference_embeddings=reference)
        rows.append(
            {
                "steps": steps,
                "seconds_per_note": seconds / n,
                **scores,
                **_pitch_by_range(clf, torch.cat(mels), programs, pitches),
            }
        )
        if judge is not None:
            rows[-1].update(judge(torch.cat(mels), velocities))
        print(rows[-1], flush=True)
    real_scores = note_metrics(clf, real["mel"][:n], programs, pitches, reference_embeddings=floor)
    real_scores.update(_pitch_by_range(clf, real["mel"][:n], programs, pitches))
    if judge is not None:
        real_scores.update(judge(real["mel"][:n], _velocities(test_set, n)))
        print({"real_notes": real_scores}, flush=True)
    env = environment()
    payload = {
        "suite": "meldit-quality",
        "hardware": {k: v for k, v in env.items() if k not in ("versions", "pretrained")},
        "versions": env["versions"],
        "settings": {**vars(args), "num_notes": n},
        "real_notes": real_scores,
        "generated": rows,
        "note": "Fréchet distance in the note classifier's embedding (our own metric, not FAD); compare with "
        "real_notes.frechet_distance (test vs validation notes), sets of similar size.",
    }
    if args.independent:
        payload["independent_note"] = (
            "Classifier-free check (accelerando.generation.note_check): instrument_accuracy_render is the share "
            "of notes whose nearest fluidsynth render (the corpus's own rendering, at the asked pitch and "
            "velocity, one per trained program) is the asked program; *_pyin figures are pYIN on the "
            f"Griffin-Lim-vocoded note, over the pyin_num_notes notes asked at MIDI >= {PYIN_MIN_MIDI} (lower "
            "ones are below the 80-bin mel's harmonic resolution; pitch_accuracy_render_low judges those by the "
            "nearest render of the asked program within six semitones). real_notes: the test notes themselves at their "
            "own velocity; their instrument_accuracy_render is ~1 by construction (their own render is a "
            "candidate), their *_pyin figures are the pYIN floor (a few soundfont samples, e.g. some church "
            "organ notes, sound an octave off to pYIN)."
        )
    out = Path(args.out)
    write_results(out, payload)
    _plot(rows, real_scores, out.with_suffix(".png"))
    return payload


def _pitch_by_range(
    clf: NoteClassifier, mels: torch.Tensor, programs: torch.Tensor, pitches: torch.Tensor
) -> dict[str, float]:
    """The classifier's exact pitch accuracy below MIDI ``PYIN_MIN_MIDI`` and from it up, with the note counts:
    the low notes' harmonics are about one 80-bin mel band apart, where the pitch is hardest to render."""
    low = pitches < PYIN_MIN_MIDI
    out: dict[str, float] = {}
    for name, mask in ((f"below_midi_{PYIN_MIN_MIDI}", low), (f"from_midi_{PYIN_MIN_MIDI}", ~low)):
        out[f"num_notes_{name}"] = float(mask.sum())
        if mask.any():
            sub = note_metrics(clf, mels[mask], programs[mask], pitches[mask])
            out[f"pitch_accuracy_{name}"] = sub["pitch_accuracy"]
    return out


def _independent_judge(
    args: argparse.Namespace, pipe: MelDiTPipeline, programs: torch.Tensor, pitches: torch.Tensor
):
    """``judge(mels, velocities) -> figures``: the classifier-free check of notes asked as ``programs`` /
    ``pitches``, one render cache shared by every step count and the real notes."""
    config = pipe.transformer.config
    renderer = NoteRenderer(mel_config_from(config), soundfont=args.soundfont)
    candidates = candidate_programs(config)

    def judge(mels: torch.Tensor, velocities: torch.Tensor) -> dict:
        scores = independent_note_metrics(
            mels, programs, pitches, velocities, candidates=candidates, renderer=renderer
        )
        return {k: v for k, v in scores.items() if k != "num_notes"}  # note_metrics' num_notes stays

    return judge


def _velocities(dataset, n: int) -> torch.Tensor:
    """The first ``n`` notes' velocities (from the manifest rows when the dataset has them)."""
    rows = getattr(dataset, "rows", None)
    values = (
        [int(r["velocity"]) for r in rows[:n]]
        if rows is not None
        else [int(dataset[i]["velocity"]) for i in range(n)]
    )
    return torch.tensor(values, dtype=torch.long)


def _plot(rows: list[dict], real: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["steps"] for r in rows]
    independent = "instrument_accuracy_render" in real
    fig, axes = plt.subplots(1, 3 if independent else 2, figsize=(15 if independent else 10, 3.8))
    for key, label in (("instrument_accuracy", "instrument"), ("pitch_accuracy", "pitch (exact)")):
        axes[0].plot(steps, [r[key] for r in rows], marker="o", label=label)
    axes[0].set(xlabel="sampling steps", ylabel="accuracy", ylim=(0, 1.05), title="asked vs recognised")
    axes[0].legend()
    axes[1].plot(steps, [r["frechet_distance"] for r in rows], marker="o", label="generated vs test")
    axes[1].axhline(real["frechet_distance"], color="gray", ls="--", label="real floor (validation vs test)")
    axes[1].set(xlabel="sampling steps", ylabel="Fréchet distance", title="classifier embedding")
    axes[1].legend()
    if independent:
        keys = (
            ("instrument_accuracy_render", "instrument (nearest render)"),
            ("pitch_accuracy_pyin", f"pitch exact (pYIN, MIDI >= {PYIN_MIN_MIDI})"),
            ("pitch_accuracy_pyin_within_1", "pitch within 1 (pYIN)"),
        )
        for k, (key, label) in enumerate(keys):
            color = f"C{k + 2}"
            axes[2].plot(steps, [r[key] for r in rows], marker="o", color=color, label=label)
            if math.isfinite(real[key]):
                axes[2].axhline(real[key], color=color, ls=":", lw=1)
        axes[2].set(xlabel="sampling steps", ylabel="accuracy", ylim=(0, 1.05),
                    title="classifier-free (dotted: real notes)")  # fmt: skip
        axes[2].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        required=True,
        help="a MelDiTPipeline folder, or a MelDiT one (e.g. a SIM generator, --steps 1)",
    )
    parser.add_argument("--classifier", default=None, help="NoteClassifier folder (default: the bundled one)")
    parser.add_argument("--corpus", default="corpora/instruments")
    parser.add_argument("--steps", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument(
        "--split",
        choices=("test", "validation"),
        default="test",
        help="whose labels to generate: the held-out test notes (to report), or the validation notes (to choose "
        "a checkpoint on, leaving the test labels unseen)",
    )
    parser.add_argument("--max-notes", type=int, default=45)
    parser.add_argument("--batch-size", type=int, default=15)
    parser.add_argument("--velocity", type=int, default=80)
    parser.add_argument("--guidance-scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/meldit_quality.json")
    parser.add_argument(
        "--independent",
        action="store_true",
        help="also judge the notes without the classifier: nearest fluidsynth render and pYIN (needs fluidsynth)",
    )
    parser.add_argument(
        "--soundfont", default=DEFAULT_SOUNDFONT, help="GM soundfont of the corpus (--independent)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
