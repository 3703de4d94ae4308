"""benchmarks/learning_curve.py: a run continued from a shipped checkpoint keeps the curve's history."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "learning_curve.py"
_SPEC = importlib.util.spec_from_file_location("bench_learning_curve", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)


def _log(path: Path, points: dict[int, float]) -> Path:
    path.write_text(
        "".join(
            f"12:00:00 - INFO - x - step {s} validation: {{'val_mel_l1': {v / 2}, 'val_mstft': {v}}}\n"
            for s, v in points.items()
        )
    )
    return path


def test_offset_and_previous_points_make_one_curve(tmp_path):
    first = tmp_path / "first.png"
    bench.main(
        ["--log", str(_log(tmp_path / "a.log", {500: 3.0, 1000: 2.8})), "--label", "fg", "--out", str(first)]
    )
    assert first.is_file()
    again = tmp_path / "again.png"
    bench.main(
        [
            "--previous", str(first.with_suffix(".json")), "--log", str(_log(tmp_path / "b.log", {500: 2.6})),
            "--offset", "1000", "--label", "fg", "--out", str(again),
        ]
    )  # fmt: skip
    curve = json.loads(again.with_suffix(".json").read_text())["curves"]["fg"]
    assert [(p["step"], p["val_mstft"]) for p in curve] == [(500, 3.0), (1000, 2.8), (1500, 2.6)]
    with pytest.raises(SystemExit):
        bench.main(["--log", "x.log", "--offset", "1", "--offset", "2", "--label", "fg", "--out", str(again)])
