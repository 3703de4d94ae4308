"""Flow samplers against the exact ODE solution of a Gaussian mixture: error vs NFE, and inversion round trips.

The target is ``GaussianMixtureFlow.default()`` (4 components in 2-D), whose rectified-flow velocity is exact, so
the only error is the solver's. The reference is RK4 with 4000 steps in float64. For each sampler and number of
steps we record the model evaluations (NFE) and the mean L2 distance to the reference at sigma = 0; for inversion
the mean L2 distance of data -> noise -> data with the same solver. Optionally (``--meldit PATH``) the same round
trip on real notes' mels with a MelDiT pipeline folder.

Run::

    OMP_NUM_THREADS=1 python benchmarks/rf_solver_gmm.py  # -> benchmarks/results/rf_solver_gmm.{json,png}
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from accelerando.accelerate_dit.rf_solver import rf_solver_invert
from accelerando.generation import (
    get_sigmas_uniform,
    sample_euler,
    sample_fireflow,
    sample_heun,
    sample_midpoint,
    sample_rf_solver,
)
from accelerando.generation.toy import GaussianMixtureFlow


def _rf3(*args, **kwargs):
    return sample_rf_solver(*args, order=3, **kwargs)


# name: (sampler, NFE for n steps, inversion solver name or None)
SAMPLERS = {
    "euler": (sample_euler, lambda n: n, "euler"),
    "heun": (sample_heun, lambda n: 2 * n, None),
    "midpoint": (sample_midpoint, lambda n: 2 * n, None),
    "rf_solver_2": (sample_rf_solver, lambda n: 2 * n, "rf_solver"),
    "rf_solver_3": (_rf3, lambda n: 3 * n, "rf_solver_3"),
    "fireflow": (sample_fireflow, lambda n: n + 1, "fireflow"),
}
NFE_BUDGETS = (6, 12, 24, 48, 96, 192)


def _counting(model):
    calls = {"n": 0}

    def fn(x, sigma):
        calls["n"] += 1
        return model(x, sigma)

    return fn, calls


def run(num_points: int = 512, seed: int = 0) -> dict:
    gmm = GaussianMixtureFlow.default()
    noise = gmm.sample_noise(num_points, seed=seed)
    exact = gmm.solve(noise, steps=4000)
    data = gmm.sample_data(num_points, seed=seed + 1)
    results: dict = {"sampling": {}, "inversion": {}}
    for name, (sampler, nfe_of, inv_solver) in SAMPLERS.items():
        rows, inv_rows = [], []
        for budget in NFE_BUDGETS:
            n = budget - 1 if name == "fireflow" else budget // nfe_of(1)  # equal NFE for every sampler
            sigmas = get_sigmas_uniform(n).double()
            fn, calls = _counting(gmm.velocity)
            x0 = sampler(fn, noise, sigmas, disable=True)
            err = (x0 - exact).norm(dim=1).mean().item()
            rows.append({"steps": n, "nfe": calls["n"], "error": err})
            if inv_solver is not None:
                z = rf_solver_invert(gmm.velocity, data, sigmas, solver=inv_solver, disable=True)
                back = sampler(gmm.velocity, z, sigmas, disable=True)
                inv_rows.append(
                    {"steps": n, "nfe": 2 * calls["n"], "error": (back - data).norm(dim=1).mean().item()}
                )
        ratios = [a["error"] / b["error"] for a, b in zip(rows, rows[1:])]
        results["sampling"][name] = {
            "rows": rows,
            "error_ratio_per_doubling": ratios,
            "observed_order": [math.log2(r) for r in ratios],
        }
        if inv_rows:
            results["inversion"][name] = {"rows": inv_rows}
    return results


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, res in results["sampling"].items():
        axes[0].loglog([r["nfe"] for r in res["rows"]], [r["error"] for r in res["rows"]], "o-", label=name)
    axes[0].set(xlabel="model evaluations (NFE)", ylabel="mean L2 error vs exact solution",
                title="Sampling a Gaussian mixture (sigma 1 -> 0)")  # fmt: skip
    for name, res in results["inversion"].items():
        axes[1].loglog([r["nfe"] for r in res["rows"]], [r["error"] for r in res["rows"]], "o-", label=name)
    axes[1].set(xlabel="NFE (inversion + regeneration)", ylabel="mean L2 reconstruction error",
                title="Inversion -> regeneration round trip")  # fmt: skip
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="benchmarks/results/rf_solver_gmm.json")
    parser.add_argument("--num-points", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = run(args.num_points, args.seed)
    payload = {
        "benchmark": "rf_solver_gmm",
        "target": "GaussianMixtureFlow.default(): 4 diagonal Gaussians in 2-D, N(0, I) noise",
        "reference": "RK4, 4000 steps, float64",
        "schedule": "uniform sigmas 1 -> 0",
        "num_points": args.num_points,
        "seed": args.seed,
        **results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2))
    plot(results, out.with_suffix(".png"))
    for name, res in results["sampling"].items():
        errs = ", ".join(f"{r['nfe']}:{r['error']:.2e}" for r in res["rows"])
        print(f"{name:12s} NFE:error {errs}")
        print(
            f"{'':12s} ratio per NFE doubling {', '.join(f'{r:.2f}' for r in res['error_ratio_per_doubling'])}"
        )
    for name, res in results["inversion"].items():
        print(f"round trip {name:12s} " + ", ".join(f"{r['nfe']}:{r['error']:.2e}" for r in res["rows"]))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
