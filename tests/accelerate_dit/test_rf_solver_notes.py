"""benchmarks/rf_solver_notes.py's core on a tiny MelDiT: the JSON's structure and the invariants that must hold."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from meldit_tiny import TINY, randomize

from accelerando.accelerate_dit import RFEditConfig
from accelerando.generation import MelDiT, MelDiTPipeline, NoteClassifier
from accelerando.metrics.report import write_results

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "rf_solver_notes.py"
_SPEC = importlib.util.spec_from_file_location("bench_rf_solver_notes", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)

BUDGETS = (3, 6)
NUM = 3


def _pipe(model: MelDiT) -> MelDiTPipeline:
    pipe = MelDiTPipeline(model.eval(), FlowMatchEulerDiscreteScheduler(shift=3.0))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def classifier() -> NoteClassifier:
    torch.manual_seed(0)
    return NoteClassifier(
        programs=range(8), families=["a", "a", "b", "b", "c", "c", "d", "d"], n_mels=16, num_frames=32,
        min_frames=16, channels=(4, 4, 4, 4), freq_channels=2, embedding_dim=8,
    ).eval()  # fmt: skip


@pytest.fixture(scope="module")
def notes() -> dict:
    gen = torch.Generator().manual_seed(0)
    mel = torch.full((NUM, 16, 16), -11.5)
    mel[:, 4:12, 2:] = torch.randn(NUM, 8, 14, generator=gen) - 3  # silence, then a "note" from frame 2
    return {
        "mel": mel,
        "program": torch.tensor([0, 1, 2]),
        "pitch": torch.tensor([60, 64, 67]),
        "velocity": torch.tensor([80, 40, 120]),
        "id": ["a", "b", "c"],
    }


def test_structure_on_a_random_model(classifier, notes, tmp_path):
    two = {k: v[:2] for k, v in notes.items()}  # the full measurement (Griffin-Lim, pYIN) on two notes
    results = bench.run(_pipe(randomize(MelDiT(**TINY))), classifier, two, torch.tensor([3, 4]), BUDGETS,
                        RFEditConfig(num_steps=2, inject_steps=1), batch_size=1, griffin_lim_iters=2)  # fmt: skip
    recon = results["reconstruction"]
    assert set(recon["solvers"]) == {"euler", "rf_solver_2", "rf_solver_3", "fireflow"}
    expected_nfe = {"euler": [3, 6], "rf_solver_2": [2, 6], "rf_solver_3": [3, 6], "fireflow": [3, 6]}
    for name, rows in recon["solvers"].items():
        assert [r["nfe_budget"] for r in rows] == list(BUDGETS)
        assert [r["nfe_per_direction"] for r in rows] == expected_nfe[name]
        for r in rows:
            assert all(math.isfinite(r[k]) for k in ("mel_l1", "mel_l1_db", "psnr_db", "psnr_db_min"))
            assert r["mel_l1"] > 0
            assert r["mel_l1_db"] == pytest.approx(
                r["mel_l1"] * 3.0 * 20 / math.log(10), rel=1e-5
            )  # mel_std 3
            assert r["psnr_db_min"] <= r["psnr_db"]
    edit = results["edit"]
    assert edit["inject_blocks"] == [1] and edit["nfe_per_direction"] == 4
    assert 0 < edit["inject_until_sigma"] < 1
    assert set(edit["methods"]) == set(bench.EDIT_METHODS)
    for row in edit["methods"].values():
        for key in (
            "target_instrument_recognised",
            "source_instrument_recognised",
            "source_pitch_recognised",
        ):
            assert 0.0 <= row[key] <= 1.0
        assert len(row["pitch_error_vs_source"]["per_note_cents"]) == 2
        assert len(row["pitch_error_vs_midi"]["per_note_cents"]) == 2
        assert row["onset_difference_ms"]["n"] == 2
        assert math.isfinite(row["envelope_l1_db"]) and row["mel_l1_db_vs_source"] > 0
    assert [n["target_program"] for n in results["notes"]] == [3, 4]
    path = write_results(tmp_path / "r.json", {"suite": "rf-solver-notes", **results})
    assert json.loads(path.read_text())["edit"]["inject_steps"] == 1
    bench.plot(json.loads(path.read_text()), tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 0


@pytest.mark.parametrize("velocity", ["zero", "constant"])
def test_trivial_velocity_fields_reconstruct_exactly(notes, velocity):
    """Every solver integrates a velocity that depends on neither x nor sigma exactly, so inversion followed by
    regeneration on the same schedule returns the source (up to float32 rounding); with zero velocity every
    inversion-based edit is the source itself."""
    model = MelDiT(**TINY).eval()  # adaLN-zero: the output layer starts at zero, so the velocity is 0
    if velocity == "constant":
        with torch.no_grad():
            model.proj_out_2.bias.copy_(torch.randn(model.proj_out_2.bias.shape, generator=torch.Generator()))
    labels = (notes["program"], notes["pitch"], notes["velocity"])
    recon = bench.reconstruction(model, notes["mel"], labels, BUDGETS, batch_size=2)
    for rows in recon.values():
        for r in rows:
            assert r["mel_l1"] < (1e-12 if velocity == "zero" else 1e-5), r
    if velocity == "zero":
        labels = dict(zip(("program", "pitch", "velocity"), labels))
        edited = bench.edits(_pipe(model), notes["mel"], labels, torch.tensor([3, 4, 5]), RFEditConfig(2, 1))
        assert set(edited) == set(bench.EDIT_METHODS)
        for method in ("rf_edit", "rf_solver", "euler"):
            torch.testing.assert_close(
                edited[method], notes["mel"], rtol=0, atol=1e-5
            )  # normalise round trip


def test_onsets_targets_and_errors(notes):
    assert bench.onset_frames(notes["mel"]).tolist() == [2, 2, 2]
    targets = bench.choose_targets(
        torch.tensor([0, 1, 1]),
        torch.tensor([30, 60, 90]),
        [0, 1, 2, 3],
        {0: (20, 40), 2: (50, 70), 3: (80, 99)},
    )
    assert targets[1:].tolist() == [2, 3]  # the one other program that plays each pitch
    assert targets[0].item() in (1, 2, 3)  # no other program plays pitch 30: any other one
    with pytest.raises(ValueError, match="no program other than the source 1"):
        bench.choose_targets(torch.tensor([1]), torch.tensor([60]), [1])
    with pytest.raises(ValueError, match=r"NFE budgets must be at least 3.*\[2\]"):
        bench.reconstruction(MelDiT(**TINY), notes["mel"], (notes["program"],) * 3, [2, 6])
    with pytest.raises(ValueError, match="targets must be"):
        bench.run(_pipe(MelDiT(**TINY)), None, notes, notes["program"])
