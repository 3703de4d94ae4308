"""Speech API on loopback: time to first audio byte and end-to-end RTF for 1, 4 and 8 concurrent streams.

Each stream is an HTTP client on 127.0.0.1 posting ``/v1/audio/speech`` (pcm, streamed) to a live
uvicorn server. Two servers are measured side by side in one run: the incremental engine (chunked
Incremental FastPitch + chunked vocoding) and the whole-utterance baseline (full decode + one
vocoder pass, sent as one chunk). Writes JSON + PNG under ``benchmarks/results/``.

The models are random (untrained) — the ``small`` Incremental FastPitch with durations fixed to
``--frames-per-token`` and a random ``small`` FreGrad (or Griffin-Lim) — so the timings, not the
sound, are the result. Absolute times depend on the (shared) CPU named in the JSON.

    OMP_NUM_THREADS=1 python benchmarks/speech_server.py --out benchmarks/results/speech_server.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path
from typing import Any

TEXT = "The quick brown fox jumps over the lazy dog, and streaming speech should start quickly."


def build_engine(args: argparse.Namespace, incremental: bool):
    import numpy as np
    import torch

    from accelerando.tts import IncrementalFastPitch, StreamingSynthesizer
    from accelerando.vocoders import FreGrad, GriffinLim

    torch.manual_seed(0)
    acoustic = IncrementalFastPitch.from_preset("small").eval()
    with torch.no_grad():  # an untrained duration predictor says ~0 frames; fix a speech-like rate
        acoustic.duration_predictor.proj.weight.zero_()
        acoustic.duration_predictor.proj.bias.fill_(float(np.log1p(args.frames_per_token)))
    vocoder = GriffinLim(n_iter=16) if args.vocoder == "griffin-lim" else FreGrad.from_preset("small").eval()
    steps = None if args.vocoder == "griffin-lim" else args.vocoder_steps
    return StreamingSynthesizer(acoustic, vocoder, vocoder_steps=steps, incremental=incremental)


def one_stream(url: str, text: str, out: list, index: int, barrier: threading.Barrier) -> None:
    import httpx

    barrier.wait(60)
    with httpx.Client(timeout=600) as client:
        start = time.perf_counter()
        first, nbytes = None, 0
        with client.stream(
            "POST", f"{url}/v1/audio/speech", json={"input": text, "response_format": "pcm"}
        ) as r:
            r.raise_for_status()
            rate = int(r.headers["x-sample-rate"])
            for data in r.iter_bytes():
                if first is None and data:
                    first = time.perf_counter() - start
                nbytes += len(data)
        total = time.perf_counter() - start
    audio_s = nbytes / 2 / rate
    out[index] = {"ttfa_s": first, "total_s": total, "audio_s": audio_s, "rtf": total / audio_s}


def measure(url: str, concurrency: int, rounds: int) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for _ in range(rounds):
        out: list = [None] * concurrency
        barrier = threading.Barrier(concurrency)
        threads = [
            threading.Thread(target=one_stream, args=(url, TEXT, out, i, barrier)) for i in range(concurrency)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        runs += out
    ttfa = [r["ttfa_s"] for r in runs]
    rtf = [r["rtf"] for r in runs]
    return {
        "concurrency": concurrency,
        "streams": len(runs),
        "ttfa_median_s": statistics.median(ttfa),
        "ttfa_max_s": max(ttfa),
        "rtf_median": statistics.median(rtf),
        "rtf_max": max(rtf),
        "audio_s": runs[0]["audio_s"],
        "runs": runs,
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for mode, rows in result["results"].items():
        xs = [r["concurrency"] for r in rows]
        ax1.plot(xs, [r["ttfa_median_s"] for r in rows], "o-", label=mode)
        ax2.plot(xs, [r["rtf_median"] for r in rows], "o-", label=mode)
    ax1.set(xlabel="concurrent streams", ylabel="time to first audio byte (s, median)", yscale="log")
    ax2.set(xlabel="concurrent streams", ylabel="end-to-end RTF (median)")
    ax2.axhline(1.0, color="grey", lw=0.8, ls="--")
    for ax in (ax1, ax2):
        ax.set_xticks([r["concurrency"] for r in next(iter(result["results"].values()))])
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"accelerando speech API on loopback ({result['hardware']['cpu']}, untrained models)", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--vocoder", choices=["fregrad", "griffin-lim"], default="fregrad")
    parser.add_argument("--vocoder-steps", type=int, default=3)
    parser.add_argument("--frames-per-token", type=float, default=6.0)
    parser.add_argument("--out", default="benchmarks/results/speech_server.json")
    args = parser.parse_args(argv)

    import os

    import torch

    from accelerando.metrics.timing import cpu_model
    from accelerando.tts.server import BackgroundServer, create_app

    result: dict[str, Any] = {
        "benchmark": "speech_server",
        "note": "untrained random models (small Incremental FastPitch with fixed durations, random small "
        "FreGrad): timings only, not quality",
        "text": TEXT,
        "settings": vars(args),
        "hardware": {
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        },
        "results": {},
    }
    for mode, incremental in (("incremental", True), ("whole_utterance", False)):
        engine = build_engine(args, incremental)
        list(engine.stream("Warm up."))
        app = create_app(engine, max_concurrent=max(args.concurrency))
        with BackgroundServer(app) as live:
            rows = []
            for n in args.concurrency:
                row = measure(live.url, n, args.rounds)
                print(
                    f"{mode:16s} x{n}: TTFA median {row['ttfa_median_s']:.3f} s, RTF median {row['rtf_median']:.2f}"
                )
                rows.append(row)
        result["results"][mode] = rows
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    plot(result, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return result


if __name__ == "__main__":
    main()
