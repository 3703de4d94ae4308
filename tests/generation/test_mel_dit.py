"""MelDiT: shapes, patchify, adaLN-zero, block layout, conditioning errors, save/load, a training step."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention
from meldit_tiny import TINY, randomize
from torch import nn

from accelerando.generation import (
    NULL_LABEL,
    PRESETS,
    MelDiT,
    MelDiTBlock,
    patchify,
    rectified_flow_loss,
    unpatchify,
)


def _labels(b: int, program: int = 1, pitch: int = 60, velocity: int = 100) -> dict[str, torch.Tensor]:
    return {
        "program": torch.full((b,), program),
        "pitch": torch.full((b,), pitch),
        "velocity": torch.full((b,), velocity),
    }


@pytest.mark.parametrize("patch_size", [(1, 1), (2, 2), (4, 2), (8, 4)])
def test_patchify_round_trip(patch_size):
    x = torch.randn(2, 3, 16, 24)
    tokens = patchify(x, patch_size)
    grid = (16 // patch_size[0], 24 // patch_size[1])
    assert tokens.shape == (2, grid[0] * grid[1], 3 * patch_size[0] * patch_size[1])
    assert torch.equal(unpatchify(tokens, patch_size, grid), x)


def test_patch_embed_matches_patchify_order(tiny_model):
    """The conv patch embedding and patchify agree on the token order (frequency-major)."""
    x = torch.randn(1, 1, 16, 16)
    conv = tiny_model.patch_embed(x).flatten(2).transpose(1, 2)  # (1, N, D)
    linear = (
        patchify(x, (4, 4)) @ tiny_model.patch_embed.weight.reshape(32, -1).T + tiny_model.patch_embed.bias
    )
    torch.testing.assert_close(conv, linear, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_have_enough_tokens_for_token_merging(preset):
    patch = PRESETS[preset]["patch_size"]
    assert (80 // patch[0]) * (128 // patch[1]) >= 512
    if preset == "small":  # the full preset is too big to build in a unit test
        model = MelDiT.from_preset("small")
        assert model.num_tokens == 640 and model.grid_size == (20, 32)
        assert 3_000_000 < model.num_parameters() < 6_000_000


def test_default_config():
    model = MelDiT()
    assert model.grid_size == (20, 64) and model.num_tokens == 1280 >= 512
    assert model.config.n_mels == 80 and model.config.num_frames == 128
    assert model.config.hidden_size == PRESETS["full"]["hidden_size"]


def test_unknown_preset():
    with pytest.raises(ValueError, match="'huge'.*full.*small"):
        MelDiT.from_preset("huge")


def test_output_shape_and_adaln_zero(tiny_model):
    x = torch.randn(3, 1, 16, 16)
    out = tiny_model(x, torch.tensor([0.0, 500.0, 1000.0]), **_labels(3))
    assert out.sample.shape == x.shape
    assert torch.count_nonzero(out.sample) == 0  # adaLN-zero: the untrained model outputs exactly zero
    (tup,) = tiny_model(x, 250.0, **_labels(3), return_dict=False)
    assert torch.count_nonzero(tup) == 0


def test_other_frame_counts(random_model):
    x = torch.randn(2, 1, 16, 32)  # twice the configured frames
    assert random_model(x, torch.tensor([10.0, 20.0]), **_labels(2)).sample.shape == x.shape


def test_blocks_are_visible_to_plugins(tiny_model):
    blocks = tiny_model.transformer_blocks
    assert isinstance(blocks, nn.ModuleList) and len(blocks) == TINY["num_layers"]
    for block in blocks:
        assert isinstance(block, MelDiTBlock)
        assert isinstance(block.attn1, Attention)
        assert all(hasattr(block.attn1, name) for name in ("to_q", "to_k", "to_v", "to_out"))
        assert isinstance(block.norm1, nn.LayerNorm) and isinstance(block.norm2, nn.LayerNorm)
        assert block.ff is not None


def test_block_gates_apply_outside_attn_and_ff(random_model):
    """Replacing attn1 / ff outputs through forward hooks (as FORA does) changes the block output via the gates."""
    block = random_model.transformer_blocks[0]
    h, temb = torch.randn(2, 16, 32), torch.randn(2, 32)
    base = block(h, temb)
    handle = block.attn1.register_forward_hook(lambda mod, args, out: torch.zeros_like(out))
    no_attn = block(h, temb)
    handle.remove()
    assert not torch.allclose(base, no_attn)
    torch.testing.assert_close(block(h, temb), base)


def test_labels_change_output(random_model):
    x = torch.randn(2, 1, 16, 16)
    t = torch.tensor([300.0, 300.0])
    a = random_model(x, t, **_labels(2, program=1)).sample
    b = random_model(x, t, **_labels(2, program=2)).sample
    c = random_model(x, t, **_labels(2, program=NULL_LABEL, pitch=NULL_LABEL, velocity=NULL_LABEL)).sample
    assert not torch.allclose(a, b) and not torch.allclose(a, c)


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [("program", 8, "0..7"), ("program", -2, "0..7"), ("pitch", 128, "0..127"), ("velocity", -5, "0..127")],
)
def test_bad_labels_raise(tiny_model, name, value, accepted):
    labels = _labels(2)
    labels[name] = torch.tensor([1, value])
    with pytest.raises(ValueError, match=rf"{name} {value} is out of range: accepted values are {accepted}"):
        tiny_model(torch.randn(2, 1, 16, 16), 10.0, **labels)


def test_bad_shapes_raise(tiny_model):
    with pytest.raises(ValueError, match=r"shape \(B, 1, 16, frames\), got \(2, 1, 80, 16\)"):
        tiny_model(torch.randn(2, 1, 80, 16), 10.0, **_labels(2))
    with pytest.raises(ValueError, match="multiple of the patch width 4"):
        tiny_model(torch.randn(2, 1, 16, 18), 10.0, **_labels(2))
    with pytest.raises(ValueError, match="pitch must have shape"):
        tiny_model(torch.randn(2, 1, 16, 16), 10.0, **{**_labels(2), "pitch": torch.tensor([60])})
    with pytest.raises(ValueError, match="must divide"):
        MelDiT(**{**TINY, "patch_size": (3, 4)})


def test_cfg_dropout_only_in_training(random_model):
    random_model.register_to_config(class_dropout_prob=1.0)
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([300.0, 300.0])
    uncond = random_model(x, t, **_labels(2, NULL_LABEL, NULL_LABEL, NULL_LABEL)).sample
    cond_eval = random_model(x, t, **_labels(2)).sample
    random_model.train()
    cond_train = random_model(x, t, **_labels(2)).sample  # every label dropped
    torch.testing.assert_close(cond_train, uncond)
    assert not torch.allclose(cond_eval, uncond)


def test_save_load_round_trip(random_model, tmp_path):
    random_model.save_pretrained(tmp_path / "meldit")
    loaded = MelDiT.from_pretrained(tmp_path / "meldit").eval()
    assert loaded.config.patch_size in ((4, 4), [4, 4]) and loaded.grid_size == random_model.grid_size
    x = torch.randn(2, 1, 16, 16)
    t = torch.tensor([100.0, 900.0])
    assert torch.equal(loaded(x, t, **_labels(2)).sample, random_model(x, t, **_labels(2)).sample)


def test_normalization_round_trip(tiny_model):
    log_mel = torch.empty(2, 16, 16).uniform_(-11.5, 2.0)
    normed = tiny_model.normalize_mel(log_mel)
    assert normed.abs().max() < 2.5
    torch.testing.assert_close(tiny_model.denormalize_mel(normed), log_mel)


def test_training_step_lowers_loss():
    torch.manual_seed(0)
    model = MelDiT(**{**TINY, "class_dropout_prob": 0.0}).train()
    x0 = torch.randn(4, 1, 16, 16) * 0.5 + torch.linspace(-1, 1, 16)[:, None]  # a fixed batch with structure
    labels = {
        "program": torch.tensor([0, 1, 2, 3]),
        "pitch": torch.tensor([40, 50, 60, 70]),
        "velocity": torch.tensor([90] * 4),
    }
    sigmas = torch.tensor([0.2, 0.4, 0.6, 0.8])

    def loss() -> torch.Tensor:
        return rectified_flow_loss(
            model, x0, **labels, sigmas=sigmas, generator=torch.Generator().manual_seed(1)
        )

    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = loss().item()
    for _ in range(20):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    assert loss().item() < 0.7 * first


def test_randomize_helper_is_deterministic():
    a = randomize(MelDiT(**TINY), seed=3)
    b = randomize(MelDiT(**TINY), seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


# --- harmonic pitch conditioning -------------------------------------------------------------------------


def test_harmonic_templates_follow_the_harmonics():
    import librosa

    from accelerando.generation.mel_dit import harmonic_pitch_templates

    templates = harmonic_pitch_templates(n_mels=80, sample_rate=22050, f_min=0.0, f_max=8000.0)
    assert templates.shape == (128, 80)
    assert float(templates.min()) >= 0 and torch.allclose(templates.amax(1)[:100], torch.ones(100))
    edges = librosa.mel_frequencies(82, fmin=0.0, fmax=8000.0)
    lo, hi = edges[:-2], edges[2:]
    for pitch in (33, 45, 69, 81, 96):
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        harmonics = f0 * torch.arange(1, int(8000 // f0) + 1).double()
        covered = [any(lo[m] < float(h) < hi[m] for h in harmonics) for m in range(80)]
        assert [bool(v) for v in templates[pitch] > 0] == covered, (
            pitch
        )  # non-zero exactly where a harmonic lies
        # The strongest band holds the fundamental (weight 1; harmonic k weighs 1/k).
        peak = int(templates[pitch].argmax())
        assert lo[peak] < f0 < hi[peak], pitch
    assert float(templates[127].sum()) == 0.0  # 12.5 kHz: every harmonic above f_max


def test_harmonic_conditioning_is_local_and_saved(tmp_path):
    torch.manual_seed(0)
    model = randomize(MelDiT(**TINY, pitch_conditioning="harmonic")).eval()
    assert model.pitch_row_embedder.in_features == TINY["patch_size"][0]
    assert "pitch_templates" not in model.state_dict()  # a function of the config, rebuilt on load
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([300.0, 300.0])
    a = model(x, t, **_labels(2, pitch=60)).sample
    # The template path alone moves the output: zero the pitch table and pitch still matters.
    with torch.no_grad():
        model.pitch_embedder.weight.zero_()
    b = model(x, t, **_labels(2, pitch=60)).sample
    c = model(x, t, **_labels(2, pitch=72)).sample
    assert not torch.allclose(a, b) and not torch.allclose(b, c)
    model.save_pretrained(tmp_path / "harmonic")
    loaded = MelDiT.from_pretrained(tmp_path / "harmonic").eval()
    assert loaded.config.pitch_conditioning == "harmonic"
    assert torch.equal(loaded(x, t, **_labels(2, pitch=72)).sample, c)


def test_harmonic_null_pitch_and_cfg_dropout():
    torch.manual_seed(0)
    model = randomize(MelDiT(**TINY, pitch_conditioning="harmonic", class_dropout_prob=1.0)).eval()
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([300.0, 300.0])
    uncond = model(x, t, **_labels(2, NULL_LABEL, NULL_LABEL, NULL_LABEL)).sample
    model.train()
    torch.testing.assert_close(
        model(x, t, **_labels(2)).sample, uncond
    )  # dropped labels -> null template too


def test_untrained_harmonic_model_outputs_zeros():
    model = MelDiT(**TINY, pitch_conditioning="harmonic").eval()
    out = model(torch.randn(2, 1, 16, 16), torch.tensor([10.0, 990.0]), **_labels(2)).sample
    assert torch.equal(out, torch.zeros_like(out))


def test_table_conditioning_has_no_template_parameters():
    model = MelDiT(**TINY)
    assert model.config.pitch_conditioning == "table"
    assert not any(name.startswith("pitch_row") for name in model.state_dict())


def test_bad_pitch_conditioning_raises():
    with pytest.raises(
        ValueError, match=r"pitch_conditioning must be one of \('table', 'harmonic'\); got 'cqt'"
    ):
        MelDiT(**TINY, pitch_conditioning="cqt")


def test_presets_use_the_harmonic_cue_and_old_configs_stay_table(tmp_path):
    assert MelDiT.from_preset("small").config.pitch_conditioning == "harmonic"
    assert MelDiT.from_preset("small", pitch_conditioning="table").config.pitch_conditioning == "table"
    # A config saved before the option existed (no key) loads as the label table it was trained with.
    import json

    model = MelDiT(**TINY)
    model.save_pretrained(tmp_path / "old")
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    del config["pitch_conditioning"]
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    assert MelDiT.from_pretrained(tmp_path / "old").config.pitch_conditioning == "table"


def test_trained_programs_round_trip_and_bad_lists_raise(tmp_path):
    model = MelDiT(**TINY, trained_programs=[0, 3])
    model.save_pretrained(tmp_path / "m")
    assert MelDiT.from_pretrained(tmp_path / "m").config.trained_programs == [0, 3]
    assert MelDiT(**TINY).config.trained_programs is None  # unknown (checkpoints from before the option)
    for bad in ([], [TINY.get("num_programs", 128)], [-1], ["0"]):
        with pytest.raises(ValueError, match="trained_programs must be a non-empty list of program numbers"):
            MelDiT(**TINY, trained_programs=bad)


def test_guided_velocity_is_the_cfg_combination_of_two_forwards():
    from accelerando.generation.mel_dit import NULL_LABEL, guidance_labels, guided_velocity

    model = randomize(MelDiT(**TINY)).eval()
    x = torch.randn(2, 1, TINY["n_mels"], TINY["num_frames"])
    t = torch.tensor([300.0, 700.0])
    labels = [torch.tensor([1, 2]), torch.tensor([60, 64]), torch.tensor([80, 100])]
    null = [torch.full_like(v, NULL_LABEL) for v in labels]
    with torch.no_grad():
        v_c = model(x, t, *labels, return_dict=False)[0]
        v_u = model(x, t, *null, return_dict=False)[0]
        guided = guided_velocity(model, x, t, guidance_labels(labels, 2.5), 2.5)
        plain = guided_velocity(model, x, t, guidance_labels(labels, 1.0), 1.0)
    torch.testing.assert_close(guided, v_u + 2.5 * (v_c - v_u), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(plain, v_c)
    assert [v.shape[0] for v in guidance_labels(labels, 2.5)] == [4, 4, 4]
