"""NEWT's training script end to end on a tiny melody corpus written by the test."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from accelerando.vocoders.newt import NEWT, train

TINY = dict(
    n_harmonics=8, n_waveshapers=4, control_hidden=8, n_noise_bands=9, noise_ir_length=16, reverb_length=64
)


def _write_corpus(root, n: int = 3, frames: int = 20, sr: int = 16000, hop: int = 128) -> None:
    folder = root / "melodies"
    (folder / str(sr) / "wavs").mkdir(parents=True)
    (folder / str(sr) / "controls").mkdir(parents=True)
    ids = [f"mel_{i}" for i in range(n)]
    t = np.arange(frames * hop) / sr
    for i, item_id in enumerate(ids):
        f0 = 220.0 * (i + 1)
        sf.write(
            folder / str(sr) / "wavs" / f"{item_id}.wav",
            0.3 * np.sin(2 * np.pi * f0 * t),
            sr,
            subtype="FLOAT",
        )
        np.savez(
            folder / str(sr) / "controls" / f"{item_id}.npz",
            f0_hz=np.full(frames, f0, np.float32),
            voiced=np.ones(frames, bool),
            loudness_db=np.full(frames, -20.0, np.float32),
            hop_length=np.int64(hop),
        )
    with (folder / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "instrument"])
        writer.writeheader()
        writer.writerows(
            {"id": item_id, "instrument": "flute" if i else "violin"} for i, item_id in enumerate(ids)
        )
    (folder / "split.json").write_text(json.dumps({"train": ids, "validation": [], "test": []}))


def _args(data, out, *extra: str):
    config = out.parent / "tiny_config.json"
    config.write_text(json.dumps(TINY))
    return train.parse_args(
        [
            "--data_dir", str(data), "--output_dir", str(out), "--model_config", str(config),
            "--segment_frames", "17", "--train_batch_size", "2", "--max_train_steps", "3",
            "--checkpointing_steps", "2", *extra,
        ]
    )  # fmt: skip


def test_paper_defaults():
    args = train.parse_args(["--data_dir", "x"])
    assert (args.train_batch_size, args.learning_rate, args.max_grad_norm) == (8, 1e-3, 2.0)
    assert (args.lr_decay, args.lr_decay_interval, args.segment_frames) == (0.9, 10_000, 500)


def test_training_writes_a_loadable_model_and_checkpoints(tmp_path):
    _write_corpus(tmp_path / "data")
    final = train.main(_args(tmp_path / "data", tmp_path / "run", "--instrument", "flute"))
    model = NEWT.from_pretrained(final)
    assert model.config.n_waveshapers == 4
    assert (tmp_path / "run" / "checkpoint-2" / "model").is_dir()
    f0 = np.full((1, 4), 300.0, np.float32)
    assert model.to_fast().synthesize(f0, np.full((1, 4), 0.5, np.float32)).shape == (1, 512)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--instrument", "oboe"), "No training melodies for instrument 'oboe'"),
        (("--segment_frames", "4"), "too short for the MR-STFT loss"),
    ],
)
def test_bad_runs_are_clear_errors(tmp_path, extra, message):
    _write_corpus(tmp_path / "data")
    with pytest.raises(ValueError, match=message):
        train.main(_args(tmp_path / "data", tmp_path / "run", *extra))


def test_training_f0_comes_from_pyin_and_is_cached(tmp_path):
    _write_corpus(tmp_path / "data", frames=40)
    train.main(_args(tmp_path / "data", tmp_path / "run", "--instrument", "flute"))
    cached = sorted((tmp_path / "run" / "f0_cache").glob("*.npy"))
    assert [p.stem for p in cached] == ["mel_1", "mel_2"]  # flute melodies only
    f0 = np.load(cached[0])
    assert f0.shape == (40,)
    voiced = f0[f0 > 0]
    assert len(voiced) > 20
    np.testing.assert_allclose(np.median(voiced), 440.0, rtol=0.01)  # mel_1 is a 440 Hz sine


def test_crops_are_fresh_each_access_and_follow_the_torch_seed(tmp_path):
    import torch

    from accelerando.data import MelodyDataset

    _write_corpus(tmp_path / "data", n=1, frames=60)
    melodies = MelodyDataset(tmp_path / "data", split="train")
    ramp = {"mel_0": torch.arange(60, dtype=torch.float32)}  # f0 override = frame index
    data = train.MelodySegments(melodies, [0], segment_frames=10, hop=128, f0_override=ramp)

    def starts(seed: int) -> list[int]:
        torch.manual_seed(seed)
        return [int(data[0]["f0_hz"][0]) for _ in range(8)]

    assert len(set(starts(0))) > 1  # not one fixed crop per item
    assert starts(0) == starts(0)
    assert all(0 <= s <= 50 for s in starts(1))
