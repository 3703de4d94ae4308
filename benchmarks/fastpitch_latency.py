"""Incremental FastPitch: time to the first mel chunk vs parallel (full-sentence) decoding, side by side.

For sentences of 5, 20 and 60 words, three paths of one model are timed interleaved in one process
(:func:`accelerando.metrics.timing.compare_speed`), each starting from phoneme ids:

- ``parallel``: ``encode`` + the decoder over the whole utterance with full attention (parallel
  FastPitch; the first audio is ready only when this finishes);
- ``first_chunk``: ``encode`` + the first ``decode_chunks`` chunk (``S_c`` = 30 frames, ``S_p`` = 5),
  the latency a streaming listener waits (Incremental FastPitch, Du et al. 2024, reports ~4x lower);
- ``all_chunks``: ``encode`` + every chunk, whose time over the audio duration is the acoustic RTF.

It also reports the mel L1 between the incremental (chunked) and parallel outputs of the same model,
and checks that the streamed chunks equal ``decode_full_masked`` (the streaming path is exact).

Without ``--checkpoint`` the weights are random (fine for speed; the mel distance then only says how
much the chunk mask changes an untrained decoder) and durations are fixed at ``--frames_per_token``,
so the utterance lengths are realistic; the JSON says which. Writes JSON + PNG::

    OMP_NUM_THREADS=1 python benchmarks/fastpitch_latency.py --presets small paper
    python benchmarks/fastpitch_latency.py --checkpoint runs/fastpitch-speech/model --presets small
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import torch

from accelerando.metrics.report import save_figure
from accelerando.metrics.timing import compare_speed, cpu_model
from accelerando.tts import IncrementalFastPitch, TextFrontend

PASSAGE = (
    "The old lighthouse keeper climbed the narrow stairs every evening, carrying a lantern and a "
    "small notebook in which he wrote down the colour of the sea, the shape of the clouds and the "
    "names of the ships that passed beneath the cliffs. Nobody in the village knew why he kept these "
    "records so carefully, but when the great storm came in the autumn of that year, his notes "
    "helped the fishermen find their way home through the darkness and the rain, and every family "
    "on the harbour remembered him kindly for the rest of their lives."
)
HOP, SAMPLE_RATE = 256, 22050


def sentence(words: int) -> str:
    """The first ``words`` words of a fixed passage, ending with a full stop."""
    tokens = PASSAGE.split()
    if words > len(tokens):
        raise ValueError(f"The passage has {len(tokens)} words; asked for {words}.")
    return " ".join(tokens[:words]).rstrip(",.") + "."


def load_model(
    preset: str, checkpoint: str | None, frames_per_token: float
) -> tuple[IncrementalFastPitch, str]:
    """A trained checkpoint, or random weights whose duration predictor outputs ``frames_per_token``."""
    if checkpoint:
        return IncrementalFastPitch.from_pretrained(checkpoint).eval(), f"checkpoint {checkpoint}"
    torch.manual_seed(0)
    model = IncrementalFastPitch.from_preset(preset).eval()
    with torch.no_grad():  # log(d + 1) = const, so every token lasts frames_per_token frames
        model.duration_predictor.proj.weight.zero_()
        model.duration_predictor.proj.bias.fill_(math.log(frames_per_token + 1))
    return model, f"random (seed 0), durations fixed at {frames_per_token} frames/token"


def bench_sentence(
    model: IncrementalFastPitch, ids: torch.Tensor, repeats: int, warmup: int
) -> dict[str, Any]:
    """Interleaved timings of the three paths + mel distances for one sentence (ids (1, N))."""
    parallel_chunk = 10**9  # one chunk covering the utterance = full attention

    def parallel() -> torch.Tensor:
        return model.decode_full_masked(model.encode(ids), chunk_size=parallel_chunk)

    def first_chunk() -> torch.Tensor:
        return next(iter(model.decode_chunks(model.encode(ids))))

    def all_chunks() -> torch.Tensor:
        return torch.cat(list(model.decode_chunks(model.encode(ids))), dim=2)

    with torch.inference_mode():
        enc = model.encode(ids)
        mel_parallel = model.decode_full_masked(enc, chunk_size=parallel_chunk)
        mel_stream = torch.cat(list(model.decode_chunks(enc)), dim=2)
        mel_masked = model.decode_full_masked(enc)
    frames = int(enc.lengths[0])
    seconds = frames * HOP / SAMPLE_RATE
    timing = compare_speed(
        {"parallel": parallel, "first_chunk": first_chunk, "all_chunks": all_chunks},
        repeats=repeats,
        warmup=warmup,
        audio_seconds=seconds,
    )
    med = {name: r["median_s"] for name, r in timing["results"].items()}
    return {
        "phonemes": int(ids.shape[1]),
        "frames": frames,
        "audio_seconds": seconds,
        "median_s": med,
        "iqr_s": {name: r["iqr_s"] for name, r in timing["results"].items()},
        "first_chunk_speedup_vs_parallel": med["parallel"] / med["first_chunk"],
        "rtf": {"parallel": med["parallel"] / seconds, "incremental": med["all_chunks"] / seconds},
        "mel_l1_incremental_vs_parallel": float((mel_stream - mel_parallel).abs().mean()),
        "max_abs_stream_vs_chunk_masked": float((mel_stream - mel_masked).abs().max()),
        "timing": timing,
    }


def plot(results: dict[str, Any], path: Path) -> None:
    """Grouped bars: parallel vs first-chunk latency per sentence length, one panel per preset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    presets = list(results)
    fig, axes = plt.subplots(1, len(presets), figsize=(5 * len(presets), 3.6), squeeze=False)
    for ax, preset in zip(axes[0], presets, strict=True):
        rows = results[preset]["sentences"]
        labels = [f"{r['words']} words\n({r['audio_seconds']:.1f} s)" for r in rows]
        x = range(len(rows))
        for k, (name, colour) in enumerate((("parallel", "tab:gray"), ("first_chunk", "tab:blue"))):
            values = [1000 * r["median_s"][name] for r in rows]
            ax.bar([i + (k - 0.5) * 0.38 for i in x], values, 0.38, label=name, color=colour)
        for i, r in enumerate(rows):
            ax.annotate(
                f"{r['first_chunk_speedup_vs_parallel']:.1f}x",
                (i, 1000 * r["median_s"]["parallel"]),
                ha="center",
                va="bottom",
            )
        ax.set_xticks(list(x), labels)
        ax.set_ylabel("latency to first mel (ms)")
        ax.set_title(f"Incremental FastPitch ({preset})")
        ax.legend()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--presets", nargs="+", default=["small", "paper"], choices=["small", "paper"])
    parser.add_argument("--checkpoint", default=None, help="a save_pretrained folder (used for every preset)")
    parser.add_argument("--words", nargs="+", type=int, default=[5, 20, 60])
    parser.add_argument("--frames_per_token", type=float, default=6.0, help="random weights only")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared CPU)")
    parser.add_argument("--out", default="benchmarks/results/fastpitch_latency.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    frontend = TextFrontend()
    results: dict[str, Any] = {}
    for preset in [args.presets[0]] if args.checkpoint else args.presets:
        model, weights = load_model(preset, args.checkpoint, args.frames_per_token)
        cfg = model.config
        rows = []
        for words in args.words:
            ids = torch.tensor([frontend.encode(sentence(words))])
            row = {"words": words, **bench_sentence(model, ids, args.repeats, args.warmup)}
            rows.append(row)
            print(
                f"{preset:6s} {words:3d} words {row['frames']:5d} frames: parallel "
                f"{1000 * row['median_s']['parallel']:8.1f} ms, first chunk "
                f"{1000 * row['median_s']['first_chunk']:7.1f} ms ({row['first_chunk_speedup_vs_parallel']:.1f}x), "
                f"RTF parallel {row['rtf']['parallel']:.3f} / incremental {row['rtf']['incremental']:.3f}, "
                f"mel L1 inc-vs-par {row['mel_l1_incremental_vs_parallel']:.4f}"
            )
        results[checkpoint_name(args.checkpoint) if args.checkpoint else preset] = {
            "weights": weights,
            "parameters": model.num_parameters(),
            "chunk_size": cfg.chunk_size,
            "past_size": cfg.past_size,
            "d_model": cfg.d_model,
            "layers": [cfg.enc_layers, cfg.dec_layers],
            "sentences": rows,
        }
    report = {
        "benchmark": "Incremental FastPitch first-chunk latency vs parallel decoding",
        "hardware": {"cpu": cpu_model(), "torch_threads": torch.get_num_threads(), "device": "cpu"},
        "note": "Times are medians of interleaved runs on a shared CPU; compare ratios, not absolute times. "
        "RTF = compute time / audio duration of the mel (hop 256 at 22.05 kHz), acoustic model only.",
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    plot(results, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return report


def checkpoint_name(path: str) -> str:
    return Path(path).parent.name + "/" + Path(path).name


if __name__ == "__main__":
    main()
