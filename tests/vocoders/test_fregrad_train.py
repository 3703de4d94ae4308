"""FreGrad's training script end to end on a tiny LJSpeech-style folder written by the test."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from accelerando.vocoders import FreGrad
from accelerando.vocoders.fregrad import train


def _write_corpus(root, n: int = 4, seconds: float = 0.6, sr: int = 22050) -> list[str]:
    (root / "wavs").mkdir(parents=True)
    rng = np.random.default_rng(0)
    ids = [f"utt_{i:02d}" for i in range(n)]
    t = np.arange(int(seconds * sr)) / sr
    for i, item_id in enumerate(ids):
        wav = 0.4 * np.sin(2 * np.pi * (150 + 40 * i) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
        wav = wav + 0.01 * rng.standard_normal(t.shape)
        sf.write(root / "wavs" / f"{item_id}.wav", wav.astype(np.float32), sr, subtype="PCM_16")
    (root / "metadata.csv").write_text("".join(f"{i}|text {i}|text {i}|spk\n" for i in ids))
    split = {"seed": 0, "train": ids[:-1], "validation": ids[-1:], "test": []}
    (root / "split.json").write_text(json.dumps(split))
    return ids


def _args(data, out, *extra: str):
    return train.parse_args(
        [
            "--data_dir", str(data), "--output_dir", str(out), "--preset", "small",
            "--segment_frames", "8", "--train_batch_size", "2", "--checkpointing_steps", "2",
            "--num_validation_items", "1", "--validation_num_steps", "2", "--validation_seconds", "0.3",
            *extra,
        ]
    )  # fmt: skip


@pytest.mark.slow
def test_train_script_runs_saves_loadable_models_and_resumes(tmp_path):
    ids = _write_corpus(tmp_path / "corpus")
    out = tmp_path / "run"
    final = train.main(_args(tmp_path / "corpus", out, "--max_train_steps", "2", "--use_ema"))

    stats = json.loads((out / train.ENERGY_STATS_FILE).read_text())
    assert stats["items"] == 3 and stats["energy_max"] == 4.0 and 0 < stats["energy_min"] < 4.0
    model = FreGrad.from_pretrained(final)
    assert model.config.energy_min == pytest.approx(stats["energy_min"])
    assert model.config.residual_layers == 12  # the small preset
    assert (out / "checkpoint-2" / "model" / "config.json").is_file()
    assert (out / "validation" / "step-2" / f"{ids[-1]}.wav").is_file()  # the validation split

    train.main(
        _args(tmp_path / "corpus", out, "--max_train_steps", "3", "--resume_from_checkpoint", "latest")
    )
    assert (out / "validation" / "step-3" / f"{ids[-1]}.wav").is_file()
    assert json.loads((out / train.ENERGY_STATS_FILE).read_text()) == stats  # computed once


def test_parse_args_defaults_follow_the_paper_and_check_energy_max(tmp_path):
    args = train.parse_args(["--data_dir", str(tmp_path)])
    assert (args.train_batch_size, args.learning_rate, args.segment_frames) == (16, 2e-4, 62)
    assert args.preset == "paper" and args.stft_loss_weight == 0.1
    with pytest.raises(SystemExit):
        train.parse_args(["--data_dir", str(tmp_path), "--energy_max", "loud"])


def test_init_model_keeps_the_given_fregrad_and_a_resumed_run_rebuilds_its_checkpoint(tmp_path):
    import torch

    torch.manual_seed(0)
    start = FreGrad.from_preset(
        "small",
        residual_layers=2,
        prior="calibrated",
        prior_scales=[0.1, 1.4],
        prior_split_bin=70,
        precondition=True,
    )
    start.save_pretrained(tmp_path / "start")
    preset_prior = {"energy_min": 0.01, "energy_max": 4.0, "prior": "energy", "std_min": 0.1}
    args = _args(tmp_path, tmp_path / "run", "--init_model", str(tmp_path / "start"))
    model = train.build_model(args, preset_prior)
    assert model.training and model.config.residual_layers == 2 and model.config.prior == "calibrated"
    for key, value in start.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)

    model.save_pretrained(tmp_path / "run" / "checkpoint-4" / "model")  # a run that started from it
    args = _args(tmp_path, tmp_path / "run", "--resume_from_checkpoint", "latest", "--init_model", "gone")
    resumed = train.build_model(args, preset_prior)
    assert resumed.config.residual_layers == 2 and resumed.config.prior == "calibrated"

    fresh = train.build_model(_args(tmp_path, tmp_path / "fresh"), preset_prior)
    assert fresh.config.residual_layers == 12 and fresh.config.prior == "energy"
    with pytest.raises((ValueError, FileNotFoundError), match="nowhere"):
        train.build_model(
            _args(tmp_path, tmp_path / "x", "--init_model", str(tmp_path / "nowhere")), preset_prior
        )


def test_overfit_ids_train_and_validate_on_those_training_utterances(tmp_path):
    from accelerando.vocoders.training_utils import vocoder_datasets

    ids = _write_corpus(tmp_path / "corpus")
    args = _args(tmp_path / "corpus", tmp_path / "run", "--overfit_ids", ids[1], ids[0], ids[1])
    train_utts, crops, valid_utts = vocoder_datasets(args)
    assert [i[0] for i in train_utts.items] == [ids[1], ids[0]] == [i[0] for i in valid_utts.items]
    assert len(crops) == 2  # one random crop per utterance and step
    with pytest.raises(ValueError, match=f"ids not in this dataset: {ids[-1]}"):  # a validation utterance
        vocoder_datasets(_args(tmp_path / "corpus", tmp_path / "run", "--overfit_ids", ids[-1]))
