"""Private registry of the transformer blocks and models the ``accelerate_dit`` plugins support.

The plugins never rewrite a block's ``forward``: they wrap the block's attention and MLP *sub-modules*, whose
outputs every supported block gates (adaLN-zero) or adds itself. This file records, per block class, which
sub-modules those are, and, per model class, where the blocks live and how the image token grid is read from
the forward inputs (so ToMe merges within the real patch grid at any resolution, patch size 2 included).

Slots:
    ``attn``: self-attention over the image tokens (SD3 / Flux: joint attention, returning a tuple).
    ``cross_attn``: cross-attention whose queries are the image tokens.
    ``mlp``: the feed-forward on the image tokens.
    ``context_mlp``: the feed-forward on the text stream (SD3 / Flux double blocks; cached by FORA, never merged).

Kept private (diffusers' own block registry in ``diffusers.hooks._common`` is private too); the plugins import
``find_blocks`` / ``model_spec`` / ``read_forward_inputs`` from here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = [
    "SLOTS",
    "BlockSpec",
    "FoundBlock",
    "ModelSpec",
    "find_blocks",
    "model_spec",
    "read_forward_inputs",
    "supported_model_names",
]

SLOTS = ("attn", "cross_attn", "mlp", "context_mlp")


@dataclass(frozen=True)
class BlockSpec:
    """Where a block's attention / MLP / norms / gates are.

    Attributes:
        attn, cross_attn, mlp, context_mlp: sub-module names per slot (missing or ``None`` sub-modules are skipped).
        norms: the norm sub-modules feeding them (documentation; the plugins leave norms running every step).
        gates: where the gates are applied (documentation; they stay in the block, applied to what the
            wrapped sub-module returns).
        hidden_arg: name of the token argument of the wrapped sub-modules (passed positionally or by keyword).
        rope: the self-attention applies rotary position embeddings per token (ToMe cannot merge it).
        cached_forward: optional fast path for FORA, ``fn(block, cached, *args, **kwargs)``: the block's forward
            when every sub-module of its slots reuses a cached output (``cached``: ``{attribute name: output}``).
            It runs only the conditioning, the gates and the residual adds, skipping the norms and modulation that
            feed the cached sub-modules; it must equal the block's own forward with those outputs (tested).
        modulated_input: optional ``fn(block, *args, **kwargs)`` returning what the block's self-attention sees,
            the timestep-modulated normalised input ``norm1(x) * (1 + scale) + shift``: the cheap signal of FORA's
            adaptive refresh (``FORAConfig.threshold``); without it the signal is the block's token input.
        stackable: the block maps its token input to its token output alone (a tensor in, a tensor out), so
            FORA can cache the whole block stack (``FORAConfig(level="blocks")``).
    """

    attn: tuple[str, ...] = ()
    cross_attn: tuple[str, ...] = ()
    mlp: tuple[str, ...] = ()
    context_mlp: tuple[str, ...] = ()
    norms: tuple[str, ...] = ()
    gates: str = ""
    hidden_arg: str = "hidden_states"
    rope: bool = False
    cached_forward: Callable[..., Any] | None = None
    modulated_input: Callable[..., torch.Tensor] | None = None
    stackable: bool = False

    def slot(self, name: str) -> tuple[str, ...]:
        return getattr(self, name)


def _meldit_cached_forward(
    block: nn.Module, cached: dict[str, torch.Tensor], hidden_states: torch.Tensor, temb: torch.Tensor
) -> torch.Tensor:
    """``MelDiTBlock.forward`` with ``attn1`` and ``ff`` replaced by cached outputs: adaLN gates + residual adds.

    The same operations as the block's own forward, so the result is bit-identical; the residual adds are
    commuted (exact in IEEE arithmetic) so that their output takes the contiguous layout of the cached tensors:
    MelDiT's token stream comes out of the patch-embedding convolution transposed, and element-wise ops on it run
    about 3x slower on a CPU.
    """
    mod = block.adaLN_modulation(temb)[:, None, :]  # (B, 1, 6D)
    _, _, gate_msa, _, _, gate_mlp = mod.chunk(6, dim=-1)
    hidden_states = gate_msa * cached["attn1"] + hidden_states
    return gate_mlp * cached["ff"] + hidden_states


def _meldit_modulated_input(
    block: nn.Module, hidden_states: torch.Tensor, temb: torch.Tensor
) -> torch.Tensor:
    """``norm1(x) * (1 + scale_msa) + shift_msa`` of a ``MelDiTBlock``: ``(B, N, D)``."""
    mod = block.adaLN_modulation(temb)[:, None, :]  # (B, 1, 6D)
    shift_msa, scale_msa = mod.chunk(6, dim=-1)[:2]
    return block.norm1(hidden_states) * (1 + scale_msa) + shift_msa


def _basic_modulated_input(
    block: nn.Module,
    hidden_states: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    encoder_hidden_states: torch.Tensor | None = None,
    encoder_attention_mask: torch.Tensor | None = None,
    timestep: torch.Tensor | None = None,
    cross_attention_kwargs: dict[str, Any] | None = None,
    class_labels: torch.Tensor | None = None,
    added_cond_kwargs: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """The first lines of diffusers' ``BasicTransformerBlock.forward``: its normalised (modulated) input."""
    kind = block.norm_type
    if kind == "ada_norm_zero":  # DiT
        return block.norm1(hidden_states, timestep, class_labels, hidden_dtype=hidden_states.dtype)[0]
    if kind == "ada_norm_single":  # PixArt
        table = block.scale_shift_table[None] + timestep.reshape(hidden_states.shape[0], 6, -1)  # (B, 6, D)
        shift_msa, scale_msa = table.chunk(6, dim=1)[:2]
        return block.norm1(hidden_states) * (1 + scale_msa) + shift_msa
    if kind == "ada_norm":
        return block.norm1(hidden_states, timestep)
    if kind == "ada_norm_continuous":
        return block.norm1(hidden_states, added_cond_kwargs["pooled_text_emb"])
    return block.norm1(hidden_states)


GridFn = Callable[[nn.Module, dict[str, Any]], tuple[int, int]]


@dataclass(frozen=True)
class ModelSpec:
    """A supported model: its block lists and how to read the image token grid ``(rows, cols)`` from its inputs."""

    block_lists: tuple[str, ...]
    grid: GridFn


BLOCKS: dict[str, BlockSpec] = {
    # accelerando.generation.MelDiTBlock: adaLN-zero, gates multiplied in the block.
    "MelDiTBlock": BlockSpec(
        attn=("attn1",),
        mlp=("ff",),
        norms=("norm1", "norm2"),
        gates="adaLN_modulation (gate_msa, gate_mlp)",
        cached_forward=_meldit_cached_forward,
        modulated_input=_meldit_modulated_input,
        stackable=True,
    ),
    # DiT (norm_type "ada_norm_zero") and PixArt-alpha/sigma ("ada_norm_single"); also plain "layer_norm".
    "BasicTransformerBlock": BlockSpec(
        attn=("attn1",),
        cross_attn=("attn2",),
        mlp=("ff",),
        norms=("norm1", "norm2", "norm3"),
        gates="norm1 (ada_norm_zero) or scale_shift_table (ada_norm_single)",
        modulated_input=_basic_modulated_input,
        stackable=True,
    ),
    # SD3 / SD3.5 MMDiT block: joint attention returns (image, text); SD3.5 adds attn2 (dual attention).
    "JointTransformerBlock": BlockSpec(
        attn=("attn", "attn2"),
        mlp=("ff",),
        context_mlp=("ff_context",),
        norms=("norm1", "norm1_context", "norm2", "norm2_context"),
        gates="norm1 / norm1_context (AdaLayerNormZero)",
    ),
    "SD3SingleTransformerBlock": BlockSpec(
        attn=("attn",), mlp=("ff",), norms=("norm1", "norm2"), gates="norm1 (AdaLayerNormZero)"
    ),
    # Flux double-stream block: joint attention with RoPE returns (image, text).
    "FluxTransformerBlock": BlockSpec(
        attn=("attn",),
        mlp=("ff",),
        context_mlp=("ff_context",),
        norms=("norm1", "norm1_context", "norm2", "norm2_context"),
        gates="norm1 / norm1_context (AdaLayerNormZero)",
        rope=True,
    ),
    # Flux single-stream block: tokens are [text; image]; the MLP is proj_mlp (+ GELU), fused with the attention
    # output by proj_out, gated by norm's gate. proj_out runs every step.
    "FluxSingleTransformerBlock": BlockSpec(
        attn=("attn",), mlp=("proj_mlp",), norms=("norm",), gates="norm (AdaLayerNormZeroSingle)", rope=True
    ),
    # Stable Audio: pre-norm, ungated; tokens are [global; audio frames]; self-attention uses RoPE.
    "StableAudioDiTBlock": BlockSpec(
        attn=("attn1",),
        cross_attn=("attn2",),
        mlp=("ff",),
        norms=("norm1", "norm2", "norm3"),
        gates="none",
        rope=True,
        stackable=True,
    ),
}


def _patch(value: Any) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


def _grid_image(model: nn.Module, inputs: dict[str, Any]) -> tuple[int, int]:
    # MelDiT keeps a (rows, cols) patch_size attribute; diffusers models only in their config.
    ph, pw = _patch(model.__dict__.get("patch_size") or model.config.patch_size)
    h, w = inputs["hidden_states"].shape[-2:]  # (B, C, H, W)
    return h // ph, w // pw


def _grid_flux(model: nn.Module, inputs: dict[str, Any]) -> tuple[int, int]:
    num_tokens = inputs["hidden_states"].shape[1]  # (B, N, C) packed latents
    ids = inputs.get("img_ids")
    if ids is not None:
        ids = ids[0] if ids.ndim == 3 else ids  # (N, 3): (index, row, col)
        rows = int(ids[:, 1].max() - ids[:, 1].min()) + 1
        cols = int(ids[:, 2].max() - ids[:, 2].min()) + 1
        if rows * cols == num_tokens:
            return rows, cols
    return 1, num_tokens


def _grid_1d(model: nn.Module, inputs: dict[str, Any]) -> tuple[int, int]:
    return 1, inputs["hidden_states"].shape[-1]  # (B, C, T)


MODELS: dict[str, ModelSpec] = {
    "MelDiT": ModelSpec(("transformer_blocks",), _grid_image),
    "DiTTransformer2DModel": ModelSpec(("transformer_blocks",), _grid_image),
    "PixArtTransformer2DModel": ModelSpec(("transformer_blocks",), _grid_image),
    "SD3Transformer2DModel": ModelSpec(("transformer_blocks",), _grid_image),
    "FluxTransformer2DModel": ModelSpec(("transformer_blocks", "single_transformer_blocks"), _grid_flux),
    "StableAudioDiTModel": ModelSpec(("transformer_blocks",), _grid_1d),
}


def supported_model_names() -> list[str]:
    """Names of the supported model classes (subclasses are supported too)."""
    return sorted(MODELS)


def model_spec(model: nn.Module) -> ModelSpec:
    """The spec of ``model``'s class (or its nearest supported base class); a clear ``TypeError`` otherwise."""
    for cls in type(model).__mro__:
        if cls.__name__ in MODELS:
            return MODELS[cls.__name__]
    raise TypeError(
        f"accelerate_dit does not support {type(model).__name__}; supported models are "
        f"{', '.join(supported_model_names())} (and their subclasses)."
    )


@dataclass(frozen=True)
class FoundBlock:
    """One block of a model: its global index (in forward order), qualified name, module and spec."""

    index: int
    name: str
    block: nn.Module
    spec: BlockSpec

    def submodules(self, slot: str) -> list[tuple[str, nn.Module]]:
        """``(qualified name, module)`` of the sub-modules in ``slot`` that exist in this block."""
        found = []
        for attr in self.spec.slot(slot):
            module = getattr(self.block, attr, None)
            if isinstance(module, nn.Module):
                found.append((f"{self.name}.{attr}", module))
        return found


def _block_spec(block: nn.Module) -> BlockSpec | None:
    for cls in type(block).__mro__:
        if cls.__name__ in BLOCKS:
            return BLOCKS[cls.__name__]
    return None


def find_blocks(model: nn.Module) -> list[FoundBlock]:
    """All supported blocks of ``model``, in forward order; raises ``TypeError`` on an unsupported model or block."""
    spec = model_spec(model)
    found: list[FoundBlock] = []
    for list_name in spec.block_lists:
        blocks = getattr(model, list_name, None)
        if blocks is None:
            continue
        for i, block in enumerate(blocks):
            block_spec = _block_spec(block)
            if block_spec is None:
                raise TypeError(
                    f"accelerate_dit does not support the block class {type(block).__name__} in "
                    f"{type(model).__name__}.{list_name}; supported blocks are {', '.join(sorted(BLOCKS))}."
                )
            found.append(FoundBlock(len(found), f"{list_name}.{i}", block, block_spec))
    if not found:
        raise TypeError(f"{type(model).__name__} has no transformer blocks in {', '.join(spec.block_lists)}.")
    return found


def read_forward_inputs(model: nn.Module, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Bind a call's ``(args, kwargs)`` to the names of ``type(model).forward`` (``hidden_states``, ``timestep``...)."""
    signature = inspect.signature(type(model).forward)
    bound = signature.bind_partial(model, *args, **kwargs)
    inputs = dict(bound.arguments)
    inputs.pop("self", None)
    extra = inputs.pop("kwargs", None)
    if isinstance(extra, dict):
        inputs.update(extra)
    return inputs


def timestep_value(inputs: dict[str, Any]) -> float | None:
    """The largest timestep of a call as a float (``None`` when the model got no timestep)."""
    t = inputs.get("timestep")
    if t is None:
        return None
    if isinstance(t, torch.Tensor):
        return float(t.detach().float().max()) if t.numel() else None
    return float(t)
