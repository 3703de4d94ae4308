"""Every vocoder plugin on its teacher, in one run: speed side by side and quality against the recordings.

Teachers: the bundled ``periodwave-turbo-s-speech`` (PeriodWave-Turbo-S; its own default is 4 Euler steps) and
``fregrad-speech`` (FreGrad; 6 DDPM steps). Both are weak early checkpoints: each plugin is read against its own
teacher, not against the Griffin-Lim floor.

- **solvers** (PeriodWave-Turbo through ``PeriodWave.synthesize(method=...)``, temperature 1 as the Turbo's config):
  Euler, midpoint, RF-Solver-2 (algebraically the midpoint method), RF-Solver-3 and FireFlow at equal network
  evaluations (NFE 4 and 6);
- **cache** (:mod:`accelerando.accelerate_dit.vocoder_cache`): refresh every N = 2, 3 evaluations on midpoint 8
  (16 NFE, read against plain midpoint 8) and on the Turbo's 4 Euler steps;
- **SIM** (:mod:`accelerando.accelerate_dit.sim.vocoders`): a short data-free distillation of each teacher with
  ``accelerando train sim-vocoder`` (``--sim-steps``; mels of the training split), then its one-step student,
  beside the student as SIM starts it (step 0: the teacher's own one-step denoiser at the student's noise level).

Speed: ``compare_speed`` (interleaved, one torch thread) on the mel of the first test utterance, as a ratio to the
teacher's default (Turbo 4 Euler steps; FreGrad 6 steps). Quality: the first ``--num-utterances`` held-out test
utterances of at most ``--max-seconds``, M-STFT, PESQ-wb and V/UV F1 (pYIN) against the recording, seeded per item,
and the word error rate of PocketSphinx (:func:`accelerando.metrics.transcribe`) against the utterance's text (the
mean over utterances; ``reference_wer`` is the recordings' own, the recognizer's floor on these voices).
Writes ``benchmarks/results/vocoder_plugins.{json,png}``::

    OMP_NUM_THREADS=1 python benchmarks/vocoder_plugins.py                     # ~15 min on a shared 2-core CPU
    OMP_NUM_THREADS=1 python benchmarks/vocoder_plugins.py --quick --out /tmp/vp  # smoke run, random tiny models
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from accelerando.accelerate_dit.sim import train_vocoder
from accelerando.accelerate_dit.sim.vocoders import SIMVocoder
from accelerando.accelerate_dit.vocoder_cache import PeriodWaveCacheConfig, apply_periodwave_cache
from accelerando.audio import mel_spectrogram
from accelerando.metrics import transcribe, word_error_rate
from accelerando.metrics.perceptual import pesq_wb
from accelerando.metrics.pitch import pitch_track, vuv_f1
from accelerando.metrics.report import environment, save_figure, summarize, write_results
from accelerando.metrics.spectral import mstft_distance
from accelerando.metrics.timing import compare_speed, cpu_model
from accelerando.metrics.vocoder_bench import iter_corpus
from accelerando.pretrained.loading import load
from accelerando.vocoders import FreGrad, PeriodWave, PeriodWaveTurbo

SAMPLE_RATE, HOP = 22050, 256
METRICS = {"mstft": False, "pesq_wb": True, "vuv_f1": True, "wer": False}  # name -> higher is better


@dataclass
class System:
    """One way to vocode: ``synthesize(mel, generator)``, its network evaluations, family and plugin."""

    synthesize: Callable[[torch.Tensor, torch.Generator], torch.Tensor]
    nfe: int
    family: str
    plugin: str
    baseline: str  # the system this one's speed is read against


def _solver(model: PeriodWave, method: str, steps: int) -> Callable:
    def run(mel: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return PeriodWave.synthesize(model, mel, steps, generator, method=method, temperature=1.0)

    return run


def _cached(model: PeriodWave, method: str, steps: int, config: PeriodWaveCacheConfig) -> Callable:
    plain = _solver(model, method, steps)

    def run(mel: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        cache = apply_periodwave_cache(model, config)
        try:
            return plain(mel, generator)
        finally:
            cache.remove()

    return run


def _student(model: SIMVocoder) -> Callable:
    return lambda mel, g: model.synthesize(mel, generator=g)


def periodwave_systems(turbo: PeriodWave, student: SIMVocoder, initial: SIMVocoder) -> dict[str, System]:
    base = "Turbo Euler 4 (teacher default)"
    pw = functools.partial(System, family="PeriodWave-Turbo", baseline=base)
    systems = {
        base: pw(lambda mel, g: turbo.synthesize(mel, generator=g), 4, plugin="teacher"),
        "Euler 2": pw(_solver(turbo, "euler", 2), 2, plugin="teacher"),
        "midpoint 2": pw(_solver(turbo, "midpoint", 2), 4, plugin="solver"),
        "RF-Solver-2 2": pw(_solver(turbo, "rf_solver", 2), 4, plugin="solver"),
        "FireFlow 3": pw(_solver(turbo, "fireflow", 3), 4, plugin="solver"),
        "Euler 6": pw(_solver(turbo, "euler", 6), 6, plugin="teacher"),
        "midpoint 3": pw(_solver(turbo, "midpoint", 3), 6, plugin="solver"),
        "RF-Solver-3 2": pw(_solver(turbo, "rf_solver3", 2), 6, plugin="solver"),
        "FireFlow 5": pw(_solver(turbo, "fireflow", 5), 6, plugin="solver"),
    }
    for n in (2, 3):
        cfg = PeriodWaveCacheConfig(interval=n)
        systems[f"Euler 4 + cache N={n}"] = pw(_cached(turbo, "euler", 4, cfg), 4, plugin="cache")
    systems["midpoint 8"] = pw(_solver(turbo, "midpoint", 8), 16, plugin="teacher")
    for n in (2, 3):
        cfg = PeriodWaveCacheConfig(interval=n)
        systems[f"midpoint 8 + cache N={n}"] = System(
            _cached(turbo, "midpoint", 8, cfg), 16, "PeriodWave-Turbo", "cache", "midpoint 8"
        )
    systems["SIM student at step 0 (1 step)"] = pw(_student(initial), 1, plugin="sim")
    systems["SIM 1 step"] = pw(_student(student), 1, plugin="sim")
    return systems


def fregrad_systems(fregrad: FreGrad, student: SIMVocoder, initial: SIMVocoder) -> dict[str, System]:
    base = "FreGrad 6 (teacher default)"
    fg = functools.partial(System, family="FreGrad", baseline=base)
    systems = {
        base: fg(lambda mel, g: fregrad.synthesize(mel, generator=g), 6, plugin="teacher"),
        "FreGrad 2": fg(lambda mel, g: fregrad.synthesize(mel, 2, generator=g), 2, plugin="teacher"),
    }
    systems["FreGrad SIM student at step 0 (1 step)"] = fg(_student(initial), 1, plugin="sim")
    systems["FreGrad SIM 1 step"] = fg(_student(student), 1, plugin="sim")
    return systems


def distill(teacher: str, out: Path, args: argparse.Namespace, extra: list[str]) -> tuple[SIMVocoder, float]:
    """Run ``accelerando train sim-vocoder`` (the real script); returns the student and the seconds it took."""
    argv = [
        "--teacher", teacher, "--data_dir", args.corpus, "--output_dir", str(out),
        "--max_train_steps", str(args.sim_steps), "--train_batch_size", str(args.sim_batch),
        "--segment_frames", str(args.sim_frames), "--learning_rate", str(args.sim_lr),
        "--fake_learning_rate", str(2 * args.sim_lr), "--checkpointing_steps", str(max(args.sim_steps, 1)),
        "--checkpoints_total_limit", "1", *extra,
    ]  # fmt: skip
    started = time.perf_counter()
    student = train_vocoder.main(train_vocoder.parse_args(argv))
    return student.eval(), time.perf_counter() - started


def corpus_texts(corpus: str) -> dict[str, str]:
    """Utterance id -> text, from an LJSpeech-style ``metadata.csv`` (id|text|normalised text|...); {} without one."""
    path = Path(corpus) / "metadata.csv"
    if not path.is_file():
        return {}
    rows = (line.split("|") for line in path.read_text(encoding="utf-8").splitlines() if "|" in line)
    return {row[0]: (row[2] if len(row) > 2 and row[2] else row[1]) for row in rows}


def _wer(wav: np.ndarray, text: str) -> float:
    return word_error_rate([text], [transcribe(wav, SAMPLE_RATE)]) if text else float("nan")


def test_items(corpus: str, count: int, max_seconds: float) -> list[dict[str, Any]]:
    """The first ``count`` test utterances of at most ``max_seconds``: audio trimmed to whole frames, mel, voicing."""
    items = []
    texts = corpus_texts(corpus)
    for item in iter_corpus(corpus, "test"):
        audio = torch.as_tensor(item["audio"]).float().reshape(-1)
        frames = audio.shape[-1] // HOP
        if frames * HOP > max_seconds * SAMPLE_RATE or frames < 32:
            continue
        ref = audio[: frames * HOP]
        items.append(
            {
                "id": str(item["id"]),
                "ref": ref,
                "mel": mel_spectrogram(ref),
                "seconds": len(ref) / SAMPLE_RATE,
                "text": texts.get(str(item["id"]), ""),
            }
        )
        items[-1]["ref_voiced"] = pitch_track(ref.numpy(), SAMPLE_RATE)[1]
        if len(items) == count:
            break
    return items


def score(systems: dict[str, System], items: list[dict[str, Any]]) -> dict[str, Any]:
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in systems}
    with torch.inference_mode():
        for i, item in enumerate(items):
            for name, system in systems.items():
                wav = system.synthesize(item["mel"], torch.Generator().manual_seed(i))[0].numpy()
                ref = item["ref"].numpy()
                rows[name].append(
                    {
                        "id": item["id"],
                        "mstft": mstft_distance(wav, ref),
                        "pesq_wb": pesq_wb(wav, ref, SAMPLE_RATE),
                        "vuv_f1": vuv_f1(pitch_track(wav, SAMPLE_RATE)[1], item["ref_voiced"]),
                        "wer": _wer(wav, item["text"]),
                    }
                )
            print(f"quality: item {i + 1}/{len(items)} done", flush=True)
    summary = {name: {m: summarize([r[m] for r in rs]) for m in METRICS} for name, rs in rows.items()}
    reference = [_wer(item["ref"].numpy(), item["text"]) for item in items]
    return {"summary": summary, "items": rows, "reference_wer": summarize(reference)}


def speed(systems: dict[str, System], mel: torch.Tensor, repeats: int) -> dict[str, Any]:
    fns = {
        name: functools.partial(s.synthesize, mel, torch.Generator().manual_seed(0))
        for name, s in systems.items()
    }
    with torch.inference_mode():
        timing = compare_speed(
            fns, repeats=repeats, warmup=1, audio_seconds=mel.shape[-1] * HOP / SAMPLE_RATE
        )
    median = {name: r["median_s"] for name, r in timing["results"].items()}
    return {
        "median_s": median,
        "xrt": {name: r["xrt"] for name, r in timing["results"].items()},
        "speedup_vs_baseline": {name: median[s.baseline] / median[name] for name, s in systems.items()},
        "speedup_vs_teacher_default": timing["speedup_over_baseline"],
        "timing": timing,
    }


def plot(payload: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"teacher": "tab:gray", "solver": "tab:blue", "cache": "tab:orange", "sim": "tab:green"}
    families = list(payload["families"])
    fig, axes = plt.subplots(
        len(families), 1 + len(METRICS), figsize=(18, 3 + 0.36 * len(payload["systems"])),
        gridspec_kw={"height_ratios": [len(payload["families"][f]["systems"]) for f in families]}, squeeze=False,
    )  # fmt: skip
    for row, family in zip(axes, families):
        block = payload["families"][family]
        names = list(block["systems"])
        y = np.arange(len(names))
        c = [colors[payload["systems"][n]["plugin"]] for n in names]
        speedups = [block["speed"]["speedup_vs_baseline"][n] for n in names]
        row[0].barh(y, speedups, color=c)
        for i, (n, s) in enumerate(zip(names, speedups)):
            info = payload["systems"][n]
            versus = "" if info["baseline"] == names[0] else f" vs {info['baseline']}"
            row[0].annotate(f" {s:.2f}x{versus}  ({info['nfe']} NFE)", (s, i), va="center", fontsize=8)
        row[0].axvline(1.0, color="k", lw=0.8)
        row[0].set_yticks(y, names, fontsize=8)
        row[0].invert_yaxis()
        row[0].set_xlabel("speed-up vs its baseline (teacher default; cache: plain midpoint 8)", fontsize=8)
        row[0].set_title(f"{family}: 1 thread, {payload['hardware']}", fontsize=8)
        for ax, (metric, higher) in zip(row[1:], METRICS.items()):
            means = [block["quality"]["summary"][n][metric]["mean"] for n in names]
            stds = [block["quality"]["summary"][n][metric]["std"] or 0.0 for n in names]
            ax.barh(y, [m if m is not None else 0 for m in means], xerr=stds, color=c, alpha=0.9)
            ax.axvline(means[0] if means[0] is not None else 0, color="k", lw=0.8, ls="--")
            ax.set_yticks(y, [""] * len(names))
            ax.invert_yaxis()
            ax.set_xlabel(f"{metric} ({'higher' if higher else 'lower'} is better)", fontsize=8)
        row[2].set_title(
            f"held-out test split, {payload['quality_settings']['num_utterances']} utterances", fontsize=8
        )
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--periodwave", default="periodwave-turbo-s-speech", help="a PeriodWave(-Turbo) name/folder"
    )
    parser.add_argument("--fregrad", default="fregrad-speech", help="a FreGrad name/folder")
    parser.add_argument("--corpus", default="corpora/speech")
    parser.add_argument("--num-utterances", type=int, default=5)
    parser.add_argument("--max-seconds", type=float, default=3.0, help="longest test utterance scored")
    parser.add_argument("--sim-steps", type=int, default=200, help="SIM generator steps per teacher")
    parser.add_argument("--sim-batch", type=int, default=2)
    parser.add_argument("--sim-frames", type=int, default=16, help="mel frames per distillation crop")
    parser.add_argument("--sim-lr", type=float, default=1e-4, help="generator lr (fake score: twice)")
    parser.add_argument("--sim-dir", default="runs/vocoder_plugins", help="where the students are written")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--speed-seconds", type=float, default=1.5, help="mel length of the speed comparison")
    parser.add_argument("--quick", action="store_true", help="smoke run: random tiny teachers, few steps")
    parser.add_argument("--out", default="benchmarks/results/vocoder_plugins")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    started = time.perf_counter()
    sim_dir = Path(args.sim_dir)
    if args.quick:
        torch.manual_seed(0)
        PeriodWaveTurbo.from_preset("tiny").save_pretrained(sim_dir / "teacher-periodwave")
        FreGrad.from_preset("small", residual_layers=2).save_pretrained(sim_dir / "teacher-fregrad")
        args.periodwave, args.fregrad = str(sim_dir / "teacher-periodwave"), str(sim_dir / "teacher-fregrad")
        args.num_utterances, args.sim_steps, args.repeats = 1, 2, 1
    turbo = load(args.periodwave, expect=("PeriodWave", "PeriodWaveTurbo"))
    fregrad = load(args.fregrad, expect=("FreGrad",))
    pw_student, pw_sim_s = distill(args.periodwave, sim_dir / "sim-periodwave", args, [])
    fg_student, fg_sim_s = distill(args.fregrad, sim_dir / "sim-fregrad", args, [])
    print(
        f"SIM: PeriodWave {pw_sim_s:.0f} s, FreGrad {fg_sim_s:.0f} s for {args.sim_steps} steps", flush=True
    )
    families = {
        # "step 0": the student as SIM starts it (the teacher's one-step denoiser at init_t), to show what SIM adds
        "PeriodWave-Turbo": periodwave_systems(turbo, pw_student, SIMVocoder.from_teacher(turbo).eval()),
        "FreGrad": fregrad_systems(fregrad, fg_student, SIMVocoder.from_teacher(fregrad).eval()),
    }
    items = test_items(args.corpus, args.num_utterances, args.max_seconds)
    speed_mel = items[0]["mel"][..., : max(32, round(args.speed_seconds * SAMPLE_RATE / HOP))]
    hardware = f"{cpu_model()} ({os.cpu_count()} logical CPUs, shared with training runs)"
    payload: dict[str, Any] = {
        "benchmark": "vocoder_plugins",
        "what": "solvers at equal NFE, the PeriodWave cache and SIM one-step students vs their own teacher: speed "
        "as a ratio measured interleaved in this run, quality against the recordings",
        "hardware": hardware,
        "torch_threads": 1,
        "quick": args.quick,
        "teachers": {"periodwave": args.periodwave, "fregrad": args.fregrad},
        "sim": {
            "steps": args.sim_steps,
            "batch": args.sim_batch,
            "frames": args.sim_frames,
            "generator_lr": args.sim_lr,
            "fake_lr": 2 * args.sim_lr,
            "seconds": {"PeriodWave-Turbo": pw_sim_s, "FreGrad": fg_sim_s},
            "students": {
                "PeriodWave-Turbo": str(sim_dir / "sim-periodwave" / "model"),
                "FreGrad": str(sim_dir / "sim-fregrad" / "model"),
            },
        },  # fmt: skip
        "quality_settings": {
            "corpus": args.corpus,
            "split": "test",
            "num_utterances": len(items),
            "max_seconds": args.max_seconds,
            "ids": [it["id"] for it in items],
            "metrics": "M-STFT, PESQ-wb, V/UV F1 (pYIN) against the recording",
        },  # fmt: skip
        "speed_settings": {"audio_seconds": speed_mel.shape[-1] * HOP / SAMPLE_RATE, "repeats": args.repeats},
        "systems": {
            name: {"family": f, "nfe": s.nfe, "plugin": s.plugin, "baseline": s.baseline}
            for f, systems in families.items()
            for name, s in systems.items()
        },
        "families": {},
    }
    for family, systems in families.items():
        print(f"speed: {family}", flush=True)
        block = {"systems": list(systems), "speed": speed(systems, speed_mel, args.repeats)}
        print(f"quality: {family}", flush=True)
        block["quality"] = score(systems, items)
        payload["families"][family] = block
        for name in systems:
            q = block["quality"]["summary"][name]
            print(
                f"{name:<40} {block['speed']['speedup_vs_baseline'][name]:5.2f}x  "
                + "  ".join(
                    f"{m} {q[m]['mean'] if q[m]['mean'] is None else round(q[m]['mean'], 3)}" for m in METRICS
                ),
                flush=True,
            )
    payload["seconds_total"] = time.perf_counter() - started
    payload["load_average_at_end"] = os.getloadavg()
    payload["environment"] = environment()
    out = Path(args.out)
    write_results(out.with_suffix(".json"), payload)
    plot(payload, out.with_suffix(".png"))
    print(
        f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')} in {payload['seconds_total']:.0f} s"
    )
    return payload


if __name__ == "__main__":
    main()
