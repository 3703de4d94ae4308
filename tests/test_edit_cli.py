"""``accelerando edit`` on a tiny saved MelDiT pipeline: output length and clear errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from accelerando.audio import load_audio, save_audio
from accelerando.cli import main
from accelerando.generation import MelDiT, MelDiTPipeline

# The tiny vocoder class lives in tests/generation/meldit_tiny.py; the pipeline loader imports it by module name.
sys.path.insert(0, str(Path(__file__).parent / "generation"))
from meldit_tiny import TINY, TinyVocoder, randomize  # noqa: E402

SR = 22050


@pytest.fixture(scope="module")
def pipe_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("meldit-pipe")
    model = randomize(MelDiT(**{**TINY, "num_programs": 128}).eval())
    MelDiTPipeline(model, vocoder=TinyVocoder(n_mels=TINY["n_mels"], hop=256)).save_pretrained(path)
    return path


@pytest.fixture
def note(tmp_path) -> Path:
    t = np.arange(int(0.3 * SR)) / SR
    wav = 0.3 * np.sin(2 * np.pi * 440.0 * t) * np.exp(-3 * t)
    return save_audio(tmp_path / "note.wav", wav.astype(np.float32), SR)


def test_edit_writes_a_note_of_the_input_length(pipe_dir, note, tmp_path):
    out = tmp_path / "edited.wav"
    args = [
        "edit",
        "--input",
        str(note),
        "--to-instrument",
        "flute",
        "--out",
        str(out),
        "--model",
        str(pipe_dir),
    ]
    assert main([*args, "--pitch", "69", "--steps", "3", "--inject-steps", "1", "--inject-blocks", "1"]) == 0
    edited = load_audio(out, sr=SR)
    assert edited.shape == load_audio(note, sr=SR).shape and torch.isfinite(edited).all()
    # a known source instrument and the estimated pitch also work
    assert main([*args, "--from-instrument", "violin", "--steps", "2"]) == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--to-instrument", "kazoo-ish"], "Unknown instrument 'kazoo-ish'"),
        (["--input", "missing.wav"], "missing.wav does not exist"),
        (["--model", "no/such/folder"], "is not a MelDiTPipeline folder"),
        (["--inject-blocks", "a,b"], "--inject-blocks must be comma-separated"),
        (["--inject-blocks", "7"], "inject_blocks [7] are out of range"),
    ],
)
def test_edit_errors(pipe_dir, note, tmp_path, capsys, extra, message):
    args = {
        "--input": str(note),
        "--to-instrument": "flute",
        "--out": str(tmp_path / "o.wav"),
        "--model": str(pipe_dir),
    }
    args.update(dict(zip(extra[::2], extra[1::2])))
    argv = ["edit", *[x for kv in args.items() for x in kv], "--pitch", "60", "--steps", "2"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err


def test_edit_without_bundled_checkpoint_says_so(note, tmp_path, capsys, monkeypatch):
    import accelerando.pretrained

    monkeypatch.setattr(accelerando.pretrained, "PRETRAINED_DIR", tmp_path)
    argv = ["edit", "--input", str(note), "--to-instrument", "flute", "--out", str(tmp_path / "o.wav")]
    assert main(argv) == 2
    assert "bundled MelDiT checkpoint 'meldit-notes' is not installed" in capsys.readouterr().err
