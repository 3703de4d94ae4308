"""Speech vocoders on one CPU thread: how many times faster than real time, whole and streamed.

Every mel vocoder vocodes the same 4 s of speech mel (a held-out corpus utterance when ``--data_dir`` has
one, else festival-free synthetic speech-like audio), batch 1, ``torch.set_num_threads(1)``:

- Griffin-Lim (32 iterations, the quality floor and the speech engine's fallback);
- the bundled mel vocoders at their default steps (PeriodWave-Turbo 4 steps, FreGrad 6 steps) and the
  bundled MelNEWT, also as FastNEWT (``to_fast()``: waveshapers as lookup tables);
- a MelNEWT whose config turns on mel-envelope matching (``envelope_passes``) also without it, to show its cost;
- MelNEWT streamed chunk by chunk (``stream()``, 4 / 8 / 16 / 32 mel frames per chunk: 46 to 372 ms), the
  way the speech engine feeds it.

All sides are timed interleaved in one process (:func:`accelerando.metrics.compare_speed`), so the ratios
hold on a shared CPU; xRT = audio seconds / median seconds (above 1: faster than real time). ``--model
NAME=PATH`` adds a checkpoint folder (e.g. a run's ``checkpoint-N/model``). Writes
``benchmarks/results/speech_vocoder_speed.{json,png}``::

    python benchmarks/speech_vocoder_speed.py
    python benchmarks/speech_vocoder_speed.py --model newt=runs/newt-speech/checkpoint-2000/model --quick
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from accelerando.audio import MelConfig, load_audio, mel_spectrogram
from accelerando.metrics import compare_speed
from accelerando.metrics.report import environment, save_figure, write_results
from accelerando.metrics.timing import cpu_model

SECONDS = 4.0
CHUNKS = (4, 8, 16, 32)


def speech_mel(data_dir: str | None, seconds: float = SECONDS) -> tuple[torch.Tensor, str]:
    """``(1, 80, frames)`` mel of ``seconds`` of speech: held-out utterances of ``data_dir`` (joined) or a
    synthetic voiced signal with formant-like harmonics when there is no corpus."""
    cfg = MelConfig()
    samples = int(seconds * cfg.sample_rate)
    if data_dir and (Path(data_dir) / "split.json").is_file():
        split = json.loads((Path(data_dir) / "split.json").read_text())
        pieces, total, used = [], 0, []
        for item in split.get("test", []) + split.get("validation", []):
            wav = load_audio(Path(data_dir) / "wavs" / f"{item}.wav", cfg.sample_rate)
            pieces.append(wav)
            used.append(item)
            total += wav.numel()
            if total >= samples:
                break
        if total >= samples:
            return mel_spectrogram(torch.cat(pieces)[:samples][None], cfg), f"held-out utterances {used}"
    t = torch.arange(samples) / cfg.sample_rate
    f0 = 160 + 30 * torch.sin(2 * torch.pi * 0.7 * t)
    phase = 2 * torch.pi * torch.cumsum(f0, 0) / cfg.sample_rate
    wav = sum(0.3 / k * torch.sin(k * phase) * (1 + torch.cos(torch.tensor(k * 0.5))) for k in range(1, 30))
    return mel_spectrogram((0.5 * wav / wav.abs().max())[None], cfg), "synthetic voiced signal"


def vocoders(models: dict[str, str], bundled: bool) -> dict[str, Any]:
    """Display name -> vocoder object (Griffin-Lim first: the baseline of the ratios)."""
    from accelerando.pretrained.loading import load_mel_vocoder

    out: dict[str, Any] = {"Griffin-Lim (32 it.)": load_mel_vocoder("griffin-lim")}
    sources = dict(models)
    if bundled:
        from accelerando.demos.checkpoints import MEL_VOCODER_ROLES, discover_checkpoints

        found = discover_checkpoints()
        for role in MEL_VOCODER_ROLES:
            if role in found:
                sources.setdefault(found[role].name, str(found[role]))
    for name, path in sources.items():
        model = load_mel_vocoder(path)
        out[name] = model
        if hasattr(model, "to_fast") and not model.config.use_lookup_table:
            out[f"{name} (FastNEWT)"] = model.to_fast().eval()
        if getattr(model.config, "envelope_passes", 0):  # what the mel-envelope matching costs
            plain = copy.deepcopy(model)
            plain.register_to_config(envelope_passes=0)
            out[f"{name} (envelope matching off)"] = plain
    return out


def whole_call(model: Any, mel: torch.Tensor):
    def run() -> None:
        with torch.inference_mode():
            model.synthesize(mel, generator=torch.Generator().manual_seed(0))

    return run


def streamed(model: Any, mel: torch.Tensor, chunk: int):
    def run() -> None:
        stream = model.stream(seed=0)
        for i in range(0, mel.shape[-1], chunk):
            stream.push(mel[..., i : i + chunk])
        stream.finish()

    return run


def plot(payload: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = payload["rows"]
    names = [r["name"] for r in rows]
    xrt = [r["xrt"] for r in rows]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.6))
    colors = ["tab:gray" if "Griffin" in n else ("tab:green" if "MelNEWT" in n or "newt" in n else "tab:blue")
              for n in names]  # fmt: skip
    ax.barh(names, xrt, color=colors)
    ax.axvline(1.0, color="k", lw=0.8, ls=":")
    ax.axvline(20.0, color="tab:red", lw=0.8, ls="--", label="20x real time")
    for i, value in enumerate(xrt):
        ax.annotate(f"{value:.1f}x", (value, i), va="center", ha="left", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("times faster than real time (one CPU thread, batch 1; log scale)")
    ax.invert_yaxis()
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(
        f"Speech vocoders on {payload['hardware']}, 1 thread, {payload['audio_seconds']:.1f} s", fontsize=9
    )
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default="corpora/speech", help="Corpus with split.json (held-out mel).")
    parser.add_argument(
        "--model", action="append", default=[], metavar="NAME=PATH", help="Extra vocoder folder."
    )
    parser.add_argument("--no-bundled", action="store_true", help="Leave out the bundled vocoders.")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1 s of audio, 2 repeats (smoke run).")
    parser.add_argument("--out", default="benchmarks/results/speech_vocoder_speed.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    seconds, repeats = (1.0, 2) if args.quick else (SECONDS, args.repeats)
    models = {}
    for item in args.model:
        if "=" not in item:
            parser.error(f"--model takes NAME=PATH; got {item!r}")
        name, path = item.split("=", 1)
        models[name] = path
    mel, source = speech_mel(args.data_dir, seconds)
    audio_seconds = mel.shape[-1] * MelConfig().hop_length / MelConfig().sample_rate
    voc = vocoders(models, bundled=not args.no_bundled)
    fns = {name: whole_call(model, mel) for name, model in voc.items()}
    for name, model in voc.items():
        if getattr(model, "streams_mel", False):
            for chunk in CHUNKS:
                fns[f"{name}, streamed {chunk} frames"] = streamed(model, mel, chunk)
    cmp = compare_speed(fns, repeats=repeats, warmup=1, audio_seconds=audio_seconds)
    rows = [
        {"name": name, "xrt": cmp["results"][name]["xrt"], "median_s": cmp["results"][name]["median_s"],
         "iqr_s": cmp["results"][name]["iqr_s"], "speedup_over_griffin_lim": cmp["speedup_over_baseline"][name]}
        for name in cmp["order"]
    ]  # fmt: skip
    for row in rows:
        print(
            f"{row['name']:55s} {row['xrt']:7.2f}x real time   ({row['speedup_over_griffin_lim']:.2f}x Griffin-Lim)"
        )
    payload = {
        "benchmark": "speech_vocoder_speed",
        "hardware": cpu_model(),
        "threads": 1,
        "audio_seconds": audio_seconds,
        "mel_source": source,
        "rows": rows,
        "comparison": cmp,
        "environment": environment(),
    }
    out = write_results(args.out, payload)
    plot(payload, Path(out).with_suffix(".png"))
    print(f"wrote {out} and its .png")
    return payload


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
