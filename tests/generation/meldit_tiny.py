"""Tiny MelDiT config and helpers shared by the generation tests (uniquely named: importable from any test)."""

from __future__ import annotations

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401 - diffusers' pipeline loader looks it up here
from torch import nn

from accelerando.generation import MelDiT
from accelerando.modeling import AccelerandoModel

TINY = {
    "n_mels": 16,
    "num_frames": 16,
    "patch_size": (4, 4),
    "hidden_size": 32,
    "num_layers": 2,
    "num_attention_heads": 2,
    "num_programs": 8,
}


def randomize(model: MelDiT, seed: int = 0, std: float = 0.1) -> MelDiT:
    """Give every weight (the zero-initialised adaLN ones included) a random value, so outputs are non-trivial."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return model


class TinyVocoder(AccelerandoModel):
    """A saveable stand-in for a mel vocoder: ``synthesize((B, n_mels, frames)) -> (B, frames * hop)``."""

    @register_to_config
    def __init__(self, n_mels: int = 16, hop: int = 4):
        super().__init__()
        self.proj = nn.Linear(n_mels, hop)

    def synthesize(self, mel: torch.Tensor) -> torch.Tensor:
        return self.proj(mel.transpose(1, 2)).flatten(1)  # (B, frames * hop)
