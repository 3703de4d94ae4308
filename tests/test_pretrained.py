"""The bundled-checkpoint index."""

from __future__ import annotations

import pytest

from accelerando.pretrained import PRETRAINED_DIR, list_pretrained, pretrained_path


def test_every_listed_checkpoint_has_config_and_safetensors_and_card():
    for name in list_pretrained():
        folder = PRETRAINED_DIR / name
        assert (folder / "config.json").is_file()
        assert list(folder.glob("*.safetensors")), f"{name} has no safetensors weights"
        assert (folder / "README.md").is_file(), f"{name} has no model card"
        assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pt")), f"{name} ships pickles"


def test_unknown_checkpoint_error_names_it_and_lists_available():
    with pytest.raises(FileNotFoundError, match=r"no bundled checkpoint named 'nope'; available: "):
        pretrained_path("nope")
