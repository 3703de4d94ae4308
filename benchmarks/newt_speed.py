"""NEWT vs FastNEWT: streaming speed on one CPU thread, and quality on held-out melodies.

(a) Speed. The paper-size NEWT (``NEWT()``, 266,945 parameters) and its FastNEWT (``to_fast()``, shapers
as 4096-entry lookup tables) stream the same 4 s of controls (batch 1) through
:meth:`NEWT.stream` in blocks of 256, 512, ..., 8192 samples (block frames = block / 128). For each block
size the two are timed interleaved in one process (:func:`accelerando.metrics.compare_speed`), so their
ratio holds even on a shared CPU; xRT = 4 s / median time to stream the 4 s (above 1: faster than
real time). ``torch.set_num_threads(1)``. Without ``--checkpoint`` the weights are random, which is fine
for speed: every operation runs at the same size whatever the weights hold.

(b) Quality, only with ``--checkpoint`` (trained ``newt-<instrument>`` folders, one or more): each held-out
melody of the instrument (test and validation splits by default: the corpus's small test split misses some
instruments; neither is used in training) is re-synthesised from its ground-truth controls (MIDI f0,
measured loudness) by NEWT and FastNEWT and compared with the rendered recording: M-STFT and the pYIN pitch
figures (:func:`accelerando.metrics.pitch_metrics`). The floor is the harmonic exciter alone: a plain
additive synth (harmonics with 1/k amplitudes up to Nyquist) on the same f0 whose amplitude follows the
same loudness envelope, scaled to the recording's RMS. Without a checkpoint the JSON says (b) was skipped.

Writes ``benchmarks/results/newt_speed.json`` and ``.png`` (xRT vs block size, both models), plus an
M-STFT-per-instrument plot with checkpoints (``--skip_speed --out X.json`` writes it as ``X.png``)::

    python benchmarks/newt_speed.py
    python benchmarks/newt_speed.py --checkpoint accelerando/pretrained/newt-violin \
        accelerando/pretrained/newt-flute accelerando/pretrained/newt-trumpet --data_dir corpora/instruments
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from accelerando.metrics import compare_speed, mstft_distance, pitch_metrics
from accelerando.metrics.report import environment, save_figure, summarize, write_results
from accelerando.vocoders import NEWT

SECONDS = 4.0
BLOCKS = (256, 512, 1024, 2048, 4096, 8192)


def stream_controls(frames: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A plausible ``(1, frames)`` melody: notes with vibrato, and a loudness envelope per note."""
    g = torch.Generator().manual_seed(seed)
    notes = 57 + torch.randint(0, 24, (frames // 50 + 1,), generator=g).float()
    midi = notes.repeat_interleave(50)[:frames] + 0.2 * torch.sin(torch.arange(frames) * 0.3)
    f0 = 440.0 * 2.0 ** ((midi - 69.0) / 12.0)
    envelope = 0.75 + 0.2 * torch.sin(torch.arange(frames) * math.pi / 50).abs()
    return f0[None], envelope[None]


def bench_speed(model: NEWT, blocks: tuple[int, ...], repeats: int, warmup: int) -> list[dict[str, Any]]:
    """Per block size: interleaved timings of NEWT and FastNEWT streaming ``SECONDS`` of controls."""
    hop = model.config.control_hop
    frames = int(SECONDS * model.config.sample_rate) // hop
    seconds = frames * hop / model.config.sample_rate
    f0, loudness = stream_controls(frames)
    models = {"NEWT": model, "FastNEWT": model.to_fast().eval()}
    rows = []
    for block in blocks:
        if block % hop:
            raise ValueError(f"block sizes must be multiples of the control hop {hop}; got {block}")
        step = block // hop

        def streamer(m: NEWT, step: int = step):
            def run() -> None:
                stream = m.stream(batch_size=1, seed=0)
                for i in range(0, frames, step):
                    stream.process(f0[:, i : i + step], loudness[:, i : i + step])

            return run

        cmp = compare_speed(
            {name: streamer(m) for name, m in models.items()},
            repeats=repeats,
            warmup=warmup,
            audio_seconds=seconds,
        )
        xrt = {name: cmp["results"][name]["xrt"] for name in models}
        iqr = {name: cmp["results"][name]["iqr_s"] for name in models}
        row = {
            "block_samples": block,
            "block_frames": step,
            "block_ms": 1000.0 * block / model.config.sample_rate,
            "xrt": xrt,
            "median_s": {name: cmp["results"][name]["median_s"] for name in models},
            "iqr_s": iqr,
            "fast_speedup": cmp["speedup_over_baseline"]["FastNEWT"],
            "times_s": {name: cmp["results"][name]["times_s"] for name in models},
        }
        rows.append(row)
        print(
            f"block {block:5d} ({step:2d} frames, {row['block_ms']:5.1f} ms): xRT NEWT {xrt['NEWT']:6.2f}, "
            f"FastNEWT {xrt['FastNEWT']:6.2f}, FastNEWT/NEWT speed {row['fast_speedup']:.2f}x"
        )
    return rows


def additive_floor(
    f0_hz: np.ndarray, loudness_db: np.ndarray, hop: int, sr: int, ref: np.ndarray
) -> np.ndarray:
    """Harmonic exciter alone: 1/k harmonics below Nyquist on ``f0`` with the loudness envelope, at ``ref``'s RMS."""
    samples = len(f0_hz) * hop
    frame_t = (np.arange(len(f0_hz)) + 0.5) * hop
    t = np.arange(samples)
    f0 = np.interp(t, frame_t, f0_hz)  # (T,)
    amp = np.interp(t, frame_t, 10.0 ** (loudness_db / 20.0))  # (T,)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    out = np.zeros(samples)
    for k in range(1, 101):
        below = (k * f0) < sr / 2
        if not below.any():
            break
        out += below * np.sin(k * phase) / k
    out *= amp
    rms_out, rms_ref = np.sqrt(np.mean(out**2)), np.sqrt(np.mean(ref[:samples] ** 2))
    return (out * (rms_ref / rms_out if rms_out > 0 else 0.0)).astype(np.float32)


def instrument_of(checkpoint: str | os.PathLike) -> str | None:
    """``violin`` for ``.../newt-violin`` or ``.../newt-violin/model``; ``None`` for other names."""
    path = Path(checkpoint).resolve()
    name = path.parent.name if path.name == "model" else path.name
    return name.removeprefix("newt-") if name.startswith("newt-") else None


def bench_quality(
    model: NEWT, data_dir: str, instrument: str | None, splits: list[str] | tuple[str, ...] = ("test",)
) -> dict[str, Any]:
    """M-STFT and pitch figures of NEWT, FastNEWT and the additive floor on held-out melodies."""
    from accelerando.audio import normalize_loudness
    from accelerando.data import MelodyDataset

    sr, hop = model.config.sample_rate, model.config.control_hop
    fast = model.to_fast().eval()
    per_item = []
    items = (
        data[i]
        for data in (MelodyDataset(data_dir, split=split, sample_rate=sr) for split in splits)
        for i in range(len(data))
    )
    for item in items:
        if instrument is not None and item["instrument"] != instrument:
            continue
        if item["hop_length"] != hop:
            raise ValueError(f"melody {item['id']} has hop {item['hop_length']}; the model expects {hop}")
        ref = item["audio"].numpy()
        f0, loud_db = item["f0_hz"], item["loudness_db"]
        samples = f0.shape[0] * hop
        ref = ref[:samples]
        outputs = {
            "NEWT": model.synthesize(f0, normalize_loudness(loud_db), seed=0).numpy(),
            "FastNEWT": fast.synthesize(f0, normalize_loudness(loud_db), seed=0).numpy(),
            "exciter_floor": additive_floor(f0.numpy(), loud_db.numpy(), hop, sr, ref),
        }
        row: dict[str, Any] = {"id": item["id"], "instrument": item["instrument"]}
        for name, wav in outputs.items():
            pm = pitch_metrics(wav, ref, sr)
            row[name] = {"mstft": mstft_distance(wav, ref), **pm}
        per_item.append(row)
        print(
            f"{item['id']}: M-STFT NEWT {row['NEWT']['mstft']:.3f} / FastNEWT {row['FastNEWT']['mstft']:.3f} / "
            f"floor {row['exciter_floor']['mstft']:.3f}; pitch RMSE (cents) NEWT "
            f"{row['NEWT']['pitch_rmse_cents']:.1f} / floor {row['exciter_floor']['pitch_rmse_cents']:.1f}"
        )
    if not per_item:
        raise ValueError(
            f"no melodies of instrument {instrument!r} in the {'/'.join(splits)} split(s) of {data_dir!r}"
        )
    metrics = ("mstft", "pitch_rmse_cents", "vuv_f1", "periodicity_rmse")
    summary = {
        name: {m: summarize([row[name][m] for row in per_item]) for m in metrics}
        for name in ("NEWT", "FastNEWT", "exciter_floor")
    }
    return {
        "instrument": instrument,
        "splits": list(splits),
        "n_melodies": len(per_item),
        "summary": summary,
        "per_item": per_item,
    }


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = [r["block_samples"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    for name, marker in (("NEWT", "o"), ("FastNEWT", "s")):
        ax.plot(blocks, [r["xrt"][name] for r in rows], marker=marker, label=name)
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="real time")
    ax.set_xscale("log", base=2)
    ax.set_xticks(blocks, [str(b) for b in blocks])
    ax.set_xlabel("streaming block size (samples at 16 kHz)")
    ax.set_ylabel("xRT (audio s / compute s)")
    ax.set_title(title, fontsize=9)
    ax.legend()
    save_figure(fig, path)


def plot_quality(results: list[dict[str, Any]], path: Path) -> None:
    """Median M-STFT (lower is better) of NEWT, FastNEWT and the exciter floor, per instrument."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ("NEWT", "FastNEWT", "exciter_floor")
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        values = [r["summary"][name]["mstft"]["median"] for r in results]
        xs = [i + (j - 1) * width for i in range(len(results))]
        ax.bar(xs, values, width=width, label=name.replace("_", " "))
    ax.set_xticks(range(len(results)), [f"{r['instrument']} ({r['n_melodies']})" for r in results])
    ax.set_ylabel("M-STFT vs recording (median)")
    ax.set_title("NEWT on held-out melodies (ground-truth controls)", fontsize=9)
    ax.legend()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoint",
        nargs="+",
        default=None,
        help="trained NEWT save_pretrained folders, e.g. newt-violin newt-flute (enables (b))",
    )
    parser.add_argument(
        "--data_dir", default="corpora/instruments", help="instrument corpus (holds melodies/)"
    )
    parser.add_argument(
        "--instrument", default=None, help="test melodies of this instrument (default: from newt-<name>)"
    )
    parser.add_argument(
        "--split",
        default="test,validation",
        help="held-out split(s) for (b), comma-separated (the small test split misses some instruments)",
    )
    parser.add_argument("--blocks", nargs="+", type=int, default=list(BLOCKS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the paper's setting: 1)")
    parser.add_argument("--skip_speed", action="store_true", help="only (b)")
    parser.add_argument("--out", default="benchmarks/results/newt_speed.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    checkpoints = args.checkpoint or []
    if checkpoints:
        model = NEWT.from_pretrained(checkpoints[0]).eval()
        weights = f"checkpoint {checkpoints[0]}"
    else:
        model = NEWT().eval()
        weights = "random (paper-size NEWT; speed does not depend on the weights)"
    report: dict[str, Any] = {
        "benchmark": "NEWT vs FastNEWT: streaming xRT (batch 1) and quality on held-out melodies",
        "environment": environment(),
        "torch_threads": torch.get_num_threads(),
        "weights": weights,
        "parameters": model.num_parameters(),
        "note": "xRT = seconds of audio / median compute seconds to stream it (NEWT.stream, batch 1); the two "
        "models are timed interleaved per block size (compare_speed) on a shared CPU, so compare the ratio "
        "first; absolute xRT depends on this CPU and its load.",
    }
    if not args.skip_speed:
        load_before = os.getloadavg()
        report["speed"] = {
            "audio_seconds": int(SECONDS * model.config.sample_rate)
            // model.config.control_hop
            * model.config.control_hop
            / model.config.sample_rate,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "rows": bench_speed(model, tuple(args.blocks), args.repeats, args.warmup),
        }
        # Other jobs on a shared machine lower every absolute xRT; record how busy it was.
        report["speed"]["load_average_1_5_15"] = {"before": load_before, "after": os.getloadavg()}
    if checkpoints:
        if args.instrument is not None and len(checkpoints) > 1:
            raise ValueError("--instrument names one instrument; give one --checkpoint with it")
        splits = [s.strip() for s in args.split.split(",") if s.strip()]
        report["quality"] = [
            bench_quality(
                NEWT.from_pretrained(path).eval(),
                args.data_dir,
                args.instrument or instrument_of(path),
                splits,
            )
            | {"checkpoint": str(path)}
            for path in checkpoints
        ]
    else:
        report["quality"] = {
            "skipped": "no --checkpoint given: quality on held-out melodies needs a trained newt-<instrument>; "
            "random weights would only measure noise"
        }
    out = Path(args.out)
    write_results(out, report)
    if "speed" in report:
        cpu = report["environment"].get("cpu_model", "cpu")
        plot(report["speed"]["rows"], out.with_suffix(".png"), f"NEWT vs FastNEWT, batch 1, 1 thread, {cpu}")
    if isinstance(report["quality"], list):
        # Beside the speed plot when there is one, else under the JSON's own name.
        name = out.stem + "_quality.png" if "speed" in report else out.with_suffix(".png").name
        plot_quality(report["quality"], out.with_name(name))
    print(f"wrote {out} and its plots")
    return report


if __name__ == "__main__":
    main()
