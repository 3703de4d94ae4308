"""Timers return sane structures (times themselves are never asserted)."""

from __future__ import annotations

import json

import pytest
import torch

from accelerando.metrics import LatencyTimer, TimingResult, compare_speed, measure_rtf


def _work() -> torch.Tensor:
    assert torch.is_inference_mode_enabled()
    return torch.ones(64, 64) @ torch.ones(64, 64)


def test_measure_rtf_structure():
    result = measure_rtf(_work, audio_seconds=2.0, warmup=1, repeats=3)
    assert isinstance(result, TimingResult)
    assert result.repeats == 3 and len(result.times_s) == 3 and result.warmup == 1
    assert result.min_s <= result.median_s <= result.max_s and result.iqr_s >= 0
    assert result.rtf == pytest.approx(result.median_s / 2.0)
    assert result.xrt == pytest.approx(1.0 / result.rtf)
    info = result.to_dict()
    json.dumps(info)
    assert info["torch_threads"] == torch.get_num_threads() and info["cpu"] and info["device"] == "cpu"


def test_latency_timer_discards_warmup_blocks():
    timer = LatencyTimer(warmup=2, repeats=1)
    for _ in range(5):
        with timer.record():
            _work()
    assert len(timer.times_s) == 3
    assert timer.result().rtf is None
    with pytest.raises(ValueError, match="no timings"):
        LatencyTimer().result()


def test_compare_speed_interleaves_and_reports_ratios():
    calls: list[str] = []

    def side(name):
        return lambda: calls.append(name)

    out = compare_speed({"a": side("a"), "b": side("b")}, repeats=4, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a"]
    assert out["order"] == ["a", "b"]
    assert out["ratio_to_baseline"]["a"] == pytest.approx(1.0)
    assert set(out["results"]) == {"a", "b"} and out["results"]["b"]["repeats"] == 4
    with pytest.raises(ValueError, match="at least two"):
        compare_speed({"a": _work})
