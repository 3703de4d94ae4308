"""``accelerando bench <suite>``: quality and speed benchmarks that write JSON + PNG.

Suites are registered in :data:`SUITES`. Each writes one JSON file (hardware, versions, settings,
per-metric summary, per-item figures, speed) and a PNG next to it. Comparisons of two methods
always run both in the same process, interleaved (:func:`accelerando.metrics.compare_speed`).

Example::

    accelerando bench griffin-lim --corpus corpora/speech --max-items 20 \\
        --out benchmarks/results/griffin_lim_speech.json
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Suite:
    """A benchmark: a one-line description and ``run(args) -> results payload``."""

    help: str
    run: Callable[[argparse.Namespace], dict[str, Any]]
    default_out: str


def iter_corpus(root: str | Path, split: str = "test", cfg=None) -> Iterator[dict[str, Any]]:
    """Items (dicts with ``audio`` (T,) and ``id``) of one split of a corpus folder.

    An LJSpeech-style folder (``wavs/``, ``metadata.csv``, ``split.json``) is read with
    :class:`accelerando.data.datasets.LJSpeechDataset`; an instrument corpus (``manifest.csv``, in
    the folder or its ``notes/``) with :class:`accelerando.data.instrument_datasets.NoteDataset`.
    """
    from accelerando.audio import MelConfig

    cfg = cfg or MelConfig()
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"corpus folder {root} does not exist; build one with `accelerando corpus ...`"
        )
    if (root / "metadata.csv").is_file():
        from accelerando.data.datasets import LJSpeechDataset

        dataset = LJSpeechDataset(root, split=split, cfg=cfg, with_mel=False)
    elif (root / "manifest.csv").is_file() or (root / "notes" / "manifest.csv").is_file():
        from accelerando.data.instrument_datasets import NoteDataset

        dataset = NoteDataset(root, split=split, cfg=cfg)
    else:
        raise FileNotFoundError(
            f"{root} is neither an LJSpeech-style folder (metadata.csv) nor an instrument corpus (manifest.csv)"
        )
    for index in range(len(dataset)):
        yield dataset[index]


def load_vocoder_folder(path: str | Path) -> Any:
    """A mel vocoder saved with ``save_pretrained`` (FreGrad, PeriodWave, PeriodWave-Turbo), by its config's class."""
    from accelerando.pretrained.loading import MEL_VOCODERS, load

    if not Path(path).exists():
        raise FileNotFoundError(f"{path} does not exist")
    return load(path, expect=MEL_VOCODERS)


def run_vocoder(
    vocoder: Any,
    corpus: str | Path,
    split: str = "test",
    max_items: int | None = None,
    num_steps: int | None = None,
    seed: int = 0,
    verbose: bool = False,
) -> list[dict[str, Any]]:
    """Scores ``vocoder.synthesize`` on a corpus split; returns one row of figures per item.

    Each reference is trimmed to ``frames * hop`` samples, its mel computed with the shared front
    end, synthesised (seeded per item) and scored with :func:`accelerando.metrics.evaluate_vocoder`.
    Each synthesis is timed, after one warm-up call, for the real-time factor.
    """
    import torch

    from accelerando.audio import MelConfig, mel_spectrogram
    from accelerando.metrics import evaluate_vocoder

    if max_items is not None and max_items < 1:
        raise ValueError(f"max_items must be >= 1; got {max_items}")
    cfg = MelConfig()
    items: list[dict[str, Any]] = []
    warmed = False
    with torch.inference_mode():
        for item in iter_corpus(corpus, split, cfg):
            if max_items is not None and len(items) >= max_items:
                break
            audio = torch.as_tensor(item["audio"]).float().reshape(-1)
            frames = audio.shape[-1] // cfg.hop_length
            if frames < 2:
                continue
            ref = audio[: frames * cfg.hop_length]
            mel = mel_spectrogram(ref, cfg)  # (1, n_mels, frames)
            if not warmed:  # first-call costs (librosa / numba, allocator) stay out of the timing
                vocoder.synthesize(mel[..., : min(frames, 16)], num_steps=num_steps)
                warmed = True
            generator = torch.Generator().manual_seed(seed + len(items))
            started = time.perf_counter()
            pred = vocoder.synthesize(mel, num_steps=num_steps, generator=generator)[0]  # (frames * hop,)
            compute_s = time.perf_counter() - started
            seconds = ref.shape[-1] / cfg.sample_rate
            label = item.get("speaker", item.get("instrument", ""))
            row: dict[str, Any] = {"id": str(item.get("id", len(items))), "speaker": label}
            row.update(seconds=seconds, compute_s=compute_s, rtf=compute_s / seconds)
            row.update(evaluate_vocoder(pred, ref, cfg.sample_rate, strict=False))
            items.append(row)
            if verbose:
                print(
                    f"[{len(items)}] {row['id']}  {seconds:.2f} s  mstft {row['mstft']:.3f}  pesq {row['pesq_wb']:.3f}",
                    flush=True,
                )
    if not items:
        raise ValueError(f"split {split!r} of {corpus} has no usable items")
    return items


def vocoder_payload(
    suite: str, description: str, items: list[dict[str, Any]], settings: dict[str, Any]
) -> dict[str, Any]:
    """The JSON payload of a vocoder suite: hardware, versions, settings, summary, speed, items."""
    from accelerando.audio import MelConfig
    from accelerando.metrics import VOCODER_METRICS
    from accelerando.metrics.report import environment, summarize

    total_audio = sum(r["seconds"] for r in items)
    total_compute = sum(r["compute_s"] for r in items)
    env = environment()
    return {
        "suite": suite,
        "description": description,
        "hardware": {k: v for k, v in env.items() if k not in ("versions", "pretrained")},
        "versions": env["versions"],
        "settings": {
            **settings,
            "n_items": len(items),
            "total_audio_s": total_audio,
            "mel_config": dataclasses.asdict(MelConfig()),
            "higher_is_better": VOCODER_METRICS,
            "pitch_metrics": "pYIN (librosa) instead of CREPE; periodicity = pYIN voiced probability",
        },
        "summary": {name: summarize([r[name] for r in items]) for name in VOCODER_METRICS},
        "speed": {
            "rtf": total_compute / total_audio,
            "xrt": total_audio / total_compute if total_compute > 0 else None,
            "definition": "RTF = compute seconds / audio seconds (summed over items); xRT = 1 / RTF",
        },
        "items": items,
    }


def run_griffin_lim(
    corpus: str | Path,
    split: str = "test",
    max_items: int | None = None,
    n_iter: int = 32,
    seed: int = 0,
    verbose: bool = False,
) -> dict[str, Any]:
    """Evaluates :class:`GriffinLim` on a corpus split; returns the results payload (no files written)."""
    from accelerando.vocoders.griffin_lim import GriffinLim

    vocoder = GriffinLim(n_iter=n_iter, seed=seed)
    items = run_vocoder(vocoder, corpus, split, max_items, seed=seed, verbose=verbose)
    settings = {"corpus": str(corpus), "split": split, "max_items": max_items, "n_iter": n_iter}
    settings.update(momentum=vocoder.momentum, seed=seed)
    return vocoder_payload(
        "griffin-lim",
        "Griffin-Lim reference vocoder (librosa NNLS mel inversion + fast Griffin-Lim): "
        "the quality floor every neural vocoder must beat on the held-out split.",
        items,
        settings,
    )


def _vocoder_suite(args: argparse.Namespace) -> dict[str, Any]:
    if args.corpus is None or args.model is None:
        raise ValueError(
            "the vocoder suite needs --corpus PATH and --model PATH (a saved FreGrad / PeriodWave folder)"
        )
    vocoder = load_vocoder_folder(args.model)
    items = run_vocoder(
        vocoder, args.corpus, args.split, args.max_items, args.num_steps, args.seed, verbose=True
    )
    settings = {"corpus": str(args.corpus), "split": args.split, "max_items": args.max_items}
    settings.update(model=str(args.model), model_class=type(vocoder).__name__, num_steps=args.num_steps)
    settings.update(seed=args.seed, parameters=vocoder.num_parameters())
    return vocoder_payload(
        "vocoder", f"{type(vocoder).__name__} from {args.model} on a corpus split", items, settings
    )


def _griffin_lim_suite(args: argparse.Namespace) -> dict[str, Any]:
    if args.corpus is None:
        raise ValueError(
            "the griffin-lim suite needs --corpus PATH (a speech or instrument-note corpus folder)"
        )
    return run_griffin_lim(args.corpus, args.split, args.max_items, args.n_iter, args.seed, verbose=True)


SUITES: dict[str, Suite] = {
    "griffin-lim": Suite(
        help="Griffin-Lim mel inversion on a corpus' held-out split (the vocoder quality floor)",
        run=_griffin_lim_suite,
        default_out="benchmarks/results/griffin_lim.json",
    ),
    "vocoder": Suite(
        help="a saved mel vocoder (--model: FreGrad / PeriodWave / Turbo folder) on a corpus' held-out split",
        run=_vocoder_suite,
        default_out="benchmarks/results/vocoder.json",
    ),
}


def save_report(
    payload: dict[str, Any], out: str | Path, metrics: list[str] | None = None
) -> tuple[Path, Path]:
    """Writes ``payload`` to ``out`` (JSON) and a metric-distribution PNG beside it; returns both paths."""
    from accelerando.metrics import VOCODER_METRICS
    from accelerando.metrics.report import plot_metric_distributions, write_results

    out = Path(out)
    png = out.with_suffix(".png")
    payload = dict(payload, figures={"metric_distributions": png.name})
    names = metrics or [m for m in VOCODER_METRICS if any(m in row for row in payload.get("items", []))]
    title = f"{payload.get('suite', '')}: {payload.get('settings', {}).get('corpus', '')}"
    plot_metric_distributions(payload.get("items", []), names, png, title=title)
    write_results(out, payload)
    return out, png


def run(args: argparse.Namespace) -> int:
    suite = SUITES[args.suite]
    started = time.perf_counter()
    payload = suite.run(args)
    payload.setdefault("settings", {})["wall_s"] = time.perf_counter() - started
    json_path, png_path = save_report(payload, args.out or suite.default_out)
    for name, stats in payload.get("summary", {}).items():
        mean, std = stats["mean"], stats["std"]
        text = "n/a" if mean is None else f"{mean:.4f} ± {std:.4f}"
        print(f"{name:<18} {text}  (n={stats['n']})")
    if "speed" in payload:
        print(f"{'rtf':<18} {payload['speed']['rtf']:.4f}  (xRT {payload['speed']['xrt']:.2f})")
    print(f"wrote {json_path} and {png_path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from accelerando.cli import add_command

    parser = add_command(
        subparsers,
        "bench",
        help="run a benchmark suite and write JSON + PNG results",
        description="Runs a benchmark suite and writes JSON (hardware, versions, settings, figures) and a PNG.\n"
        + "\n".join(f"  {name}: {suite.help}" for name, suite in SUITES.items()),
    )
    parser.add_argument("suite", choices=sorted(SUITES), help="benchmark suite to run")
    parser.add_argument(
        "--corpus",
        default=None,
        help="corpus folder: LJSpeech-style (metadata.csv) or instrument notes (manifest.csv)",
    )
    parser.add_argument(
        "--split", default="test", help="corpus split to evaluate (the held-out split is 'test')"
    )
    parser.add_argument("--max-items", type=int, default=None, help="evaluate at most this many items")
    parser.add_argument("--n-iter", type=int, default=32, help="Griffin-Lim iterations")
    parser.add_argument("--model", default=None, help="vocoder suite: a saved vocoder folder")
    parser.add_argument(
        "--num-steps",
        type=int,
        default=None,
        help="vocoder suite: sampling steps (None: the model's default)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the initial phase / noise (per item: seed + index)"
    )
    parser.add_argument(
        "--out",
        default=None,
        help="output JSON path (the PNG goes beside it); None means benchmarks/results/<suite>.json",
    )
    parser.set_defaults(func=run)
