"""Griffin-Lim reference vocoder on the held-out split: the quality floor for every neural vocoder.

Same code as ``accelerando bench griffin-lim``; writes JSON + PNG under ``benchmarks/results/``.

    python benchmarks/griffin_lim.py --corpus corpora/speech --out benchmarks/results/griffin_lim_speech.json
"""

from __future__ import annotations

import argparse
import sys

from accelerando.cli import main


def parse_args(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", required=True, help="LJSpeech-style corpus folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--max_items", "--max-items", type=int, default=None)
    parser.add_argument("--n_iter", "--n-iter", type=int, default=32)
    parser.add_argument("--out", default="benchmarks/results/griffin_lim_speech.json")
    args = parser.parse_args(argv)
    cli = [
        "bench",
        "griffin-lim",
        "--corpus",
        args.corpus,
        "--split",
        args.split,
        "--n-iter",
        str(args.n_iter),
    ]
    if args.max_items is not None:
        cli += ["--max-items", str(args.max_items)]
    return cli + ["--out", args.out]


if __name__ == "__main__":
    sys.exit(main(parse_args()))
