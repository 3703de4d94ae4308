"""Vocoder benchmarking on a corpus split, shared by ``accelerando bench`` and the ``benchmarks/`` scripts.

- :func:`iter_corpus` -- the items of one split of a speech (LJSpeech-style) or instrument-note corpus folder
- :func:`load_vocoder_folder` -- a saved mel vocoder (FreGrad, PeriodWave, PeriodWave-Turbo, ...) by its config
- :func:`run_vocoder` -- scores any ``synthesize(mel, num_steps, generator)`` on a split, one row per item
- :func:`vocoder_payload` -- the results JSON of a vocoder run (hardware, versions, settings, summary, speed)
- :func:`save_report` -- writes that JSON and a metric-distribution PNG beside it

Every heavy import (torch, the datasets, the loader) happens inside the functions.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["iter_corpus", "load_vocoder_folder", "run_vocoder", "save_report", "vocoder_payload"]


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
