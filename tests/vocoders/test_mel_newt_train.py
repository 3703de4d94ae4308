"""MelNEWT's training script end to end on a tiny LJSpeech-style folder written by the test."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from accelerando.vocoders import MelNEWT
from accelerando.vocoders.newt import mel_train


def _write_corpus(root, n: int = 3, seconds: float = 0.6, sr: int = 22050) -> list[str]:
    (root / "wavs").mkdir(parents=True)
    ids = [f"utt_{i:02d}" for i in range(n)]
    t = np.arange(int(seconds * sr)) / sr
    for i, item_id in enumerate(ids):
        f0 = 140.0 + 30.0 * i
        wav = sum(0.3 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 6))
        wav[: len(t) // 4] = 0.0  # an unvoiced (silent) lead-in
        sf.write(root / "wavs" / f"{item_id}.wav", wav.astype(np.float32), sr, subtype="PCM_16")
    (root / "metadata.csv").write_text("".join(f"{i}|text {i}|text {i}|spk\n" for i in ids))
    split = {"seed": 0, "train": ids[:-1], "validation": ids[-1:], "test": []}
    (root / "split.json").write_text(json.dumps(split))
    return ids


def _config(path) -> str:
    path.write_text(
        json.dumps(
            {
                "hidden": 16,
                "mlp_depth": 2,
                "n_harmonics": 8,
                "n_waveshapers": 2,
                "shaper_width": 4,
                "n_noise_bands": 9,
                "noise_ir_length": 32,
                "n_pitch_bins": 64,
            }
        )  # fmt: skip
    )
    return str(path)


def _args(data, out, config, *extra: str):
    return mel_train.parse_args(
        [
            "--data_dir", str(data), "--output_dir", str(out), "--model_config", config,
            "--segment_frames", "16", "--train_batch_size", "2", "--checkpointing_steps", "2",
            "--num_validation_items", "1", "--validation_seconds", "0.3", *extra,
        ]
    )  # fmt: skip


@pytest.mark.slow
def test_training_caches_f0_saves_a_loadable_model_and_resumes(tmp_path):
    ids = _write_corpus(tmp_path / "corpus")
    out = tmp_path / "run"
    config = _config(tmp_path / "config.json")
    final = mel_train.main(_args(tmp_path / "corpus", out, config, "--max_train_steps", "2", "--use_ema"))

    model = MelNEWT.from_pretrained(final)
    assert model.config.hidden == 16 and not model.config.use_lookup_table
    assert (out / "checkpoint-2" / "model" / "config.json").is_file()
    assert (out / "validation" / "step-2" / f"{ids[-1]}.wav").is_file()
    cached = sorted(p.stem for p in (out / "f0_cache").glob("*.npy"))
    assert cached == ids[:-1]  # pYIN once per training utterance
    f0 = np.load(out / "f0_cache" / f"{ids[0]}.npy")
    voiced = f0[f0 > 0]
    assert len(voiced) > 0 and np.median(voiced) == pytest.approx(140.0, rel=0.03)
    assert (f0[:5] == 0).all()  # the silent lead-in is unvoiced

    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "f0_cache").glob("*.npy")}
    mel_train.main(
        _args(
            tmp_path / "corpus", out, config, "--max_train_steps", "3", "--resume_from_checkpoint", "latest"
        )
    )
    assert (out / "validation" / "step-3" / f"{ids[-1]}.wav").is_file()
    assert {p.name: p.stat().st_mtime_ns for p in (out / "f0_cache").glob("*.npy")} == stamps  # reused


def test_crop_f0_slices_the_utterance_tracks_and_pads_past_the_end():
    tracks = {"a": (torch.arange(1.0, 11.0) * 10, torch.arange(10) % 2 == 0)}
    f0, voiced = mel_train.crop_f0(tracks, ["a", "a"], torch.tensor([2, 8]), 4)
    assert f0.tolist() == [[30.0, 40.0, 50.0, 60.0], [90.0, 100.0, 100.0, 100.0]]
    assert voiced.tolist() == [[True, False, True, False], [True, False, False, False]]


def test_bad_f0_range_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        mel_train.parse_args(["--data_dir", str(tmp_path), "--f0_min", "300", "--f0_max", "200"])
    assert "--f0_max (200.0) must exceed --f0_min (300.0)" in capsys.readouterr().err


@pytest.mark.slow
def test_init_model_from_a_lookup_table_checkpoint_and_input_mels(tmp_path):
    ids = _write_corpus(tmp_path / "corpus")
    config = _config(tmp_path / "config.json")
    first = mel_train.main(_args(tmp_path / "corpus", tmp_path / "a", config, "--max_train_steps", "1"))
    shipped = tmp_path / "shipped"
    MelNEWT.from_pretrained(first).to_fast().save_pretrained(shipped)  # as `recipe --export` ships it
    mels = tmp_path / "gta"
    mels.mkdir()
    for item_id in ids[:-1]:  # an "acoustic model's" mels: the recording's, blurred in time
        audio, _ = sf.read(tmp_path / "corpus" / "wavs" / f"{item_id}.wav", dtype="float32")
        from accelerando.audio import mel_spectrogram

        mel = mel_spectrogram(torch.from_numpy(audio))[0].numpy()
        np.save(mels / f"{item_id}.npy", (mel[:, :-2] + mel[:, 1:-1] + mel[:, 2:]) / 3)
    args = _args(tmp_path / "corpus", tmp_path / "b", config, "--max_train_steps", "2", "--init_model",
                 str(shipped), "--input_mels", str(mels), "--input_mel_prob", "1.0")  # fmt: skip
    model = MelNEWT.from_pretrained(mel_train.main(args))
    assert not model.config.use_lookup_table
    # a resumed run builds its model from its own checkpoint: the --init_model folder may be gone
    shutil.rmtree(shipped)
    resumed = _args(tmp_path / "corpus", tmp_path / "b", config, "--max_train_steps", "3", "--init_model",
                    str(shipped), "--resume_from_checkpoint", "latest")  # fmt: skip
    assert MelNEWT.from_pretrained(mel_train.main(resumed)).config.hidden == 16
    (mels / f"{ids[0]}.npy").unlink()
    with pytest.raises(FileNotFoundError, match=f"{ids[0]}.npy"):
        mel_train.main(args)


def test_swap_input_mels_takes_the_same_frames_of_the_utterance():
    mels = {"a": torch.arange(20.0).expand(2, 20), "b": -torch.arange(20.0).expand(2, 20)}
    crop = torch.zeros(2, 2, 4)
    out = mel_train.swap_input_mels(crop, ["a", "b"], torch.tensor([3, 18]), mels, prob=1.0)
    assert out[0, 0].tolist() == [3.0, 4.0, 5.0, 6.0]
    assert out[1, 1].tolist() == [-18.0, -19.0, 0.0, 0.0]  # past the end: the crop's own frames
    assert crop.abs().sum() == 0  # the input is not changed in place
    torch.testing.assert_close(
        mel_train.swap_input_mels(crop, ["a", "b"], torch.tensor([0, 0]), mels, 0.0), crop
    )


def test_grown_model_keeps_the_trained_weights_and_refuses_a_shrink(tmp_path):
    torch.manual_seed(0)
    trained = MelNEWT(hidden=16, mlp_depth=2, n_harmonics=8, n_waveshapers=2, shaper_width=4, n_noise_bands=9,
                      noise_ir_length=32, n_pitch_bins=64)  # fmt: skip
    grown = mel_train.grown_model(trained, {"aperiodicity_bands": 8})
    assert grown.config.aperiodicity_bands == 8 and grown.training
    for key, value in trained.state_dict().items():
        torch.testing.assert_close(grown.state_dict()[key], value)
    with pytest.raises(ValueError, match="does not extend"):
        mel_train.grown_model(trained, {"hidden": 24})


def test_cycle_crops_and_the_mel_consistency_loss(tmp_path):
    from accelerando.audio import MelConfig, mel_spectrogram

    cfg = MelConfig()
    audio = 0.3 * torch.randn(1, 64 * cfg.hop_length, generator=torch.Generator().manual_seed(0))
    mel = mel_spectrogram(audio, cfg)  # (1, 80, 64), every bin far above the log floor
    assert mel_train.mel_consistency_loss(audio, mel, cfg) < 1e-4  # a recording agrees with its own mel
    assert mel_train.mel_consistency_loss(0.5 * audio, mel, cfg) == pytest.approx(np.log(2), abs=0.05)

    np.save(tmp_path / "long.npy", np.arange(80 * 30, dtype=np.float32).reshape(80, 30))
    np.save(tmp_path / "short.npy", np.zeros((80, 5), dtype=np.float32))  # shorter than a crop: left out
    mels = mel_train.load_cycle_mels(tmp_path, frames=16, n_mels=80)
    assert len(mels) == 1
    crops = mel_train.cycle_crops(mels, 4, 16, torch.Generator().manual_seed(0))
    assert crops.shape == (4, 80, 16)
    for crop in crops:  # consecutive frames of the one mel
        start = int(crop[0, 0])
        torch.testing.assert_close(crop, mels[0][:, start : start + 16])
    with pytest.raises(ValueError, match="no .npy mel of at least 40 frames"):
        mel_train.load_cycle_mels(tmp_path, frames=40, n_mels=80)
    np.save(tmp_path / "wrong.npy", np.zeros((64, 30), dtype=np.float32))
    with pytest.raises(ValueError, match=r"wrong.npy has shape \(64, 30\); expected \(80, frames\)"):
        mel_train.load_cycle_mels(tmp_path, frames=16, n_mels=80)


@pytest.mark.slow
def test_training_with_cycle_mels_logs_the_consistency_loss(tmp_path, caplog):
    _write_corpus(tmp_path / "corpus")
    free = tmp_path / "free"
    free.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):  # "text-to-speech mels" with no recording
        np.save(free / f"s{i}.npy", (rng.standard_normal((80, 24)) - 5).astype(np.float32))
    config = _config(tmp_path / "config.json")
    args = _args(tmp_path / "corpus", tmp_path / "run", config, "--max_train_steps", "2",
                 "--cycle_mels", str(free), "--cycle_batch_size", "2")  # fmt: skip
    with caplog.at_level("INFO"):
        assert MelNEWT.from_pretrained(mel_train.main(args)).config.hidden == 16
    assert "Mel-consistency loss on 2 mels" in caplog.text


def test_bad_cycle_flags_are_clear_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        mel_train.parse_args(["--data_dir", str(tmp_path), "--cycle_mels", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert "--cycle_mels" in err and "is not a folder" in err
    with pytest.raises(SystemExit):
        mel_train.parse_args(["--data_dir", str(tmp_path), "--cycle_weight", "-1"])
    assert "--cycle_weight must be >= 0; got -1.0" in capsys.readouterr().err
