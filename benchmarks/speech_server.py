"""Speech API on loopback: time to first audio, per-stream RTF and aggregate throughput at 1, 4 and 8 streams.

Each stream is an HTTP client on 127.0.0.1 posting ``/v1/audio/speech`` (pcm, streamed) to a live
uvicorn server, all streams starting together. Per setting it reports time to first audio byte (TTFA,
p50 / p95), each stream's end-to-end real-time factor (wall time / audio seconds; < 1 is faster than real
time) and the aggregate audio seconds delivered per wall second (all streams' audio over the time from the
start until the last stream ends). Servers measured side by side in one run:

- ``--models bundled`` (default): the bundled Incremental FastPitch with each ``--vocoder`` (default: the
  measured default, ``newt-speech`` and Griffin-Lim), incremental engine; a vocoder that streams its own state (MelNEWT)
  is measured with one model call per stream and with dynamic batching of the streams' blocks
  (:class:`accelerando.tts.batching.RenderBatcher`, 5 ms window), side by side;
- ``--models random``: random ``small`` FastPitch (durations fixed to ``--frames-per-token``) and a random
  small FreGrad or Griffin-Lim, incremental engine and the whole-utterance baseline (timings only).

Writes JSON + PNG; absolute times depend on the (shared) CPU named in the JSON::

    OMP_NUM_THREADS=1 python benchmarks/speech_server.py --out benchmarks/results/speech_server.json
    OMP_NUM_THREADS=1 python benchmarks/speech_server.py --models random --vocoder fregrad
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


def build_engine(
    args: argparse.Namespace,
    incremental: bool,
    vocoder: str | None = None,
    batch_window_ms: float | None = None,
):
    if args.models == "bundled":
        from accelerando.tts import StreamingSynthesizer

        return StreamingSynthesizer.from_pretrained(vocoder=vocoder, batch_window_ms=batch_window_ms)
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
        began = time.time()
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
    out[index] = {"ttfa_s": first, "total_s": total, "audio_s": audio_s, "rtf": total / audio_s,
                  "began": began, "ended": time.time()}  # fmt: skip


def measure(url: str, concurrency: int, rounds: int) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    aggregate: list[float] = []
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
        aggregate.append(
            sum(r["audio_s"] for r in out) / (max(r["ended"] for r in out) - min(r["began"] for r in out))
        )
    ttfa = sorted(r["ttfa_s"] for r in runs)
    rtf = [r["rtf"] for r in runs]
    return {
        "concurrency": concurrency,
        "streams": len(runs),
        "ttfa_median_s": statistics.median(ttfa),
        "ttfa_p95_s": ttfa[min(len(ttfa) - 1, round(0.95 * (len(ttfa) - 1)))],
        "ttfa_max_s": max(ttfa),
        "rtf_median": statistics.median(rtf),
        "rtf_max": max(rtf),
        "aggregate_audio_s_per_s": statistics.median(aggregate),
        "audio_s": runs[0]["audio_s"],
        "runs": runs,
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(14, 4))
    for mode, rows in result["results"].items():
        xs = [r["concurrency"] for r in rows]
        ax1.plot(xs, [r["ttfa_median_s"] for r in rows], "o-", label=f"{mode} p50")
        ax1.plot(xs, [r["ttfa_p95_s"] for r in rows], "x:", label=f"{mode} p95")
        ax2.plot(xs, [r["rtf_median"] for r in rows], "o-", label=mode)
        ax3.plot(xs, [r["aggregate_audio_s_per_s"] for r in rows], "o-", label=mode)
    ax1.set(xlabel="concurrent streams", ylabel="time to first audio byte (s)", yscale="log")
    ax2.set(xlabel="concurrent streams", ylabel="per-stream RTF (median; < 1 faster than real time)")
    ax2.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax3.set(xlabel="concurrent streams", ylabel="aggregate audio s per wall s")
    for ax in (ax1, ax2, ax3):
        ax.set_xticks([r["concurrency"] for r in next(iter(result["results"].values()))])
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"accelerando speech API on loopback ({result['hardware']['cpu']}, {result['settings']['models']} models)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--models", choices=["bundled", "random"], default="bundled")
    parser.add_argument(
        "--vocoder", nargs="+", default=None,
        help="bundled: vocoder names, one flag (default: the measured default, newt-speech, griffin-lim); "
        "random: fregrad or griffin-lim",
    )  # fmt: skip
    parser.add_argument("--vocoder-steps", type=int, default=3)
    parser.add_argument("--frames-per-token", type=float, default=6.0)
    parser.add_argument("--out", default="benchmarks/results/speech_server.json")
    args = parser.parse_args(argv)

    import os

    import torch

    from accelerando.metrics.timing import cpu_model
    from accelerando.tts.server import BackgroundServer, create_app

    if args.vocoder is None:
        from accelerando.pretrained.defaults import default_vocoder

        bundled = [default_vocoder().name, "newt-speech", "griffin-lim"]  # the default, MelNEWT and the floor
        args.vocoder = bundled if args.models == "bundled" else ["fregrad"]
        args.vocoder = list(dict.fromkeys(args.vocoder))
    result: dict[str, Any] = {
        "benchmark": "speech_server",
        "note": "bundled models"
        if args.models == "bundled"
        else "untrained random models (small Incremental "
        "FastPitch with fixed durations, random small vocoder): timings only, not quality",
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
    if args.models == "bundled":
        from accelerando.pretrained.loading import load_mel_vocoder

        setups = []
        for name in args.vocoder:
            if getattr(load_mel_vocoder(name), "streams_mel", False):  # dynamic batching: off, then on
                setups += [
                    (f"{name} (one call per stream)", True, name, 0.0),
                    (f"{name} (batched)", True, name, 5.0),
                ]
            else:
                setups.append((name, True, name, 0.0))
    else:
        args.vocoder = args.vocoder[0]
        setups = [("incremental", True, None, 0.0), ("whole_utterance", False, None, 0.0)]
    for mode, incremental, vocoder, window in setups:
        engine = build_engine(args, incremental, vocoder, window)
        list(engine.stream("Warm up."))
        app = create_app(engine, max_concurrent=max(args.concurrency))
        with BackgroundServer(app) as live:
            rows = []
            for n in args.concurrency:
                row = measure(live.url, n, args.rounds)
                print(
                    f"{mode:16s} x{n}: TTFA p50 {row['ttfa_median_s']:.3f} s p95 {row['ttfa_p95_s']:.3f} s, "
                    f"RTF median {row['rtf_median']:.2f}, aggregate {row['aggregate_audio_s_per_s']:.2f} audio s/s"
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
