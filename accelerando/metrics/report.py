"""Benchmark reporting shared by ``accelerando bench`` and the ``benchmarks/`` scripts.

- :func:`environment` -- hardware and versions (``accelerando.system.collect_info`` plus metric packages)
- :func:`summarize` -- mean / std / median / min / max of a metric over items, ignoring ``nan``
- :func:`write_results` -- atomic JSON writer (non-finite floats become ``null``)
- :func:`plot_metric_distributions`, :func:`plot_speed` -- PNG figures (matplotlib, Agg backend)
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from accelerando.fileio import atomic_write_text

_EXTRA_PACKAGES = ("numpy", "scipy", "pesq", "pystoi", "soxr", "matplotlib")


def environment() -> dict[str, Any]:
    """Hardware, versions and the time of the run, for the top of every results file."""
    from accelerando.metrics.timing import cpu_model
    from accelerando.system import collect_info, package_version

    info = collect_info()
    info["cpu_model"] = cpu_model()
    info["versions"].update({name: package_version(name) for name in _EXTRA_PACKAGES})
    info["time_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return info


def summarize(values: Sequence[float]) -> dict[str, float | int | None]:
    """``{"mean", "std", "median", "min", "max", "n"}`` over the finite values (``n`` counts them).

    ``+inf`` values (e.g. the SNR of a perfect copy) are excluded as well; statistics are ``None``
    when no finite value is left.
    """
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return {"mean": None, "std": None, "median": None, "min": None, "max": None, "n": 0}
    return {
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
        "median": float(np.median(arr)),
        "min": float(arr.min()),
        "max": float(arr.max()),
        "n": int(arr.size),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, Path):
        return str(value)
    return value


def write_results(path: str | os.PathLike, payload: Mapping[str, Any]) -> Path:
    """Writes ``payload`` as indented JSON atomically (temp file + rename); returns the path.

    NaN and infinities are written as ``null`` so the file is strict JSON; NumPy scalars and arrays
    become plain numbers and lists. Parent folders are created.
    """
    path = Path(path)
    text = json.dumps(_jsonable(payload), indent=2, allow_nan=False) + "\n"
    atomic_write_text(path, text)
    return path


def write_results_and_plot(
    out: str | os.PathLike, payload: Mapping[str, Any], plot: Callable[[Mapping[str, Any], Path], Any]
) -> Path:
    """A benchmark's two outputs: ``payload`` as ``out.json`` (:func:`write_results`) and ``plot(payload, out.png)``;
    says where they went and returns the JSON path."""
    out = Path(out)
    path = write_results(out.with_suffix(".json"), payload)
    plot(payload, out.with_suffix(".png"))
    print(f"wrote {path} and {out.with_suffix('.png')}")
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Lay out ``fig``, write it to ``path`` (parent folders made), close it; returns the path."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    _pyplot().close(fig)
    return path


def plot_metric_distributions(
    per_item: Sequence[Mapping[str, Any]],
    metrics: Sequence[str],
    path: str | os.PathLike,
    title: str = "",
) -> Path:
    """One box plot (with the items as dots) per metric over ``per_item`` rows; writes a PNG."""
    plt = _pyplot()
    cols = min(3, max(1, len(metrics)))
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 3.0 * rows), squeeze=False)
    for ax, name in zip(axes.flat, metrics):
        values = np.asarray([row.get(name) for row in per_item if row.get(name) is not None], dtype=float)
        values = values[np.isfinite(values)]
        if values.size:
            ax.boxplot(values, widths=0.5, showfliers=False)
            jitter = np.random.default_rng(0).uniform(-0.08, 0.08, values.size)
            ax.plot(1 + jitter, values, "o", alpha=0.5, markersize=3)
            ax.set_title(f"{name}\nmean {values.mean():.4g} (n={values.size})", fontsize=9)
        else:
            ax.set_title(f"{name}\n(no finite values)", fontsize=9)
        ax.set_xticks([])
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def plot_speed(comparison: Mapping[str, Any], path: str | os.PathLike, title: str = "") -> Path:
    """Bar chart of per-side median time with IQR error bars from :func:`compare_speed`'s result."""
    plt = _pyplot()
    names = list(comparison["order"])
    medians = [comparison["results"][n]["median_s"] for n in names]
    iqrs = [comparison["results"][n]["iqr_s"] for n in names]
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2.0, 3.0))
    ax.bar(names, medians, yerr=iqrs, capsize=4)
    ax.set_ylabel("median seconds per call")
    for i, name in enumerate(names):
        ax.annotate(
            f"x{comparison['speedup_over_baseline'][name]:.2f}", (i, medians[i]), ha="center", va="bottom"
        )
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path)
