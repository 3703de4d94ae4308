"""The one loader: bundled names, model folders, training outputs; the class from the config; clear errors."""

from __future__ import annotations

import pytest
import torch

import accelerando.pretrained as pretrained
from accelerando.pretrained.loading import MEL_VOCODERS, load, load_mel_vocoder, resolve
from accelerando.vocoders import FreGrad, GriffinLim, PeriodWave, PeriodWaveTurbo


def test_resolves_bundled_names_folders_and_training_outputs(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path / "pretrained")
    torch.manual_seed(0)
    model = FreGrad.from_preset("small", residual_layers=2)
    model.save_pretrained(tmp_path / "pretrained" / "fregrad-x")
    model.save_pretrained(tmp_path / "run" / "checkpoint-5" / "model")
    assert resolve("fregrad-x") == tmp_path / "pretrained" / "fregrad-x"
    assert resolve(tmp_path / "run" / "checkpoint-5") == tmp_path / "run" / "checkpoint-5" / "model"
    for source in (
        "fregrad-x",
        tmp_path / "run" / "checkpoint-5",
        tmp_path / "run" / "checkpoint-5" / "model",
    ):
        loaded = load(source)
        assert type(loaded) is FreGrad and not loaded.training
        torch.testing.assert_close(loaded.state_dict(), model.state_dict())
    with pytest.raises(FileNotFoundError, match="neither a bundled checkpoint \\(fregrad-x\\)"):
        resolve("nothing-here")


def test_picks_the_class_from_the_config_and_checks_expectations(tmp_path):
    turbo = PeriodWaveTurbo.from_periodwave(PeriodWave.from_preset("tiny"))
    turbo.save_pretrained(tmp_path / "turbo")
    assert type(load(tmp_path / "turbo", expect=MEL_VOCODERS)) is PeriodWaveTurbo
    with pytest.raises(ValueError, match="holds a 'PeriodWaveTurbo'; expected one of: MelDiT"):
        load(tmp_path / "turbo", expect=("MelDiT",))
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text('{"_class_name": "Mystery"}')
    with pytest.raises(ValueError, match="'Mystery', which is not an accelerando model"):
        load(tmp_path / "odd")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load(tmp_path / "bad")


def test_mel_vocoder_names_griffin_lim_and_the_measured_default(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    assert isinstance(load_mel_vocoder("griffin-lim"), GriffinLim)
    assert isinstance(load_mel_vocoder("Griffin_Lim"), GriffinLim)
    assert isinstance(load_mel_vocoder(None), GriffinLim)  # nothing measured in this folder
