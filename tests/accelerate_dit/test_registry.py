"""Block registry, plugin bookkeeping and exact removal, on tiny random-weight models of every supported class."""

from __future__ import annotations

import pytest
import torch
from accel_dit_models import MODELS, at_timestep, meldit, meldit_inputs, output
from torch import nn

from accelerando.accelerate_dit import (
    FORAConfig,
    ToMeConfig,
    apply_fora,
    apply_tome,
    remove_acceleration,
    reset_acceleration_state,
)
from accelerando.accelerate_dit._hooks import get_tracker
from accelerando.accelerate_dit._registry import find_blocks, supported_model_names

ROPE_MODELS = {"FluxTransformer2DModel", "StableAudioDiTModel"}
EXPECTED_BLOCKS = {
    "MelDiT": ["MelDiTBlock"] * 2,
    "DiTTransformer2DModel": ["BasicTransformerBlock"] * 2,
    "PixArtTransformer2DModel": ["BasicTransformerBlock"] * 2,
    "SD3Transformer2DModel": ["JointTransformerBlock"] * 2,
    "FluxTransformer2DModel": ["FluxTransformerBlock", "FluxSingleTransformerBlock"],
    "StableAudioDiTModel": ["StableAudioDiTBlock"] * 2,
}


def tome_config(name: str, ratio: float = 0.5) -> ToMeConfig:
    rope = name in ROPE_MODELS
    return ToMeConfig(ratio=ratio, merge_attn=not rope, merge_mlp=True, merge_crossattn=True)


def snapshot(model: nn.Module) -> list[tuple[str, str, list[str]]]:
    """Module tree with every module's instance attribute names (a leftover hook attribute would show)."""
    return [(name, type(m).__name__, sorted(vars(m))) for name, m in model.named_modules()]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registry_finds_every_block_and_slot(name: str) -> None:
    model = MODELS[name][0]()
    blocks = find_blocks(model)
    assert [type(b.block).__name__ for b in blocks] == EXPECTED_BLOCKS[name]
    assert [b.index for b in blocks] == list(range(len(blocks)))
    for found in blocks:
        assert found.submodules("attn") and found.submodules("mlp")


def test_unsupported_model_error_names_class_and_supported_ones() -> None:
    with pytest.raises(TypeError) as err:
        apply_fora(nn.Sequential(nn.Linear(2, 2)))
    message = str(err.value)
    assert "Sequential" in message
    for supported in supported_model_names():
        assert supported in message
    with pytest.raises(TypeError, match="Sequential"):
        apply_tome(nn.Sequential(nn.Linear(2, 2)))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_remove_acceleration_restores_model_exactly(name: str) -> None:
    make, inputs = MODELS[name]
    model = make()
    args, kwargs = inputs()
    before_tree = snapshot(model)
    before_state = {k: v.clone() for k, v in model.state_dict().items()}
    baseline = output(make(), args, kwargs)  # a never-accelerated twin

    apply_tome(model, tome_config(name))
    apply_fora(model, FORAConfig(interval=2, forecast="taylor1"))
    for t in (0.9, 0.8, 0.7):  # fill the caches
        output(model, args, at_timestep(kwargs, t * kwargs["timestep"].max().item()))
    remove_acceleration(model)

    assert snapshot(model) == before_tree
    state = model.state_dict()
    assert state.keys() == before_state.keys()
    assert all(torch.equal(state[k], before_state[k]) for k in state)
    assert torch.equal(output(model, args, kwargs), baseline)


def test_remove_acceleration_on_plain_model_is_a_no_op() -> None:
    model = meldit()
    before = snapshot(model)
    assert remove_acceleration(model) is model
    assert snapshot(model) == before


def test_double_apply_raises_and_plugins_compose() -> None:
    model = meldit()
    apply_tome(model, ToMeConfig(ratio=0.5))
    with pytest.raises(ValueError, match="already applied"):
        apply_tome(model, ToMeConfig(ratio=0.3))
    apply_fora(model, FORAConfig(interval=2))
    with pytest.raises(ValueError, match="already applied"):
        apply_fora(model)
    remove_acceleration(model)
    apply_fora(model)  # allowed again after removal
    remove_acceleration(model)


def test_step_tracker_detects_new_generation_and_cfg_slots() -> None:
    model = meldit()
    apply_fora(model, FORAConfig(interval=2))
    tracker = get_tracker(model)
    args, kwargs = meldit_inputs()
    seen = []
    for t in (900.0, 900.0, 600.0, 300.0, 950.0, 500.0):
        output(model, args, at_timestep(kwargs, t))
        seen.append((tracker.step, tracker.slot))
    # equal timestep: another call of the same step; a larger one: a new generation.
    assert seen == [(0, 0), (0, 1), (1, 0), (2, 0), (0, 0), (1, 0)]
    reset_acceleration_state(model)
    assert tracker.step == -1
    output(model, args, at_timestep(kwargs, 100.0))
    assert tracker.step == 0
    assert tracker.grid == model.grid_size
