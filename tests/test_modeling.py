"""Tests for accelerando.modeling.AccelerandoModel: safe, strict, local save/load."""

from __future__ import annotations

import json
import os

import pytest
import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from accelerando.modeling import WEIGHTS_NAME, AccelerandoModel


class TinyNet(AccelerandoModel):
    @register_to_config
    def __init__(self, in_features: int = 3, hidden: int = 5, out_features: int = 2):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, in) -> (B, out)
        return self.fc2(torch.tanh(self.fc1(x)))


class OtherNet(AccelerandoModel):
    @register_to_config
    def __init__(self, width: int = 4):
        super().__init__()
        self.fc = nn.Linear(width, width)


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = TinyNet(hidden=7)
    path = tmp_path / "tiny"
    model.save_pretrained(path)
    return model, path


def test_round_trip_outputs_and_config(saved):
    model, path = saved
    loaded = TinyNet.from_pretrained(path)
    x = torch.randn(4, 3)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
    assert public(loaded.config) == public(model.config) == {"in_features": 3, "hidden": 7, "out_features": 2}
    assert loaded.config.hidden == 7


def test_only_safetensors_written_and_no_temp_left(saved):
    _, path = saved
    names = sorted(os.listdir(path))
    assert names == ["config.json", WEIGHTS_NAME]
    assert not any(name.endswith(".bin") for name in names)
    assert sorted(os.listdir(path.parent)) == ["tiny"]  # no hidden temp sibling left behind


def test_save_replaces_existing_folder(saved):
    _, path = saved
    (path / "stale.txt").write_text("left from an older save")
    torch.manual_seed(1)
    new = TinyNet(hidden=7)
    new.save_pretrained(path)
    assert not (path / "stale.txt").exists()
    loaded = TinyNet.from_pretrained(path)
    torch.testing.assert_close(loaded.fc1.weight, new.fc1.weight, rtol=0, atol=0)
    assert sorted(os.listdir(path.parent)) == ["tiny"]


def test_refuses_pickle_and_hub(tmp_path):
    model = TinyNet()
    with pytest.raises(ValueError, match="safetensors only"):
        model.save_pretrained(tmp_path / "m", safe_serialization=False)
    with pytest.raises(ValueError, match="local folders only"):
        model.save_pretrained(tmp_path / "m", push_to_hub=True)
    model.save_pretrained(tmp_path / "m")
    with pytest.raises(ValueError, match="safetensors weights only"):
        TinyNet.from_pretrained(tmp_path / "m", use_safetensors=False)


def test_non_main_process_writes_nothing(tmp_path):
    TinyNet().save_pretrained(tmp_path / "m", is_main_process=False)
    assert not (tmp_path / "m").exists()


def test_missing_folder_names_path_and_local_only(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError) as info:
        TinyNet.from_pretrained(missing)
    assert str(missing) in str(info.value)
    assert "local folders only" in str(info.value)
    with pytest.raises(FileNotFoundError, match="local folders only"):
        TinyNet.from_pretrained("some-org/some-hub-model")


def test_folder_without_config(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        TinyNet.from_pretrained(tmp_path / "empty")


def test_missing_weights(saved):
    _, path = saved
    (path / WEIGHTS_NAME).unlink()
    with pytest.raises(ValueError) as info:
        TinyNet.from_pretrained(path)
    assert str(path / WEIGHTS_NAME) in str(info.value)
    assert "missing" in str(info.value)


@pytest.mark.parametrize("keep_bytes", [0, 6, 40, -8])
def test_corrupt_weights(saved, keep_bytes):
    _, path = saved
    weights = path / WEIGHTS_NAME
    data = weights.read_bytes()
    weights.write_bytes(data[:keep_bytes])
    with pytest.raises(ValueError) as info:
        TinyNet.from_pretrained(path)
    assert str(weights) in str(info.value)
    assert "corrupt" in str(info.value)


def test_wrong_class_names_both(saved):
    _, path = saved
    with pytest.raises(ValueError) as info:
        OtherNet.from_pretrained(path)
    assert "TinyNet" in str(info.value) and "OtherNet" in str(info.value)


def test_invalid_config_json(saved):
    _, path = saved
    (path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        TinyNet.from_pretrained(path)


def test_config_is_plain_json(saved):
    _, path = saved
    config = json.loads((path / "config.json").read_text())
    assert config["_class_name"] == "TinyNet"
    assert config["hidden"] == 7


def test_num_parameters():
    model = TinyNet(in_features=3, hidden=5, out_features=2)
    total = 3 * 5 + 5 + 5 * 2 + 2
    assert model.num_parameters() == total
    model.fc1.requires_grad_(False)
    assert model.num_parameters(trainable_only=True) == 5 * 2 + 2
    assert model.num_parameters(only_trainable=True) == 5 * 2 + 2
    assert model.num_parameters() == total


def test_failed_save_leaves_existing_folder_intact(saved, monkeypatch):
    model, path = saved
    before = (path / WEIGHTS_NAME).read_bytes()

    def crash(self, save_directory, **kwargs):
        os.makedirs(save_directory, exist_ok=True)
        (save_directory / "config.json").write_text("{}")  # half a model folder, then the "kill"
        raise KeyboardInterrupt

    monkeypatch.setattr(ModelMixin, "save_pretrained", crash)
    with pytest.raises(KeyboardInterrupt):
        TinyNet(hidden=7).save_pretrained(path)
    assert (path / WEIGHTS_NAME).read_bytes() == before
    assert sorted(os.listdir(path.parent)) == ["tiny"]
    torch.testing.assert_close(TinyNet.from_pretrained(path).fc1.weight, model.fc1.weight, rtol=0, atol=0)


class ScaledNet(AccelerandoModel):
    @register_to_config
    def __init__(self, width: int = 2, scale: float = 1.0):
        super().__init__()
        self.fc = nn.Linear(width, width)


def test_values_registered_after_init_survive_from_config_and_reload(tmp_path):
    """diffusers' from_config drops keys left at their __init__ defaults; a value registered later (a measured
    statistic, the trained labels) must not vanish from an EMA copy or a reload."""
    model = ScaledNet()
    model.register_to_config(scale=0.25)
    assert ScaledNet.from_config(model.config).config.scale == 0.25
    model.save_pretrained(tmp_path / "m")
    assert ScaledNet.from_pretrained(tmp_path / "m").config.scale == 0.25
    assert "scale" in ScaledNet().config["_use_default_values"]  # what diffusers' __init__ records stays
