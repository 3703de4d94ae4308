"""How far are the CPU-trained diffusion / flow vocoders from the Griffin-Lim floor? Fits to their measured curves.

Two kinds of evidence, both already measured and committed, are extrapolated here:

- validation M-STFT learning curves (``learning_curve.json`` files written by ``benchmarks/learning_curve.py``,
  e.g. the model cards' and the FreGrad overfit diagnostic's), each against Griffin-Lim's M-STFT on the same
  validation audio. Each curve gets ``a + b * step**-c`` (a power law with an asymptote ``a``, fitted from
  ``--min-step`` on) and, as the optimistic bound, a straight line through its last ``--tail`` points;
- held-out checkpoint rows of the intelligibility benchmark (``--heldout``: a JSON list of
  ``{"step", "copy_wer", "pesq_wb", ...}`` with the Griffin-Lim row's values under ``"floor"``): copy WER gets a
  power law through the origin in log-log (``WER = b * step**-c``, so it keeps falling; optimistic) and PESQ-wb a
  straight line.

For each, the step at which the fit reaches the floor (the WER target is the floor + ``--wer-margin``), and
the CPU hours that costs at the measured seconds per training step (``--seconds-per-step LABEL=S``). Writes
``vocoder_reach.json`` + ``.png``::

    python benchmarks/vocoder_reach.py \\
        --curve accelerando/pretrained/fregrad-speech/learning_curve.json:fregrad-speech:1.72 \\
        --curve "benchmarks/results/fregrad_overfit.json:small (260k params):1.74" \\
        --heldout benchmarks/data/turbo_heldout_checkpoints.json \\
        --seconds-per-step fregrad-speech=3.5 "small (260k params)=3.5" periodwave-turbo-s-speech=24
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"


def power_law(step: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """``a + b * step**-c``: a learning curve that levels off at ``a``."""
    return a + b * np.power(step, -c)


def fit_curve(steps: list[float], values: list[float], floor: float, tail: int) -> dict[str, Any]:
    """Power-law-with-asymptote and linear-tail fits of a falling curve; the steps at which each reaches ``floor``
    (``None`` when the fit never does)."""
    from scipy.optimize import curve_fit

    s, y = np.asarray(steps, float), np.asarray(values, float)
    p0 = [float(y.min()) * 0.8, max(float(y[0] - y.min()), 1e-3) * s[0] ** 0.5, 0.5]
    # the asymptote is an M-STFT (>= 0); without bounds a nearly straight stretch fits as c -> 0, a -> -inf
    (a, b, c), _ = curve_fit(
        power_law, s, y, p0=p0, bounds=([0, 0, 1e-3], [np.inf, np.inf, 3]), maxfev=50_000
    )
    power_steps = None
    if a < floor and b > 0 and c > 0:
        power_steps = float(((floor - a) / b) ** (-1.0 / c))
    slope, intercept = np.polyfit(s[-tail:], y[-tail:], 1)
    linear_steps = float((floor - intercept) / slope) if slope < 0 else None
    return {
        "power_law": {"asymptote": float(a), "b": float(b), "c": float(c), "steps_to_floor": power_steps},
        "linear_tail": {
            "points": int(min(tail, len(s))),
            "slope_per_1000_steps": float(slope * 1000),
            "steps_to_floor": linear_steps,
        },
        "last": {"step": float(s[-1]), "value": float(y[-1])},
        "floor": floor,
    }


def fit_heldout(rows: list[dict[str, float]], floor: dict[str, float], wer_margin: float) -> dict[str, Any]:
    """Copy WER as ``b * step**-c`` (log-log line) and PESQ-wb as a line against the step, each with the step
    at which it reaches its target (WER: the floor's + ``wer_margin``; PESQ-wb: the floor's)."""
    s = np.asarray([r["step"] for r in rows], float)
    out: dict[str, Any] = {"floor": floor, "wer_margin": wer_margin}
    wer = np.asarray([r["copy_wer"] for r in rows], float)
    slope, intercept = np.polyfit(np.log(s), np.log(wer), 1)
    target = floor["copy_wer"] + wer_margin
    out["copy_wer"] = {
        "fit": f"log(WER) = {slope:.3f} * log(step) + {intercept:.3f}",
        "exponent": float(slope),
        "scale": float(math.exp(intercept)),
        "target": target,
        "steps_to_target": float(math.exp((math.log(target) - intercept) / slope)) if slope < 0 else None,
    }
    pesq = np.asarray([r["pesq_wb"] for r in rows], float)
    p_slope, p_intercept = np.polyfit(s, pesq, 1)
    out["pesq_wb"] = {
        "slope_per_1000_steps": float(p_slope * 1000),
        "target": floor["pesq_wb"],
        "steps_to_target": float((floor["pesq_wb"] - p_intercept) / p_slope) if p_slope > 0 else None,
    }
    return out


def hours(steps: float | None, last: float, seconds: float | None) -> float | None:
    """CPU hours from step ``last`` to ``steps`` at ``seconds`` per step (``None`` when either is unknown)."""
    if steps is None or seconds is None:
        return None
    return max(steps - last, 0.0) * seconds / 3600


def parse_curve(spec: str) -> tuple[Path, str, float]:
    """``PATH:LABEL:FLOOR`` (the label may contain spaces, not colons)."""
    parts = spec.rsplit(":", 2)
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"--curve {spec!r}: expected PATH:LABEL:FLOOR")
    path, label, floor = parts
    try:
        return Path(path), label, float(floor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--curve {spec!r}: FLOOR {floor!r} is not a number") from None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curve", type=parse_curve, action="append", required=True, help="PATH:LABEL:FLOOR")
    parser.add_argument("--min-step", type=int, default=1500, help="fit the curves from this step on")
    parser.add_argument("--tail", type=int, default=5, help="points of the linear (optimistic) tail fit")
    parser.add_argument("--heldout", type=Path, default=None, help="held-out checkpoint rows (JSON)")
    parser.add_argument("--wer-margin", type=float, default=0.05, help="the WER target: floor + this")
    parser.add_argument("--seconds-per-step", nargs="*", default=[], help="LABEL=SECONDS measured here")
    parser.add_argument("--horizon", type=int, default=40_000, help="the plot's last step")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    seconds = {}
    for item in args.seconds_per_step:
        label, _, value = item.rpartition("=")
        if not label:
            parser.error(f"--seconds-per-step {item!r}: expected LABEL=SECONDS")
        seconds[label] = float(value)

    from accelerando.metrics.report import _pyplot, environment, save_figure, write_results

    plt = _pyplot()
    fig, axes = plt.subplots(
        1, 2 if args.heldout else 1, figsize=(11 if args.heldout else 6, 3.8), squeeze=False
    )
    payload: dict[str, Any] = {"benchmark": "vocoder_reach", "environment": environment(), "curves": {}}
    ax = axes[0][0]
    grid = np.geomspace(100, args.horizon, 200)
    for path, label, floor in args.curve:
        if not path.is_file():
            parser.error(f"--curve {path}: no such file")
        curves = json.loads(path.read_text()).get("curves", {})
        if label not in curves:
            parser.error(f"--curve {path}: no curve {label!r} (it has {sorted(curves)})")
        points = [p for p in curves[label] if "val_mstft" in p]
        steps = [p["step"] for p in points if p["step"] >= args.min_step]
        values = [p["val_mstft"] for p in points if p["step"] >= args.min_step]
        if len(steps) < 4:
            parser.error(f"--curve {path}:{label}: {len(steps)} points from step {args.min_step}; need 4")
        fit = fit_curve(steps, values, floor, args.tail)
        last = fit["last"]["step"]
        fit["seconds_per_step"] = seconds.get(label)
        fit["cpu_hours_to_floor"] = {
            "power_law": hours(fit["power_law"]["steps_to_floor"], last, seconds.get(label)),
            "linear_tail": hours(fit["linear_tail"]["steps_to_floor"], last, seconds.get(label)),
        }
        payload["curves"][label] = {"source": str(path), **fit}
        line = ax.plot([p["step"] for p in points], [p["val_mstft"] for p in points], "o", ms=3, label=label)[
            0
        ]
        pl = fit["power_law"]
        ahead = grid[grid >= steps[0]]
        ax.plot(ahead, power_law(ahead, pl["asymptote"], pl["b"], pl["c"]), "-", color=line.get_color(), lw=1)
        ax.axhline(floor, ls=":", color=line.get_color(), lw=1)
        print(
            f"{label}: asymptote {pl['asymptote']:.3f} vs floor {floor} -> power law "
            f"{pl['steps_to_floor']}, linear tail {fit['linear_tail']['steps_to_floor']} steps; CPU h "
            f"{fit['cpu_hours_to_floor']}"
        )
    ax.set_xscale("log")
    ax.set_xlabel("training step")
    ax.set_title("validation M-STFT, fits a + b·step^-c; dotted: Griffin-Lim", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if args.heldout:
        data = json.loads(args.heldout.read_text())
        rows, floor = data["rows"], data["floor"]
        fit = fit_heldout(rows, floor, args.wer_margin)
        label = data.get("label", args.heldout.stem)
        last = max(r["step"] for r in rows)
        for key in ("copy_wer", "pesq_wb"):
            fit[key]["cpu_hours"] = hours(fit[key]["steps_to_target"], last, seconds.get(label))
        payload["heldout"] = {"source": str(args.heldout), "label": label, "rows": rows, **fit}
        ax = axes[0][1]
        s = np.asarray([r["step"] for r in rows], float)
        ax.plot(s, [r["copy_wer"] for r in rows], "o", color="C0", label=f"{label}: copy WER")
        ax.plot(
            grid,
            fit["copy_wer"]["scale"] * grid ** fit["copy_wer"]["exponent"],
            color="C0",
            lw=1,
        )
        ax.axhline(fit["copy_wer"]["target"], ls=":", color="C0", lw=1)
        ax2 = ax.twinx()
        ax2.plot(s, [r["pesq_wb"] for r in rows], "s", color="C3", label="PESQ-wb")
        ax2.axhline(floor["pesq_wb"], ls=":", color="C3", lw=1)
        ax2.set_ylabel("PESQ-wb (dotted: Griffin-Lim)", color="C3", fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("Turbo training step")
        ax.set_ylabel("copy WER (dotted: Griffin-Lim + margin)", color="C0", fontsize=8)
        ax.set_title("held-out intelligibility benchmark, per checkpoint", fontsize=9)
        ax.grid(alpha=0.3)
        print(f"{label} held-out: {json.dumps({k: fit[k] for k in ('copy_wer', 'pesq_wb')})}")
    save_figure(fig, args.results_dir / "vocoder_reach.png")
    write_results(args.results_dir / "vocoder_reach.json", payload)
    print(f"wrote {args.results_dir / 'vocoder_reach.json'} and .png")
    return payload


if __name__ == "__main__":
    main()
