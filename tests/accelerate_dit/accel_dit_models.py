"""Tiny random-weight models shared by the ToMe / FORA / registry tests (uniquely named: importable anywhere)."""

from __future__ import annotations

from typing import Any

import torch
from diffusers import (
    DiTTransformer2DModel,
    FluxTransformer2DModel,
    PixArtTransformer2DModel,
    SD3Transformer2DModel,
    StableAudioDiTModel,
)
from torch import nn

from accelerando.generation import MelDiT

MELDIT_TINY = {
    "n_mels": 16,
    "num_frames": 16,
    "patch_size": (2, 2),
    "hidden_size": 32,
    "num_layers": 2,
    "num_attention_heads": 2,
    "num_programs": 8,
}


def randomize(model: nn.Module, seed: int = 0, std: float = 0.1) -> nn.Module:
    """Random values for every weight (adaLN-zero ones included), so every block does something."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return model.eval()


def meldit(seed: int = 0, **overrides: Any) -> MelDiT:
    return randomize(MelDiT(**{**MELDIT_TINY, **overrides}), seed)


def meldit_inputs(batch: int = 2, t: float = 500.0, frames: int = 16, seed: int = 1) -> tuple[tuple, dict]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 1, 16, frames, generator=gen)
    labels = torch.arange(batch) % 8
    return (x,), {
        "timestep": torch.full((batch,), t),
        "program": labels,
        "pitch": labels + 60,
        "velocity": labels + 90,
    }


def dit() -> DiTTransformer2DModel:
    return randomize(
        DiTTransformer2DModel(
            num_attention_heads=2,
            attention_head_dim=8,
            in_channels=4,
            num_layers=2,
            sample_size=8,
            patch_size=2,
            num_embeds_ada_norm=10,
        )
    )


def dit_inputs(batch: int = 2, t: float = 500.0) -> tuple[tuple, dict]:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 4, 8, 8, generator=gen)
    return (x,), {"timestep": torch.full((batch,), t), "class_labels": torch.arange(batch) % 10}


def pixart() -> PixArtTransformer2DModel:
    return randomize(
        PixArtTransformer2DModel(
            num_attention_heads=2,
            attention_head_dim=8,
            in_channels=4,
            out_channels=8,
            num_layers=2,
            sample_size=8,
            patch_size=2,
            cross_attention_dim=16,
            caption_channels=12,
        )
    )


def pixart_inputs(batch: int = 2, t: float = 500.0) -> tuple[tuple, dict]:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 4, 8, 8, generator=gen)
    text = torch.randn(batch, 5, 12, generator=gen)
    added = {"resolution": None, "aspect_ratio": None}
    return (x,), {
        "encoder_hidden_states": text,
        "timestep": torch.full((batch,), t),
        "added_cond_kwargs": added,
    }


def sd3() -> SD3Transformer2DModel:
    return randomize(
        SD3Transformer2DModel(
            sample_size=8,
            patch_size=2,
            in_channels=4,
            num_layers=2,
            attention_head_dim=8,
            num_attention_heads=2,
            joint_attention_dim=12,
            caption_projection_dim=16,
            pooled_projection_dim=10,
            out_channels=4,
            pos_embed_max_size=16,
        )
    )


def sd3_inputs(batch: int = 2, t: float = 500.0) -> tuple[tuple, dict]:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 4, 8, 8, generator=gen)
    return (x,), {
        "encoder_hidden_states": torch.randn(batch, 5, 12, generator=gen),
        "pooled_projections": torch.randn(batch, 10, generator=gen),
        "timestep": torch.full((batch,), t),
    }


def flux() -> FluxTransformer2DModel:
    return randomize(
        FluxTransformer2DModel(
            patch_size=1,
            in_channels=4,
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=8,
            num_attention_heads=2,
            joint_attention_dim=12,
            pooled_projection_dim=10,
            axes_dims_rope=(2, 2, 4),
        )
    )


def flux_inputs(batch: int = 2, t: float = 0.5) -> tuple[tuple, dict]:
    gen = torch.Generator().manual_seed(1)
    rows, cols = 4, 6
    img_ids = torch.zeros(rows, cols, 3)
    img_ids[..., 1] = torch.arange(rows)[:, None]
    img_ids[..., 2] = torch.arange(cols)[None, :]
    return (torch.randn(batch, rows * cols, 4, generator=gen),), {
        "encoder_hidden_states": torch.randn(batch, 5, 12, generator=gen),
        "pooled_projections": torch.randn(batch, 10, generator=gen),
        "timestep": torch.full((batch,), t),
        "img_ids": img_ids.reshape(-1, 3),
        "txt_ids": torch.zeros(5, 3),
    }


def stable_audio() -> StableAudioDiTModel:
    return randomize(
        StableAudioDiTModel(
            sample_size=8,
            in_channels=4,
            num_layers=2,
            attention_head_dim=8,
            num_attention_heads=2,
            num_key_value_attention_heads=1,
            out_channels=4,
            cross_attention_dim=16,
            time_proj_dim=16,
            global_states_input_dim=12,
            cross_attention_input_dim=10,
        )
    )


def stable_audio_inputs(batch: int = 2, t: float = 0.5) -> tuple[tuple, dict]:
    gen = torch.Generator().manual_seed(1)
    return (torch.randn(batch, 4, 12, generator=gen),), {
        "timestep": torch.full((batch,), t),
        "encoder_hidden_states": torch.randn(batch, 3, 10, generator=gen),
        "global_hidden_states": torch.randn(batch, 1, 12, generator=gen),
    }


MODELS = {
    "MelDiT": (meldit, meldit_inputs),
    "DiTTransformer2DModel": (dit, dit_inputs),
    "PixArtTransformer2DModel": (pixart, pixart_inputs),
    "SD3Transformer2DModel": (sd3, sd3_inputs),
    "FluxTransformer2DModel": (flux, flux_inputs),
    "StableAudioDiTModel": (stable_audio, stable_audio_inputs),
}


def at_timestep(kwargs: dict, t: float) -> dict:
    """``kwargs`` with the timestep replaced by ``t`` (same batch)."""
    return {**kwargs, "timestep": torch.full_like(kwargs["timestep"], t)}


def output(model: nn.Module, args: tuple, kwargs: dict) -> torch.Tensor:
    """The model's sample for one call (``return_dict=False``)."""
    with torch.no_grad():
        return model(*args, **kwargs, return_dict=False)[0]
