"""benchmarks/vocoder_reach.py: the fits recover known curves and say when a floor is never reached."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "vocoder_reach.py"
_SPEC = importlib.util.spec_from_file_location("bench_vocoder_reach", _PATH)
reach = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(reach)


def test_power_law_fit_recovers_a_known_curve_and_its_crossing():
    steps = [1500.0 + 500 * i for i in range(12)]
    values = [1.2 + 40.0 * s**-0.5 for s in steps]
    fit = reach.fit_curve(steps, values, floor=1.5, tail=5)
    assert fit["power_law"]["asymptote"] == pytest.approx(1.2, abs=1e-3)
    assert fit["power_law"]["c"] == pytest.approx(0.5, abs=1e-3)
    assert fit["power_law"]["steps_to_floor"] == pytest.approx((40.0 / 0.3) ** 2, rel=1e-3)
    # the straight tail is the optimistic bound: it reaches the floor no later than the power law
    assert fit["linear_tail"]["steps_to_floor"] < fit["power_law"]["steps_to_floor"]


def test_a_curve_levelling_off_above_the_floor_never_reaches_it():
    steps = [1500.0 + 500 * i for i in range(12)]
    fit = reach.fit_curve(steps, [1.9 + 300.0 / s for s in steps], floor=1.74, tail=5)
    assert fit["power_law"]["asymptote"] > 1.74 and fit["power_law"]["steps_to_floor"] is None


def test_heldout_fits_give_the_steps_to_the_targets():
    rows = [{"step": s, "copy_wer": 8.0 * s**-0.5, "pesq_wb": 1.0 + 1e-4 * s} for s in (400, 900, 1600)]
    fit = reach.fit_heldout(rows, {"copy_wer": 0.05, "pesq_wb": 2.0}, wer_margin=0.05)
    assert fit["copy_wer"]["exponent"] == pytest.approx(-0.5) and fit["copy_wer"]["scale"] == pytest.approx(
        8.0
    )
    assert fit["copy_wer"]["steps_to_target"] == pytest.approx((8.0 / 0.1) ** 2, rel=1e-6)
    assert fit["pesq_wb"]["steps_to_target"] == pytest.approx(10_000, rel=1e-6)
    flat = [{**r, "pesq_wb": 1.06} for r in rows]
    assert (
        reach.fit_heldout(flat, {"copy_wer": 0.05, "pesq_wb": 2.0}, 0.05)["pesq_wb"]["steps_to_target"]
        is None
    )
    assert reach.hours(None, 0, 3.0) is None and reach.hours(1000, 400, 36.0) == pytest.approx(6.0)


def test_script_writes_json_and_png_and_names_bad_input(tmp_path: Path):
    curve = {
        "curves": {
            "m": [
                {"step": 1500 + 500 * i, "val_mstft": 1.2 + 40 * (1500 + 500 * i) ** -0.5} for i in range(8)
            ]
        }
    }
    path = tmp_path / "lc.json"
    path.write_text(json.dumps(curve))
    payload = reach.main(
        ["--curve", f"{path}:m:1.5", "--seconds-per-step", "m=2", "--results-dir", str(tmp_path)]
    )
    assert (tmp_path / "vocoder_reach.png").stat().st_size > 0
    saved = json.loads((tmp_path / "vocoder_reach.json").read_text())
    assert saved["curves"]["m"]["seconds_per_step"] == 2.0 == payload["curves"]["m"]["seconds_per_step"]
    assert math.isfinite(saved["curves"]["m"]["cpu_hours_to_floor"]["power_law"])
    with pytest.raises(argparse.ArgumentTypeError, match="FLOOR 'x'"):
        reach.parse_curve(f"{path}:m:x")
    with pytest.raises(SystemExit):
        reach.main(["--curve", f"{path}:nope:1.5", "--results-dir", str(tmp_path)])
