"""``accelerando bench griffin-lim`` on a tiny LJSpeech-style folder written by the test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from accelerando.audio import save_audio
from accelerando.cli import main
from accelerando.metrics.report import summarize, write_results, write_results_and_plot


def _tone(seconds: float, seed: int) -> np.ndarray:
    t = np.arange(int(seconds * 22050)) / 22050
    f0 = 120.0 + 20.0 * seed
    wav = sum(0.5**k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 8))
    return (0.2 * np.sin(np.pi * t / seconds) * wav).astype(np.float32)


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "speech"
    (root / "wavs").mkdir(parents=True)
    ids = [f"utt{i:03d}" for i in range(4)]
    rows = []
    for i, item_id in enumerate(ids):
        save_audio(root / "wavs" / f"{item_id}.wav", _tone(0.6, i), 22050)
        rows.append(f"{item_id}|Text {i}.|text {i}.|spk{i % 2}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    split = {"train": ids[:1], "validation": ids[1:2], "test": ids[2:]}
    (root / "split.json").write_text(json.dumps(split), encoding="utf-8")
    return root


def test_bench_griffin_lim_writes_json_and_png(corpus: Path, tmp_path: Path, capsys):
    out = tmp_path / "results" / "gl.json"
    code = main(["bench", "griffin-lim", "--corpus", str(corpus), "--n-iter", "4", "--out", str(out)])
    assert code == 0
    payload = json.loads(out.read_text())
    assert payload["suite"] == "griffin-lim"
    assert payload["settings"]["split"] == "test" and payload["settings"]["n_items"] == 2
    assert {item["id"] for item in payload["items"]} == {"utt002", "utt003"}
    assert payload["hardware"]["cpu_model"] and "torch" in payload["versions"]
    for name in ("mstft", "pesq_wb", "stoi", "vuv_f1", "pitch_rmse_cents", "mel_l1", "mcd", "snr"):
        assert name in payload["summary"] and payload["summary"][name]["n"] == 2
    assert payload["speed"]["rtf"] > 0
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert payload["figures"]["metric_distributions"] == png.name
    assert "wrote" in capsys.readouterr().out


def test_bench_errors_are_one_sentence(tmp_path: Path, capsys):
    assert main(["bench", "griffin-lim", "--corpus", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["bench", "griffin-lim"]) == 2
    assert "--corpus" in capsys.readouterr().err


def test_write_results_is_strict_json_and_summarize_skips_non_finite(tmp_path: Path):
    path = write_results(tmp_path / "a" / "r.json", {"x": float("nan"), "y": np.float32(2.5), "z": [np.inf]})
    assert json.loads(path.read_text()) == {"x": None, "y": 2.5, "z": [None]}
    stats = summarize([1.0, 3.0, float("nan"), float("inf")])
    assert stats["mean"] == 2.0 and stats["n"] == 2
    assert summarize([])["mean"] is None


def test_write_results_and_plot_writes_both_next_to_each_other(tmp_path: Path, capsys):
    seen = []

    def plot(payload, path: Path) -> None:
        seen.append((dict(payload), path))
        path.write_bytes(b"png")

    path = write_results_and_plot(tmp_path / "out" / "bench", {"speedup": np.float64(3.5)}, plot)
    assert path == tmp_path / "out" / "bench.json" and json.loads(path.read_text()) == {"speedup": 3.5}
    assert seen == [({"speedup": 3.5}, tmp_path / "out" / "bench.png")]
    assert (tmp_path / "out" / "bench.png").read_bytes() == b"png"
    assert f"wrote {path} and {tmp_path / 'out' / 'bench.png'}" in capsys.readouterr().out


def test_bench_reads_an_instrument_note_corpus(tmp_path: Path):
    notes = tmp_path / "instruments" / "notes"
    (notes / "wavs").mkdir(parents=True)
    header = "id,instrument,program,family,pitch,velocity,sample_rate,seconds"
    rows = [header]
    for i in range(2):
        item_id = f"piano_000-{60 + i:03d}-100"
        save_audio(notes / "wavs" / f"{item_id}.wav", _tone(0.6, i), 22050)
        rows.append(f"{item_id},piano,0,keyboard,{60 + i},100,22050,0.6")
    (notes / "manifest.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    ids = [r.split(",")[0] for r in rows[1:]]
    (notes / "split.json").write_text(json.dumps({"train": [], "validation": [], "test": ids}))
    out = tmp_path / "notes.json"
    args = ["bench", "griffin-lim", "--corpus", str(notes.parent), "--max-items", "1", "--n-iter", "2"]
    assert main([*args, "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["settings"]["n_items"] == 1 and payload["items"][0]["speaker"] == "piano"


def test_benchmark_script_forwards_to_the_cli():
    import importlib.util

    path = Path(__file__).parents[1] / "benchmarks" / "griffin_lim.py"
    spec = importlib.util.spec_from_file_location("bench_griffin_lim_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = module.parse_args(["--corpus", "c", "--max_items", "3", "--out", "o.json"])
    assert argv == [
        "bench",
        "griffin-lim",
        "--corpus",
        "c",
        "--split",
        "test",
        "--n-iter",
        "32",
        "--max-items",
        "3",
        "--out",
        "o.json",
    ]


def test_bench_vocoder_suite_scores_a_saved_fregrad(corpus: Path, tmp_path: Path):
    from accelerando.vocoders import FreGrad

    model_dir = tmp_path / "fregrad"
    FreGrad.from_preset("small", residual_layers=2, residual_channels=4).save_pretrained(model_dir)
    out = tmp_path / "results" / "fregrad.json"
    args = ["bench", "vocoder", "--corpus", str(corpus), "--model", str(model_dir), "--num-steps", "2"]
    assert main([*args, "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["suite"] == "vocoder"
    assert payload["settings"]["model_class"] == "FreGrad" and payload["settings"]["num_steps"] == 2
    assert payload["settings"]["n_items"] == 2 and payload["summary"]["mstft"]["n"] == 2


def test_bench_vocoder_suite_rejects_a_non_vocoder_folder(corpus: Path, tmp_path: Path, capsys):
    from accelerando.generation import MelDiT

    model_dir = tmp_path / "dit"
    MelDiT(hidden_size=32, num_layers=1, num_attention_heads=2, num_frames=16).save_pretrained(model_dir)
    assert main(["bench", "vocoder", "--corpus", str(corpus), "--model", str(model_dir)]) == 2
    assert "holds a 'MelDiT'" in capsys.readouterr().err
