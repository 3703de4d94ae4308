"""``accelerando synth`` on a tiny random NEWT saved to a tmp folder: output file, --fast and errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from accelerando.audio import save_audio
from accelerando.cli import main
from accelerando.pretrained import PRETRAINED_DIR
from accelerando.vocoders import NEWT

TINY = dict(
    n_harmonics=8, n_waveshapers=4, control_hidden=8, mlp_depth=2, shaper_width=4, shaper_depth=2,
    n_noise_bands=9, noise_ir_length=16, reverb_length=64,
)  # fmt: skip
SR = 22050


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("newt-tiny")
    torch.manual_seed(0)
    NEWT(**TINY).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def hum(tmp_path_factory):
    t = np.arange(int(0.6 * SR)) / SR
    wav = 0.3 * np.sin(2 * np.pi * (180.0 + 20.0 * np.sin(2 * np.pi * 2 * t)) * t)
    return save_audio(tmp_path_factory.mktemp("in") / "hum.wav", wav.astype(np.float32), SR)


def _expected_samples(path) -> int:
    frames = sf.info(str(path)).frames
    return int(round(frames * 16000 / SR)) // 128 * 128


@pytest.mark.parametrize("fast", [False, True])
def test_synth_writes_a_16khz_wav(model_dir, hum, tmp_path, fast, capsys):
    out = tmp_path / "violin.wav"
    argv = [
        "synth",
        "--instrument",
        "violin",
        "--input",
        str(hum),
        "--out",
        str(out),
        "--model",
        str(model_dir),
    ]
    assert main(argv + (["--fast"] if fast else [])) == 0
    data, sr = sf.read(str(out))
    assert sr == 16000 and data.ndim == 1
    assert len(data) == _expected_samples(hum)
    assert np.isfinite(data).all() and np.abs(data).max() <= 1.0
    assert "octave shift" in capsys.readouterr().err


def test_synth_forced_octave_shift(model_dir, hum, tmp_path, capsys):
    argv = ["synth", "--instrument", "cello", "--input", str(hum), "--out", str(tmp_path / "c.wav")]
    assert main(argv + ["--model", str(model_dir), "--octave-shift", "-1"]) == 0
    assert "octave shift -1" in capsys.readouterr().err


def test_missing_input_file(model_dir, tmp_path, capsys):
    argv = [
        "synth",
        "--instrument",
        "violin",
        "--input",
        str(tmp_path / "nope.wav"),
        "--out",
        str(tmp_path / "o.wav"),
    ]
    assert main(argv + ["--model", str(model_dir)]) == 2
    err = capsys.readouterr().err
    assert "nope.wav" in err and "does not exist" in err


def test_unknown_instrument_lists_known(hum, tmp_path, capsys):
    assert (
        main(["synth", "--instrument", "kazoo", "--input", str(hum), "--out", str(tmp_path / "o.wav")]) == 2
    )
    err = capsys.readouterr().err
    assert "'kazoo'" in err and "violin, flute, trumpet, cello, clarinet, alto_sax" in err


def test_missing_bundled_model_names_folder_and_training_command(hum, tmp_path, capsys):
    assert not (PRETRAINED_DIR / "newt-clarinet").exists()  # a known instrument that ships no model
    argv = ["synth", "--instrument", "clarinet", "--input", str(hum), "--out", str(tmp_path / "o.wav")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert str(PRETRAINED_DIR / "newt-clarinet") in err
    assert "accelerando train newt" in err and "--instrument clarinet" in err


@pytest.mark.parametrize("instrument", ["violin", "flute", "trumpet"])
def test_bundled_models_render_the_hum(instrument, hum, tmp_path):
    out = tmp_path / f"{instrument}.wav"
    assert main(["synth", "--instrument", instrument, "--input", str(hum), "--out", str(out), "--fast"]) == 0
    audio, sr = sf.read(out)
    assert sr == 16000 and len(audio) > 0 and np.isfinite(audio).all() and np.abs(audio).max() > 1e-4


def test_model_folder_without_config(hum, tmp_path, capsys):
    argv = ["synth", "--instrument", "violin", "--input", str(hum), "--out", str(tmp_path / "o.wav")]
    assert main(argv + ["--model", str(tmp_path)]) == 2
    assert "no config.json" in capsys.readouterr().err


def test_bad_octave_shift_is_a_usage_error(hum, tmp_path):
    argv = ["synth", "--instrument", "violin", "--input", str(hum), "--out", str(tmp_path / "o.wav")]
    with pytest.raises(SystemExit):
        main(argv + ["--octave-shift", "up"])


def test_model_accepts_a_training_output_dir(model_dir, hum, tmp_path):
    run_dir = tmp_path / "runs" / "newt-flute"
    (run_dir / "model").mkdir(parents=True)
    for f in model_dir.iterdir():
        (run_dir / "model" / f.name).write_bytes(f.read_bytes())
    out = tmp_path / "flute.wav"
    argv = ["synth", "--instrument", "flute", "--input", str(hum), "--out", str(out), "--model", str(run_dir)]
    assert main(argv) == 0 and out.is_file()
