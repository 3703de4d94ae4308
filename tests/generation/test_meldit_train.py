"""The MelDiT training script: collation, noise-level sampling, and a few steps end to end on fake notes."""

from __future__ import annotations

import math

import pytest
import torch
from meldit_tiny import TINY

from accelerando.generation import MelDiT
from accelerando.generation import train as meldit_train
from accelerando.generation.mel_dit import PRESETS


def _note(frames: int, program: int = 1, n_mels: int = 16) -> dict:
    return {"mel": torch.randn(n_mels, frames) - 5, "program": program, "pitch": 60, "velocity": 100}


def test_collate_crops_and_pads_with_silence():
    batch = meldit_train.collate_notes([_note(20), _note(10, program=3)], num_frames=16)
    assert batch["mel"].shape == (2, 1, 16, 16)
    assert batch["program"].tolist() == [1, 3] and batch["pitch"].dtype == torch.long
    assert torch.all(batch["mel"][1, 0, :, 10:] == math.log(1e-5))


def test_sample_sigmas():
    for kind in ("uniform", "logit_normal", "mode", "cosmap"):
        s = meldit_train.sample_sigmas(1000, kind, torch.device("cpu"), torch.Generator().manual_seed(0))
        assert s.shape == (1000,) and 0 <= s.min() and s.max() <= 1
    with pytest.raises(ValueError, match="'cosmap'"):
        meldit_train.sample_sigmas(4, "karras", torch.device("cpu"))  # the error lists the kinds


def test_train_script_runs_and_saves_a_loadable_model(tmp_path, monkeypatch):
    monkeypatch.setitem(PRESETS, "tiny", {k: v for k, v in TINY.items() if k != "num_frames"})
    monkeypatch.setattr(meldit_train, "build_dataset", lambda args: [_note(16, p % 8) for p in range(8)])
    args = meldit_train.parse_args(
        ["--data_dir", str(tmp_path), "--output_dir", str(tmp_path / "out"), "--preset", "tiny", "--num_frames", "16",
         "--train_batch_size", "4", "--max_train_steps", "3", "--checkpointing_steps", "2", "--use_ema"]
    )  # fmt: skip
    model = meldit_train.main(args)
    assert isinstance(model, MelDiT)
    folders = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "checkpoint-2" in folders
    model_dirs = [p for p in (tmp_path / "out").iterdir() if (p / "config.json").is_file()]
    assert model_dirs, folders
    loaded = MelDiT.from_pretrained(model_dirs[0])
    assert loaded.config.hidden_size == TINY["hidden_size"]
    assert loaded.config.trained_programs == list(range(8))  # recorded from the training notes


def test_init_model_continues_a_pipeline_and_a_resume_needs_no_init(tmp_path, monkeypatch):
    from diffusers import FlowMatchEulerDiscreteScheduler

    from accelerando.generation import MelDiTPipeline

    monkeypatch.setattr(meldit_train, "build_dataset", lambda args: [_note(16, p % 8) for p in range(8)])
    torch.manual_seed(0)
    start = MelDiT(**{**TINY, "num_frames": 16})
    MelDiTPipeline(transformer=start, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0)).save_pretrained(
        tmp_path / "shipped"
    )
    flags = ["--data_dir", str(tmp_path), "--output_dir", str(tmp_path / "out"), "--train_batch_size", "4",
             "--checkpointing_steps", "1", "--init_model", str(tmp_path / "shipped")]  # fmt: skip
    # the preset's num_frames (128) is replaced by the continued model's (16); lr 1e-12 leaves the weights as loaded
    model = meldit_train.main(
        meldit_train.parse_args([*flags, "--max_train_steps", "1", "--learning_rate", "1e-12"])
    )
    assert model.config.hidden_size == TINY["hidden_size"] and model.config.num_frames == 16
    for name, value in start.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], value)
    import shutil

    shutil.rmtree(tmp_path / "shipped")  # a resumed run builds its model from its own checkpoint
    resumed = meldit_train.main(
        meldit_train.parse_args([*flags, "--max_train_steps", "2", "--resume_from_checkpoint", "latest"])
    )
    assert resumed.config.hidden_size == TINY["hidden_size"]
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        meldit_train.load_init_model(str(tmp_path / "no-such-model"))


def test_low_notes_can_be_shown_more_often():
    notes = [{**_note(16), "pitch": p} for p in (30, 40, 41, 60)]
    assert meldit_train.oversample_low_notes(notes, below=41, repeats=1) is notes  # the plain split
    seen = meldit_train.oversample_low_notes(notes, below=41, repeats=3)
    assert sorted(seen[i]["pitch"] for i in range(len(seen))) == [30, 30, 30, 40, 40, 40, 41, 60]
    args = meldit_train.parse_args(["--data_dir", "x", "--low_note_repeats", "4", "--low_note_below", "45"])
    assert (args.low_note_repeats, args.low_note_below) == (4, 45)
    with pytest.raises(SystemExit):
        meldit_train.parse_args(["--data_dir", "x", "--low_note_repeats", "0"])
