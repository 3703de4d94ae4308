"""``accelerando bench <suite>``: quality and speed benchmarks that write JSON + PNG.

Suites are registered in :data:`SUITES`. Each writes one JSON file (hardware, versions, settings,
per-metric summary, per-item figures, speed) and a PNG next to it. Comparisons of two methods
always run both in the same process, interleaved (:func:`accelerando.metrics.compare_speed`). The corpus
loop, scoring and report writing are :mod:`accelerando.metrics.vocoder_bench`, which the ``benchmarks/``
scripts share; this module holds the suites and the command.

Example::

    accelerando bench griffin-lim --corpus corpora/speech --max-items 20 \\
        --out benchmarks/results/griffin_lim_speech.json
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Suite:
    """A benchmark: a one-line description and ``run(args) -> results payload``."""

    help: str
    run: Callable[[argparse.Namespace], dict[str, Any]]
    default_out: str


def run_griffin_lim(
    corpus: str | Path,
    split: str = "test",
    max_items: int | None = None,
    n_iter: int = 32,
    seed: int = 0,
    verbose: bool = False,
) -> dict[str, Any]:
    """Evaluates :class:`GriffinLim` on a corpus split; returns the results payload (no files written)."""
    from accelerando.metrics.vocoder_bench import run_vocoder, vocoder_payload
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
    from accelerando.metrics.vocoder_bench import load_vocoder_folder, run_vocoder, vocoder_payload

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


def run(args: argparse.Namespace) -> int:
    from accelerando.metrics.vocoder_bench import save_report

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
