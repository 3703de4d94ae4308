"""The base class of every accelerando model: diffusers ``ModelMixin`` + ``ConfigMixin``, made strict.

``AccelerandoModel`` keeps diffusers' file layout (``config.json`` + ``diffusion_pytorch_model.safetensors``)
and tightens three things:

- ``save_pretrained`` always writes safetensors, and atomically: the folder is written as a hidden temp
  sibling and renamed into place, so a kill mid-write never leaves a half-written model folder;
- ``from_pretrained`` reads local folders only, safetensors only (it never unpickles), and fails with
  a sentence naming the folder or file for the usual mistakes: no such folder, no ``config.json``, a
  config written by another class, a missing or corrupt weights file;
- ``num_parameters(trainable_only=False)`` counts parameters.

Example::

    from diffusers.configuration_utils import register_to_config
    from torch import nn

    from accelerando.modeling import AccelerandoModel


    class TinyMLP(AccelerandoModel):
        @register_to_config
        def __init__(self, in_features: int = 4, hidden: int = 16):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.GELU(), nn.Linear(hidden, 1))

        def forward(self, x):  # (B, in_features) -> (B, 1)
            return self.net(x)


    TinyMLP(hidden=8).save_pretrained("out/tiny")
    model = TinyMLP.from_pretrained("out/tiny")
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from diffusers.configuration_utils import ConfigMixin, FrozenDict
from diffusers.models.modeling_utils import ModelMixin
from safetensors import safe_open

__all__ = ["AccelerandoModel", "replace_dir_atomically"]

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
WEIGHTS_INDEX_NAME = "diffusion_pytorch_model.safetensors.index.json"


def replace_dir_atomically(tmp_dir: str | os.PathLike, final_dir: str | os.PathLike) -> None:
    """Move the complete folder ``tmp_dir`` to ``final_dir``, replacing any folder already there.

    ``tmp_dir`` must be a sibling of ``final_dir`` (same file system) so each rename is atomic. When
    ``final_dir`` exists it is first renamed aside to a hidden ``.<name>.old-<id>`` sibling and deleted only
    after the new folder is in place, so at no moment is a half-written folder visible under ``final_dir``.
    """
    tmp_dir, final_dir = Path(tmp_dir), Path(final_dir)
    if not final_dir.exists():
        os.replace(tmp_dir, final_dir)
        return
    old_dir = final_dir.with_name(f".{final_dir.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(final_dir, old_dir)
    os.replace(tmp_dir, final_dir)
    shutil.rmtree(old_dir, ignore_errors=True)


def _check_safetensors(path: Path) -> None:
    """Raise ``ValueError`` naming ``path`` when it is missing or not a complete safetensors file."""
    if not path.is_file():
        raise ValueError(f"Weights file {path} is missing; accelerando models load safetensors weights only.")
    try:
        # Opening parses the header and checks that its offsets cover the file exactly (catches truncation).
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except Exception as err:  # safetensors raises its own SafetensorError / OSError types
        raise ValueError(f"Weights file {path} is corrupt or truncated and cannot be read: {err}") from err


class AccelerandoModel(ModelMixin, ConfigMixin):
    """Base for accelerando models: a diffusers model saved and loaded as local safetensors folders.

    Subclasses keep ``config_name = "config.json"`` (inherited) and define a typed
    ``@register_to_config __init__``; the whole architecture lives in that config.
    """

    config_name = "config.json"

    def register_to_config(self, **kwargs: Any) -> None:
        """Set config values after ``__init__`` (e.g. statistics measured on the data) so that they stick.

        diffusers lists the ``__init__`` arguments left at their defaults in ``_use_default_values``, and
        ``from_config`` then drops those keys in favour of the class defaults: a value set here for such a key
        would silently vanish from an EMA copy, a validation copy or a reload. Keys set here are therefore taken
        off that list.
        """
        super().register_to_config(**kwargs)
        if "_use_default_values" in kwargs:  # the call diffusers' __init__ wrapper makes: keep its list
            return
        defaults = self._internal_dict.get("_use_default_values")
        if defaults:
            kept = [key for key in defaults if key not in kwargs]
            self._internal_dict = FrozenDict({**self._internal_dict, "_use_default_values": kept})

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        is_main_process: bool = True,
        safe_serialization: bool = True,
        push_to_hub: bool = False,
        **kwargs: Any,
    ) -> None:
        """Write ``config.json`` + safetensors weights into ``save_directory``, atomically.

        Args:
            save_directory: the model folder; an existing one is replaced safely.
            is_main_process: only the main process writes (pass ``accelerator.is_main_process``).
            safe_serialization: must stay ``True``; accelerando never writes pickled weights.
            push_to_hub: must stay ``False``; accelerando works with local folders only.
            **kwargs: passed to diffusers' ``ModelMixin.save_pretrained`` (``variant``, ``max_shard_size``).
        """
        if not safe_serialization:
            raise ValueError(
                "accelerando writes safetensors only; safe_serialization=False is not supported."
            )
        if push_to_hub:
            raise ValueError("accelerando saves to local folders only; push_to_hub=True is not supported.")
        if not is_main_process:
            return
        final_dir = Path(save_directory)
        if final_dir.is_file():
            raise ValueError(f"Cannot save a model to {final_dir}: it is a file, not a folder.")
        final_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp_dir = final_dir.with_name(f".{final_dir.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            super().save_pretrained(tmp_dir, safe_serialization=True, push_to_hub=False, **kwargs)
            replace_dir_atomically(tmp_dir, final_dir)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any
    ) -> AccelerandoModel:
        """Load a model folder written by ``save_pretrained`` (local, safetensors only).

        Args:
            pretrained_model_name_or_path: a local folder holding ``config.json`` and safetensors weights.
            **kwargs: passed to diffusers' ``ModelMixin.from_pretrained`` (``subfolder``, ``variant``,
                ``torch_dtype``, ...). ``use_safetensors=False`` is refused; ``None`` (what diffusers' pipeline loader passes) means safetensors.

        Raises:
            FileNotFoundError: the folder or its ``config.json`` does not exist.
            ValueError: the config belongs to another class, or the weights are missing or corrupt.
        """
        if kwargs.pop("use_safetensors", True) is False:
            raise ValueError(
                "accelerando loads safetensors weights only; use_safetensors=False is not supported."
            )
        root = Path(pretrained_model_name_or_path)
        if not root.is_dir():
            raise FileNotFoundError(
                f"Model folder {root} does not exist; accelerando loads local folders only (no model hub)."
            )
        folder = root / kwargs["subfolder"] if kwargs.get("subfolder") else root
        config_file = folder / cls.config_name
        if not config_file.is_file():
            raise FileNotFoundError(
                f"{folder} has no {cls.config_name}; it is not a model folder written by save_pretrained."
            )
        try:
            config = json.loads(config_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{config_file} is not valid JSON: {err}") from err
        saved_class = config.get("_class_name") if isinstance(config, dict) else None
        if saved_class != cls.__name__:
            raise ValueError(
                f"{config_file} was written by {saved_class!r}, not {cls.__name__!r}; "
                f"load it with {saved_class}.from_pretrained instead."
            )
        variant = kwargs.get("variant")
        index_name = (
            WEIGHTS_INDEX_NAME
            if not variant
            else WEIGHTS_INDEX_NAME.replace(".safetensors", f".{variant}.safetensors")
        )
        weights_name = (
            WEIGHTS_NAME if not variant else WEIGHTS_NAME.replace(".safetensors", f".{variant}.safetensors")
        )
        if (folder / index_name).is_file():
            shards = set(json.loads((folder / index_name).read_text())["weight_map"].values())
            for shard in sorted(shards):
                _check_safetensors(folder / shard)
        else:
            _check_safetensors(folder / weights_name)
        return super().from_pretrained(str(root), use_safetensors=True, local_files_only=True, **kwargs)

    def num_parameters(
        self,
        trainable_only: bool = False,
        only_trainable: bool | None = None,
        exclude_embeddings: bool = False,
    ) -> int:
        """Number of parameters; ``trainable_only`` counts those with ``requires_grad`` only.

        ``only_trainable`` and ``exclude_embeddings`` keep diffusers' own spelling working.
        """
        if only_trainable is not None:
            trainable_only = only_trainable
        if exclude_embeddings:
            return super().num_parameters(only_trainable=trainable_only, exclude_embeddings=True)
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
