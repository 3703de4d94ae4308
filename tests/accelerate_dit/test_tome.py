"""ToMe: exactness at ratio 0, fewer tokens into the wrapped sub-modules, gates kept, matching invariants."""

from __future__ import annotations

import pytest
import torch
from accel_dit_models import (
    MODELS,
    at_timestep,
    dit,
    dit_inputs,
    flux,
    flux_inputs,
    meldit,
    meldit_inputs,
    output,
    sd3,
)

from accelerando.accelerate_dit import ToMeConfig, apply_tome, remove_acceleration
from accelerando.accelerate_dit._hooks import get_tracker
from accelerando.accelerate_dit.tome import bipartite_soft_matching_2d

ROPE_MODELS = {"FluxTransformer2DModel", "StableAudioDiTModel"}


def count_lengths(module: torch.nn.Module, lengths: list[int]) -> torch.utils.hooks.RemovableHandle:
    """Record the token count of every input to ``module`` (an inner layer, so below the ToMe wrapper)."""
    return module.register_forward_pre_hook(lambda _m, args: lengths.append(args[0].shape[1]))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_ratio_zero_is_exactly_the_baseline(name: str) -> None:
    make, inputs = MODELS[name]
    model = make()
    args, kwargs = inputs()
    baseline = output(model, args, kwargs)
    rope = name in ROPE_MODELS
    apply_tome(model, ToMeConfig(ratio=0.0, merge_attn=not rope, merge_crossattn=True, merge_mlp=True))
    assert torch.equal(output(model, args, kwargs), baseline)


@pytest.mark.parametrize(
    "name", ["MelDiT", "DiTTransformer2DModel", "PixArtTransformer2DModel", "SD3Transformer2DModel"]
)
def test_attention_sees_fewer_tokens(name: str) -> None:
    make, inputs = MODELS[name]
    model = make()
    args, kwargs = inputs()
    block = model.transformer_blocks[0]
    attn = block.attn1 if hasattr(block, "attn1") else block.attn
    baseline_lengths: list[int] = []
    handle = count_lengths(attn.to_q, baseline_lengths)
    baseline = output(model, args, kwargs)
    apply_tome(model, ToMeConfig(ratio=0.5, sx=2, sy=2))
    merged_lengths: list[int] = []
    handle.remove()
    count_lengths(attn.to_q, merged_lengths)
    merged = output(model, args, kwargs)
    n = baseline_lengths[0]
    assert merged_lengths == [n - n // 2]  # patch-2 grids merge too (4 x 4 tokens here)
    assert merged.shape == baseline.shape and torch.isfinite(merged).all()
    assert not torch.equal(merged, baseline)


def test_adaln_zero_gates_are_kept() -> None:
    """With the gates zeroed every MelDiT block is the identity: ToMe inside the gate changes nothing."""
    model = meldit()
    d = model.config.hidden_size
    with torch.no_grad():
        for block in model.transformer_blocks:
            linear = block.adaLN_modulation[-1]
            for chunk in (2, 5):  # gate_msa, gate_mlp
                linear.weight[chunk * d : (chunk + 1) * d] = 0
                linear.bias[chunk * d : (chunk + 1) * d] = 0
    args, kwargs = meldit_inputs()
    baseline = output(model, args, kwargs)
    state = apply_tome(model, ToMeConfig(ratio=0.7, merge_mlp=True))
    assert torch.equal(output(model, args, kwargs), baseline)
    assert state.tokens_out < state.tokens_in


def test_matching_merge_unmerge_invariants() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 6 * 8, 5, generator=gen)
    rand_idx = torch.randint(4, (3, 4, 1), generator=gen)
    merge, unmerge = bipartite_soft_matching_2d(x, (6, 8), sx=2, sy=2, r=20, rand_idx=rand_idx)
    merged = merge(x)
    assert merged.shape == (3, 48 - 20, 5)
    restored = unmerge(merged)
    assert restored.shape == x.shape
    # 28 distinct tokens come back, each a (size-weighted) mean of the originals it absorbed.
    assert all(len(torch.unique(restored[b], dim=0)) == 28 for b in range(3))
    # r = 0 is the identity; a constant input merges to itself.
    merge0, unmerge0 = bipartite_soft_matching_2d(x, (6, 8), 2, 2, 0, rand_idx)
    assert torch.equal(unmerge0(merge0(x)), x)
    ones = torch.ones(1, 48, 2)
    m, u = bipartite_soft_matching_2d(ones, (6, 8), 2, 2, 30, rand_idx)
    assert torch.equal(u(m(ones)), ones)


def test_ratio_is_capped_at_one_destination_per_cell() -> None:
    x = torch.randn(1, 16, 4)
    merge, _ = bipartite_soft_matching_2d(
        x, (4, 4), 2, 2, r=15, rand_idx=torch.zeros(2, 2, 1, dtype=torch.int64)
    )
    assert merge(x).shape[1] == 4


def test_block_schedule_and_seeded_reproducibility() -> None:
    model = dit()
    args, kwargs = dit_inputs()
    lengths: list[list[int]] = [[], []]
    for i, block in enumerate(model.transformer_blocks):
        count_lengths(block.attn1.to_q, lengths[i])
    apply_tome(model, ToMeConfig(ratio=0.5, block_ratios={1: 0.25}, seed=3))
    first = output(model, args, kwargs)
    assert lengths == [[8], [12]]
    remove_acceleration(model)
    apply_tome(model, ToMeConfig(ratio=0.5, block_ratios=[0.5, 0.25], seed=3))
    assert torch.equal(output(model, args, kwargs), first)


def test_rope_attention_is_refused_and_flux_text_prefix_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    model = flux()
    with pytest.raises(ValueError, match="rotary"):
        apply_tome(model, ToMeConfig(ratio=0.5))
    args, kwargs = flux_inputs()
    single = model.single_transformer_blocks[0]
    seen: list[torch.Tensor] = []
    linear_forward = torch.nn.Linear.forward

    def recording_forward(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
        if self is single.proj_mlp:  # what the layer itself receives, below the ToMe wrapper
            seen.append(x)
        return linear_forward(self, x)

    monkeypatch.setattr(torch.nn.Linear, "forward", recording_forward)
    output(model, args, kwargs)
    apply_tome(model, ToMeConfig(ratio=0.5, merge_attn=False, merge_mlp=True))
    output(model, args, kwargs)
    full, merged = seen
    text = kwargs["encoder_hidden_states"].shape[1]
    assert merged.shape[1] == text + 24 - 12
    assert torch.equal(merged[:, :text], full[:, :text])  # the text tokens are never merged


def test_invalid_config_messages() -> None:
    with pytest.raises(ValueError, match="ratio 1.0"):
        ToMeConfig(ratio=1.0)
    with pytest.raises(ValueError, match="sx"):
        ToMeConfig(sx=0)
    with pytest.raises(ValueError, match="block_ratios has 3"):
        apply_tome(meldit(), ToMeConfig(block_ratios=[0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="blocks must be a sequence of block indices"):
        ToMeConfig(blocks=[1.0, 2])
    with pytest.raises(ValueError, match="blocks must be a sequence of block indices"):
        ToMeConfig(blocks="12")
    for steps in (-1, 2.5, True):
        with pytest.raises(ValueError, match="merge_steps must be None or a non-negative integer"):
            ToMeConfig(merge_steps=steps)
    model = meldit()
    n = len(model.transformer_blocks)
    with pytest.raises(ValueError, match=rf"blocks \[{n}\] out of range: the model has {n} blocks"):
        apply_tome(model, ToMeConfig(blocks=(0, n)))
    with pytest.raises(ValueError, match="prop_attn is not supported for JointTransformerBlock"):
        apply_tome(sd3(), ToMeConfig(prop_attn=True))


NO_OP_CONFIGS = {
    "ratio 0, every option on": ToMeConfig(ratio=0.0, merge_mlp=True, prop_attn=True, merge_steps=8),
    "no blocks": ToMeConfig(ratio=0.5, merge_mlp=True, prop_attn=True, blocks=()),
    "zero steps": ToMeConfig(ratio=0.5, merge_mlp=True, prop_attn=True, merge_steps=0),
}


@pytest.mark.parametrize("model_name", ["MelDiT", "DiTTransformer2DModel"])
@pytest.mark.parametrize("config_name", sorted(NO_OP_CONFIGS))
def test_no_op_settings_are_exactly_the_baseline(model_name: str, config_name: str) -> None:
    make, inputs = MODELS[model_name]
    model = make()
    args, kwargs = inputs()
    baselines = [output(model, args, at_timestep(kwargs, t)) for t in (900.0, 500.0)]
    state = apply_tome(model, NO_OP_CONFIGS[config_name])
    for baseline, t in zip(baselines, (900.0, 500.0), strict=True):  # two steps of one generation
        assert torch.equal(output(model, args, at_timestep(kwargs, t)), baseline)
    assert state.tokens_in == 0


def test_blocks_selects_where_tokens_merge() -> None:
    model = meldit()
    args, kwargs = meldit_inputs()
    lengths: list[list[int]] = [[] for _ in model.transformer_blocks]
    for block, seen in zip(model.transformer_blocks, lengths, strict=True):
        count_lengths(block.attn1.to_q, seen)
    apply_tome(model, ToMeConfig(ratio=0.5, blocks=(-1,)))
    output(model, args, kwargs)
    *unmerged, last = lengths
    assert unmerged == [[64]] * (len(lengths) - 1) and last == [32]  # only the last block merges


def test_merge_steps_runs_later_steps_unmerged() -> None:
    """With ``merge_steps=1`` the first step merges; the second equals the plain model's second step exactly."""
    model = meldit()
    args, kwargs = meldit_inputs()
    first_plain = output(model, args, at_timestep(kwargs, 900.0))
    second_plain = output(model, args, at_timestep(kwargs, 500.0))
    apply_tome(model, ToMeConfig(ratio=0.5, merge_mlp=True, merge_steps=1))
    assert not torch.equal(output(model, args, at_timestep(kwargs, 900.0)), first_plain)
    assert torch.equal(output(model, args, at_timestep(kwargs, 500.0)), second_plain)
    # a new generation (the timestep rises again) merges in its first step again
    assert not torch.equal(output(model, args, at_timestep(kwargs, 900.0)), first_plain)


def test_proportional_attention_equals_full_attention_over_duplicated_tokens() -> None:
    """Tokens that are four copies per 2 x 2 cell merge without loss, and attention over the merged keys with
    ``log(size)`` added to the logits is exactly attention over all the tokens (ToMe paper, eq. 1). Plain
    attention over the merged keys under-weights the merged copies."""
    model = meldit()
    attn = model.transformer_blocks[0].attn1
    gen = torch.Generator().manual_seed(0)
    rows, cols, dim = 4, 6, model.config.hidden_size
    cells = torch.randn(2, rows // 2, 1, cols // 2, 1, dim, generator=gen)
    x = cells.expand(2, rows // 2, 2, cols // 2, 2, dim).reshape(
        2, rows * cols, dim
    )  # (B, N, D), copies per cell
    with torch.no_grad():
        full = attn(x)
    results = {}
    for prop in (True, False):
        apply_tome(model, ToMeConfig(ratio=0.5, prop_attn=prop, use_rand=False))
        tracker = get_tracker(model)
        tracker.grid, tracker.step = (rows, cols), 0
        with torch.no_grad():
            results[prop] = attn(x)  # 12 of the 18 sources merge into their own cell's destination
        remove_acceleration(model)
    torch.testing.assert_close(results[True], full)
    assert not torch.allclose(results[False], full, atol=1e-4)


def reference_merge_means(
    x: torch.Tensor, grid: tuple[int, int], r: int, rand_idx: torch.Tensor
) -> torch.Tensor:
    """ToMe written out token by token: every token replaced by the mean of the group it is merged into."""
    rows, cols = grid
    dst = []
    for i in range(rows // 2):
        for j in range(cols // 2):
            k = int(rand_idx[i, j, 0])
            dst.append((2 * i + k // 2) * cols + 2 * j + k % 2)
    src = [t for t in range(rows * cols) if t not in dst]
    out = x.clone()
    for b in range(x.shape[0]):
        unit = x[b] / x[b].norm(dim=-1, keepdim=True)
        sim = unit[src] @ unit[dst].T  # (num_src, num_dst)
        best, choice = sim.max(dim=-1)
        merged = best.argsort(descending=True, stable=True)[:r]
        groups: dict[int, list[int]] = {d: [d] for d in dst}
        for s in merged.tolist():
            groups[dst[int(choice[s])]].append(src[s])
        for members in groups.values():
            out[b, members] = x[b, members].mean(dim=0)
    return out


def test_matching_equals_a_token_by_token_reference() -> None:
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 6 * 8, 7, generator=gen, dtype=torch.float64)
    rand_idx = torch.randint(4, (3, 4, 1), generator=gen)
    for r in (0, 5, 20, 36):
        merge, unmerge = bipartite_soft_matching_2d(x, (6, 8), 2, 2, r, rand_idx)
        torch.testing.assert_close(unmerge(merge(x)), reference_merge_means(x, (6, 8), r, rand_idx))


def test_one_matching_per_block_call_shared_by_attention_and_mlp(monkeypatch: pytest.MonkeyPatch) -> None:
    """Like tomesd, the matching is computed once per block call and reused for the MLP."""
    from accelerando.accelerate_dit import tome

    calls: list[tuple[int, ...]] = []
    original = tome._match

    def counting(metric: torch.Tensor, *args: object) -> tome.TokenMatching:
        calls.append(tuple(metric.shape))
        return original(metric, *args)

    monkeypatch.setattr(tome, "_match", counting)
    model = meldit()
    lengths: list[int] = []
    count_lengths(model.transformer_blocks[0].ff.net[0].proj, lengths)
    apply_tome(model, ToMeConfig(ratio=0.5, merge_mlp=True))
    args, kwargs = meldit_inputs()
    output(model, args, kwargs)
    output(model, args, {**kwargs, "timestep": kwargs["timestep"] * 0.5})
    assert len(calls) == 2 * len(model.transformer_blocks)  # two calls, one matching per block each
    assert lengths == [64 - 32, 64 - 32]  # the MLP runs on the merged tokens
