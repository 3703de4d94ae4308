"""PeriodWave's two training scripts end to end (2 steps each) on a tiny LJSpeech-style folder."""

from __future__ import annotations

import json

import pytest
from vocoder_corpus import write_tone_corpus

from accelerando.vocoders.periodwave import PeriodWave, PeriodWaveTurbo, train, train_turbo

COMMON = [
    "--segment_frames", "8", "--train_batch_size", "2", "--max_train_steps", "2", "--checkpointing_steps", "2",
    "--num_validation_items", "1", "--validation_seconds", "0.1",
]  # fmt: skip


@pytest.mark.slow
def test_flow_matching_then_turbo_scripts_write_loadable_models(tmp_path):
    ids = write_tone_corpus(tmp_path / "data")
    data = ["--data_dir", str(tmp_path / "data")]
    pw_dir = train.main(
        train.parse_args(
            [
                *data,
                "--output_dir",
                str(tmp_path / "pw"),
                "--preset",
                "tiny",
                "--validation_num_steps",
                "2",
                *COMMON,
            ]
        )
    )
    stats = json.loads((tmp_path / "pw" / train.ENERGY_STATS_FILE).read_text())
    model = PeriodWave.from_pretrained(pw_dir)
    assert model.config.energy_max == pytest.approx(stats["energy_max"]) and model.config.hidden_dim == 32
    assert (tmp_path / "pw" / "checkpoint-2" / "model" / "config.json").is_file()
    assert (tmp_path / "pw" / "validation" / "step-2" / f"{ids[-1]}.wav").is_file()

    def turbo_args(steps: str, *extra: str):
        return train_turbo.parse_args(
            [
                *data, "--output_dir", str(tmp_path / "turbo"), "--pretrained_model_name_or_path", str(pw_dir),
                "--num_steps", "2", "--cqtd_filters", "4", "--mpd_channel_mult", "0.125", *COMMON,
                "--max_train_steps", steps, *extra,
            ]
        )  # fmt: skip

    turbo = PeriodWaveTurbo.from_pretrained(train_turbo.main(turbo_args("2")))
    assert turbo.config.num_steps == 2 and turbo.config.hidden_dim == 32
    assert (tmp_path / "turbo" / "validation" / "step-2" / f"{ids[-1]}.wav").is_file()
    # the checkpoint holds both discriminators and both optimizers, so the adversarial game resumes
    train_turbo.main(turbo_args("3", "--resume_from_checkpoint", "latest"))
    assert (tmp_path / "turbo" / "validation" / "step-3" / f"{ids[-1]}.wav").is_file()
