"""The measured defaults: ``default_vocoder`` / ``default_voice`` on hand-made evaluation files, and
``record_evaluation``; the intelligibility benchmark's ``--record`` payload and its refusal of partial runs."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from accelerando.pretrained.defaults import (
    EVALUATION_FILE,
    GRIFFIN_LIM,
    default_vocoder,
    default_voice,
    read_evaluation,
    record_evaluation,
)

FLOOR = {"wer_copy": 0.08, "wer_tts": 0.23, "mstft": 1.70, "pesq_wb": 2.56, "vuv_f1": 0.98, "rtf": 0.3}
WORSE = {"wer_copy": 0.89, "wer_tts": 0.91, "mstft": 1.94, "pesq_wb": 1.03, "vuv_f1": 0.01, "rtf": 0.7}
BETTER = {"wer_copy": 0.07, "wer_tts": 0.20, "mstft": 1.20, "pesq_wb": 3.10, "vuv_f1": 0.95, "rtf": 0.4}
BEST = {"wer_copy": 0.09, "wer_tts": 0.15, "mstft": 1.30, "pesq_wb": 3.00, "vuv_f1": 0.93, "rtf": 0.5}


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """A stand-in for ``accelerando/pretrained``: fake checkpoint folders, no evaluation yet."""
    for name, cls in (
        ("fregrad-x", "FreGrad"),
        ("periodwave-turbo-s-x", "PeriodWaveTurbo"),
        ("fastpitch-x", "IncrementalFastPitch"),
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps({"_class_name": cls}), encoding="utf-8")
    return tmp_path


def _write(folder: Path, vocoders: dict[str, Any], voices: dict[str, Any] | None = None) -> None:
    payload = {"benchmark": "speech_intelligibility", "vocoders": vocoders, "voices": voices or {}}
    (folder / EVALUATION_FILE).write_text(json.dumps(payload), encoding="utf-8")


def test_no_evaluation_file_gives_griffin_lim(folder: Path) -> None:
    choice = default_vocoder(folder)
    assert choice.name == GRIFFIN_LIM
    assert "no held-out measurement" in choice.reason and EVALUATION_FILE in choice.reason
    assert read_evaluation(folder) is None


def test_neural_rows_worse_than_the_floor_give_griffin_lim(folder: Path) -> None:
    nearly = {**BETTER, "pesq_wb": 2.0}  # beats the floor on everything but PESQ-wb
    _write(folder, {GRIFFIN_LIM: FLOOR, "fregrad-x": WORSE, "periodwave-turbo-s-x": nearly})
    choice = default_vocoder(folder)
    assert choice.name == GRIFFIN_LIM and choice.measured == FLOOR
    # the best of the neural ones (lowest copy WER) is named, with what it falls short on
    assert "periodwave-turbo-s-x" in choice.reason and "fregrad-x" not in choice.reason
    assert "PESQ-wb 2.00 vs 2.56" in choice.reason
    assert "wer" not in choice.reason.split("periodwave-turbo-s-x")[1]  # its WERs are fine

    _write(folder, {GRIFFIN_LIM: FLOOR, "fregrad-x": WORSE})
    reason = default_vocoder(folder).reason
    assert "fregrad-x" in reason
    for short in ("wer copy 0.89 vs 0.08", "wer tts 0.91 vs 0.23", "M-STFT 1.94 vs 1.70", "V/UV F1 0.01"):
        assert short in reason, reason


def test_wer_within_the_margin_still_qualifies(folder: Path) -> None:
    close = {**BETTER, "wer_copy": FLOOR["wer_copy"] + 0.04, "wer_tts": FLOOR["wer_tts"] + 0.04}
    _write(folder, {GRIFFIN_LIM: FLOOR, "fregrad-x": close})
    assert default_vocoder(folder).name == "fregrad-x"
    _write(folder, {GRIFFIN_LIM: FLOOR, "fregrad-x": {**close, "wer_tts": FLOOR["wer_tts"] + 0.06}})
    choice = default_vocoder(folder)
    assert choice.name == GRIFFIN_LIM and "wer tts 0.29 vs 0.23" in choice.reason


def test_a_row_that_beats_the_floor_is_the_default(folder: Path) -> None:
    _write(folder, {GRIFFIN_LIM: FLOOR, "fregrad-x": BETTER, "periodwave-turbo-s-x": WORSE})
    choice = default_vocoder(folder)
    assert choice.name == "fregrad-x" and choice.measured == BETTER
    assert "0.20" in choice.reason and "0.23" in choice.reason  # its TTS WER against the floor's


def test_of_two_that_beat_the_floor_the_lower_tts_wer_wins(folder: Path) -> None:
    _write(folder, {GRIFFIN_LIM: FLOOR, "fregrad-x": BETTER, "periodwave-turbo-s-x": BEST})
    assert (
        default_vocoder(folder).name == "periodwave-turbo-s-x"
    )  # wer_tts 0.15 < 0.20 (its copy WER is higher)
    _write(folder, {GRIFFIN_LIM: FLOOR, "fregrad-x": BEST, "periodwave-turbo-s-x": BETTER})
    assert default_vocoder(folder).name == "fregrad-x"


def test_a_row_of_a_vocoder_that_is_not_bundled_is_ignored(folder: Path) -> None:
    _write(folder, {GRIFFIN_LIM: FLOOR, "fregrad-gone": BEST, "fregrad-x": BETTER})
    assert default_vocoder(folder).name == "fregrad-x"
    _write(folder, {GRIFFIN_LIM: FLOOR, "fregrad-gone": BEST})
    choice = default_vocoder(folder)
    assert (
        choice.name == GRIFFIN_LIM and "no bundled neural vocoder has a recorded measurement" in choice.reason
    )


def test_default_voice_is_the_lowest_recorded_wer(folder: Path) -> None:
    voices = ["espeak-en-gb", "kal", "slt"]
    assert default_voice(voices, folder) == "espeak-en-gb"  # nothing recorded: the first voice
    assert default_voice([], folder) is None
    _write(folder, {GRIFFIN_LIM: FLOOR}, {"espeak-en-gb": 0.4, "kal": 0.35, "slt": 0.22, "gone": 0.01})
    assert default_voice(voices, folder) == "slt"  # "gone" is not among the voices
    assert default_voice(["espeak-en-gb", "kal"], folder) == "kal"
    assert default_voice(["ked", "espeak-en-gb"], folder) == "espeak-en-gb"
    assert default_voice(["ked", "awb"], folder) == "ked"  # none of them measured: the first
    _write(folder, {GRIFFIN_LIM: FLOOR}, {"kal": None, "slt": 0.5})
    assert default_voice(["kal", "slt"], folder) == "slt"  # an unmeasured (null) WER is skipped


def test_record_evaluation_needs_the_griffin_lim_row(folder: Path) -> None:
    with pytest.raises(ValueError, match="griffin-lim"):
        record_evaluation({"vocoders": {"fregrad-x": BETTER}}, folder)
    with pytest.raises(ValueError, match="griffin-lim"):
        record_evaluation({"voices": {"slt": 0.2}}, folder)
    assert not (folder / EVALUATION_FILE).exists()


def test_record_evaluation_writes_atomically(folder: Path, monkeypatch) -> None:
    payload = {
        "benchmark": "speech_intelligibility",
        "sentences": 36,
        "vocoders": {GRIFFIN_LIM: FLOOR, "fregrad-x": BETTER},
        "voices": {"slt": 0.23, "kal": 0.3},
        "note": "test",
    }
    path = record_evaluation(payload, folder)
    assert path == folder / EVALUATION_FILE
    assert read_evaluation(folder) == payload
    assert default_vocoder(folder).name == "fregrad-x" and default_voice(["kal", "slt"], folder) == "slt"
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == [EVALUATION_FILE]  # no temp file left

    # a write that fails half-way leaves the previous evaluation whole and no temp file behind
    def broken_write(self: Path, text: str, *args: Any, **kwargs: Any) -> int:
        with open(self, "w", encoding="utf-8") as f:
            f.write(text[:10])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", broken_write)
    with pytest.raises(OSError, match="disk full"):
        record_evaluation({**payload, "vocoders": {GRIFFIN_LIM: FLOOR}}, folder)
    monkeypatch.undo()
    assert read_evaluation(folder) == payload
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == [EVALUATION_FILE]


# ------------------------------------------------------------------ the benchmark's --record


@pytest.fixture(scope="module")
def bench():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "speech_intelligibility.py"
    spec = importlib.util.spec_from_file_location("speech_intelligibility_bench", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.mark.parametrize(
    "flags",
    [
        ["--max-sentences", "3"],
        ["--no-voices"],
        ["--no-tts"],
        ["--no-copy"],
        ["--no-dev"],
        ["--acoustic", "x"],
    ],
)
def test_record_refuses_a_partial_run(bench, flags: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as err:
        bench.main(["--record", *flags])
    assert err.value.code == 2
    message = capsys.readouterr().err
    assert "--record" in message and flags[0] in message and "partial" in message


def _chain(kind: str, vocoder: str | None, wer: float, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "vocoder": vocoder, "wer": wer, **extra, "items": []}


def _run_payload(rows: dict[str, dict[str, float]]) -> dict[str, Any]:
    chains = {"festival slt (reference)": _chain("reference", None, 0.05)}
    for name, row in rows.items():
        copy = {m: row[m] for m in ("mstft", "pesq_wb", "vuv_f1")}
        chains[f"copy: {name}"] = _chain("copy", name, row["wer_copy"], **copy, rtf=row["rtf"] + 1)
    for name, row in rows.items():
        chains[f"TTS: {name}"] = _chain("tts", name, row["wer_tts"], rtf=row["rtf"])
        if "wer_tts_dev" in row:
            chains[f"TTS dev: {name}"] = _chain("tts_dev", name, row["wer_tts_dev"], rtf=row["rtf"] + 2)
    return {
        "hardware": "a CPU",
        "environment": {"time_utc": "2026-12-02T18:00:00+00:00"},
        "settings": {
            "n_sentences": 36,
            "n_words": 300,
            "sentences_file": "benchmarks/data/intelligibility_sentences.txt",
            "threads": 1,
            "vocoders": {name: {"fingerprint": f"fp-{name}"} for name in rows},
        },
        "tts": {"folder": "/x/fastpitch-x", "fingerprint": "fp-fastpitch"},
        "chains": chains,
        "voices": {"slt": _chain("voice", GRIFFIN_LIM, 0.23), "kal": _chain("voice", GRIFFIN_LIM, 0.31)},
    }


def test_record_payload_has_the_bundled_rows_only(bench, folder: Path) -> None:
    run = _run_payload({GRIFFIN_LIM: FLOOR, "fregrad-x": BETTER, "mine": BEST})  # "mine": a --model extra
    evaluation = bench.evaluation_payload(run, ["fregrad-x"], note="extra words")
    assert set(evaluation["vocoders"]) == {GRIFFIN_LIM, "fregrad-x"}
    assert evaluation["vocoders"]["fregrad-x"] == {**BETTER, "wer_tts_dev": None}  # rtf: the TTS chain's
    assert evaluation["voices"] == {"slt": 0.23, "kal": 0.31}
    assert evaluation["sentences"] == 36 and evaluation["hardware"] == "a CPU"
    assert evaluation["time_utc"].startswith("2026-12-02") and evaluation["note"].endswith("extra words")
    assert evaluation["checkpoints"] == {"fregrad-x": "fp-fregrad-x", "fastpitch-x": "fp-fastpitch"}
    record_evaluation(evaluation, folder)
    assert default_vocoder(folder).name == "fregrad-x"
    assert default_voice(["kal", "slt"], folder) == "slt"


def test_record_payload_needs_every_bundled_vocoder_and_a_whole_floor(bench) -> None:
    run = _run_payload({GRIFFIN_LIM: FLOOR})
    with pytest.raises(ValueError, match="fregrad-x"):
        bench.evaluation_payload(run, ["fregrad-x"])
    run = _run_payload({GRIFFIN_LIM: {**FLOOR, "pesq_wb": float("nan")}})
    with pytest.raises(ValueError, match="pesq_wb"):
        bench.evaluation_payload(run, [])


def test_the_default_must_also_hold_on_the_development_sentences(bench, folder: Path) -> None:
    floor = {**FLOOR, "wer_tts_dev": 0.35}
    lucky = {**BETTER, "wer_tts": 0.26, "wer_tts_dev": 0.42}  # within 0.05 on the test sentences only
    evaluation = bench.evaluation_payload(
        _run_payload({GRIFFIN_LIM: floor, "fregrad-x": lucky}), ["fregrad-x"]
    )
    assert evaluation["vocoders"]["fregrad-x"]["wer_tts_dev"] == 0.42
    record_evaluation(evaluation, folder)
    choice = default_vocoder(folder)
    assert choice.name == GRIFFIN_LIM
    assert "wer tts (development sentences) 0.42 vs 0.35" in choice.reason
    _write(folder, {GRIFFIN_LIM: floor, "fregrad-x": {**lucky, "wer_tts_dev": 0.39}})
    assert default_vocoder(folder).name == "fregrad-x"
    _write(folder, {GRIFFIN_LIM: FLOOR, "fregrad-x": lucky})  # an evaluation from before the dev sentences
    assert default_vocoder(folder).name == "fregrad-x"


def test_a_chain_of_several_draws_reports_their_mean_wer(bench, monkeypatch) -> None:
    heard = iter(["the cat sat", "the cat", "a cat sat", "the hat sat"])  # draw 1: 2 items, draw 2: 2
    monkeypatch.setattr(bench, "transcribe", lambda wav, sr: next(heard))
    wav = np.zeros(256, dtype=np.float32)
    chain = bench.score_chain("TTS: x", "tts", "x", ["the cat sat", "the hat sat"], [[wav, wav], [wav, wav]])
    assert chain["wer_draws"] == pytest.approx([2 / 6, 1 / 6])  # "hat" heard as "cat", "sat" lost; then "a"
    assert chain["wer"] == pytest.approx(0.25)
    assert [item["hypothesis"] for item in chain["items"]] == ["the cat sat", "the cat"]  # the first draw's
    assert chain["items"][1]["wer_draws"] == pytest.approx([2 / 3, 0.0])
    monkeypatch.setattr(bench, "transcribe", lambda wav, sr: "the cat")
    single = bench.score_chain("TTS: y", "tts", "y", ["the cat sat"], [wav])  # one draw: a plain list
    assert single["wer_draws"] == [single["wer"]] == pytest.approx([1 / 3])


def test_vocode_all_draws_differ_and_the_first_is_the_single_draw(bench) -> None:
    from accelerando.vocoders import GriffinLim

    mel = torch.log(torch.rand(1, 80, 20) + 1e-3)
    gl = bench.Vocoder(bench.GRIFFIN_LIM, GriffinLim(n_iter=2), "GriffinLim(2)")
    (one,), _, _ = bench.vocode_all(gl, [mel], "gl", seed=0)
    draws, compute, audio = bench.vocode_all(gl, [mel], "gl", seed=0, draws=2)
    assert len(draws) == 2 and np.array_equal(draws[0][0], one[0])
    assert not np.allclose(draws[0][0], draws[1][0])  # another initial phase
    assert gl.model.seed == 0 and compute > 0 and audio == pytest.approx(2 * 20 * 256 / 22050)


def test_draws_must_be_positive(bench, capsys) -> None:
    with pytest.raises(SystemExit):
        bench.main(["--draws", "0"])
    assert "--draws must be >= 1; got 0" in capsys.readouterr().err
