"""NEWT / FastNEWT: size, output length, causality, streaming, lookup-table parity, save/load, training, errors."""

from __future__ import annotations

import math

import pytest
import torch

from accelerando.audio import MultiResolutionSTFTLoss
from accelerando.vocoders.newt import NEWT, NEWTStream
from accelerando.vocoders.newt.layers import (
    LookupWaveshaper,
    Waveshaper,
    causal_upsample,
    hash_uniform,
    seed_keys,
)

PAPER_PARAMETERS = 266_945  # Hayes et al. 2021 / ben-hayes/neural-waveshaping-synthesis
TINY = dict(
    sample_rate=8000,
    control_hop=32,
    n_harmonics=12,
    n_waveshapers=6,
    control_hidden=16,
    n_noise_bands=17,
    noise_ir_length=32,
    reverb_length=300,
    f0_min=20.0,
    f0_max=2000.0,
)


def _tiny(**overrides) -> NEWT:
    torch.manual_seed(0)
    model = NEWT(**{**TINY, **overrides}).eval()
    with torch.no_grad():  # an audible decaying reverb so tails matter in the streaming/causality tests
        n = model.reverb.ir.shape[0]
        decay = torch.exp(-torch.arange(n) / (n / 4))
        model.reverb.ir.copy_(torch.randn(n, generator=torch.Generator().manual_seed(1)) * 0.05 * decay)
    return model


def _controls(batch: int, frames: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1, frames)
    f0 = 110.0 * 2 ** (2 * t + torch.rand(batch, 1, generator=g))  # (B, F) glides, 110-880 Hz
    f0[:, frames // 3 : frames // 3 + 2] = 0.0  # an unvoiced gap
    loudness = 0.5 + 0.3 * torch.sin(6 * t + torch.rand(batch, 1, generator=g))  # (B, F)
    return f0, loudness


def _snr_db(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    return float(10 * torch.log10(reference.square().sum() / (reference - estimate).square().sum()))


# ------------------------------------------------------------------------------------------------ size


def test_default_is_the_paper_model_with_its_parameter_count():
    model = NEWT()
    assert abs(model.num_parameters() - PAPER_PARAMETERS) <= 0.05 * PAPER_PARAMETERS
    assert model.num_parameters() == PAPER_PARAMETERS
    cfg = model.config
    assert (cfg.sample_rate, cfg.control_hop, cfg.n_harmonics, cfg.n_waveshapers) == (16000, 128, 101, 64)
    shaper_params = sum(p.numel() for p in model.newt.shaper.parameters()) / cfg.n_waveshapers
    assert 160 <= shaper_params <= 175  # "about 169 parameters each"


def test_default_model_output_length():
    f0, loudness = _controls(1, 3)
    audio = NEWT().eval().synthesize(f0, loudness, seed=0)
    assert audio.shape == (1, 3 * 128)
    assert torch.isfinite(audio).all()


@pytest.mark.parametrize("hop", [16, 32])
@pytest.mark.parametrize("frames", [1, 9])
def test_output_length_is_frames_times_hop(hop: int, frames: int):
    model = _tiny(control_hop=hop)
    f0, loudness = _controls(2, frames)
    assert model.synthesize(f0, loudness, seed=0).shape == (2, frames * hop)
    assert model.synthesize(f0[0], loudness[0], seed=0).shape == (frames * hop,)  # unbatched in, out


# ------------------------------------------------------------------------------------------------ causality


@pytest.mark.parametrize("fast", [False, True])
def test_output_before_a_frame_ignores_controls_after_it(fast: bool):
    model = _tiny().to_fast() if fast else _tiny()
    hop, k = model.config.control_hop, 11
    f0, loudness = _controls(1, 24)
    f0_b, loudness_b = f0.clone(), loudness.clone()
    f0_b[:, k:] *= 1.7
    loudness_b[:, k:] = 1.0 - loudness_b[:, k:]
    a = model.synthesize(f0, loudness, seed=5)
    b = model.synthesize(f0_b, loudness_b, seed=5)
    torch.testing.assert_close(a[:, : k * hop], b[:, : k * hop], atol=1e-6, rtol=0)  # FFT round-off only
    assert (a[:, k * hop :] - b[:, k * hop :]).abs().max() > 1e-2


def test_causal_upsample_ends_each_frame_on_its_value():
    frames = torch.tensor([[[1.0, 3.0, -1.0]]])  # (1, 1, 3)
    up = causal_upsample(frames, torch.tensor([[0.0]]), hop=4)[0, 0]
    torch.testing.assert_close(up[3::4], frames[0, 0])
    torch.testing.assert_close(up[:4], torch.tensor([0.25, 0.5, 0.75, 1.0]))


# ------------------------------------------------------------------------------------------------ streaming


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("blocks", [[1] * 20, [3, 7, 1, 9], [20], [13, 7]])
def test_streaming_in_blocks_equals_one_shot(blocks: list[int], fast: bool):
    model = _tiny().to_fast() if fast else _tiny()
    f0, loudness = _controls(2, sum(blocks))
    one_shot = model.synthesize(f0, loudness, seed=7)
    stream = model.stream(batch_size=2, seed=7)
    assert isinstance(stream, NEWTStream)
    chunks, start = [], 0
    for size in blocks:
        chunks.append(stream.process(f0[:, start : start + size], loudness[:, start : start + size]))
        start += size
    assert stream.samples_emitted == one_shot.shape[-1]
    torch.testing.assert_close(torch.cat(chunks, dim=-1), one_shot, atol=1e-5, rtol=0)
    stream.reset(seed=7)
    torch.testing.assert_close(
        stream.process(f0[:, :4], loudness[:, :4]), one_shot[:, : 4 * 32], atol=1e-5, rtol=0
    )


def test_stream_over_long_signal_keeps_phase_exact():
    """10 s of 1-frame blocks at 16 kHz-style phase growth: the float64 phase carry must not drift."""
    model = _tiny(reverb_length=64)
    f0 = torch.full((1, 400), 1234.5)
    loudness = torch.full((1, 400), 0.7)
    one_shot = model.synthesize(f0, loudness, seed=1)
    stream = NEWTStream(model, seed=1)
    blocks = [stream.process(f0[:, i : i + 8], loudness[:, i : i + 8]) for i in range(0, 400, 8)]
    torch.testing.assert_close(torch.cat(blocks, -1), one_shot, atol=1e-5, rtol=0)


def test_hash_noise_is_uniform_and_block_invariant():
    keys = seed_keys(3, 2)
    whole = hash_uniform(keys, 0, 4000)
    parts = torch.cat([hash_uniform(keys, 0, 1234), hash_uniform(keys, 1234, 2766)], dim=-1)
    assert torch.equal(whole, parts)
    assert whole.min() >= -1 and whole.max() < 1
    assert abs(float(whole.mean())) < 0.05 and abs(float(whole.var()) - 1 / 3) < 0.02
    assert not torch.equal(whole[0], whole[1])  # batch items get different noise
    assert abs(float(torch.corrcoef(whole)[0, 1])) < 0.1


# ------------------------------------------------------------------------------------------------ FastNEWT


def test_lookup_waveshaper_matches_mlp_on_a_sweep():
    torch.manual_seed(0)
    shaper = Waveshaper(channels=64, width=8, depth=4)
    table = LookupWaveshaper(64, 4096, 3.0)
    table.table.copy_(shaper.sample_table(4096, 3.0))
    x = (2.9 * torch.sin(torch.linspace(0, 8 * math.pi, 3000)) ** 3).expand(1, 64, -1)  # (1, 64, T)
    with torch.no_grad():
        assert _snr_db(shaper(x), table(x)) >= 30.0


def test_fast_newt_is_close_to_newt_and_a_lookup_model():
    torch.manual_seed(0)
    model = NEWT().eval()
    with torch.no_grad():  # widen the exciter so the shapers see most of the table's [-3, 3] range
        model.harmonic_mixer.weight.mul_(4.0)
    fast = model.to_fast()
    assert fast.config.use_lookup_table and not model.config.use_lookup_table
    assert isinstance(fast.newt.shaper, LookupWaveshaper) and fast.newt.shaper.table.shape == (64, 4096)
    assert fast.num_parameters() == PAPER_PARAMETERS - sum(p.numel() for p in model.newt.shaper.parameters())
    f0, loudness = _controls(1, 25)
    seen = {}
    hook = model.newt.shaper.register_forward_hook(lambda module, args, out: seen.update(x=args[0]))
    reference = model.synthesize(f0, loudness, seed=0)
    hook.remove()
    assert seen["x"].abs().max() > 3.0  # the test signal reaches past the table's ends (clamped there)
    assert _snr_db(reference, fast.synthesize(f0, loudness, seed=0)) >= 30.0


# ------------------------------------------------------------------------------------------------ save / load


@pytest.mark.parametrize("fast", [False, True])
def test_save_and_load_round_trip(tmp_path, fast: bool):
    model = _tiny().to_fast() if fast else _tiny()
    model.save_pretrained(tmp_path / "newt")
    loaded = NEWT.from_pretrained(tmp_path / "newt").eval()
    assert loaded.config.use_lookup_table == fast
    f0, loudness = _controls(2, 10)
    assert torch.equal(loaded.synthesize(f0, loudness, seed=2), model.synthesize(f0, loudness, seed=2))
    if fast:
        assert torch.equal(loaded.newt.shaper.table, model.newt.shaper.table)
        assert loaded.newt.shaper.table.abs().sum() > 0


# ------------------------------------------------------------------------------------------------ determinism


def test_seed_and_generator_make_synthesis_deterministic():
    model = _tiny()
    f0, loudness = _controls(1, 8)
    a = model.synthesize(f0, loudness, seed=3)
    assert torch.equal(a, model.synthesize(f0, loudness, seed=3))
    assert not torch.allclose(a, model.synthesize(f0, loudness, seed=4))
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    assert torch.equal(
        model.synthesize(f0, loudness, generator=g1), model.synthesize(f0, loudness, generator=g2)
    )
    torch.manual_seed(11)
    b = model.synthesize(f0, loudness)
    torch.manual_seed(11)
    assert torch.equal(b, model.synthesize(f0, loudness))


# ------------------------------------------------------------------------------------------------ training


def test_a_few_training_steps_lower_the_mr_stft_loss():
    model = _tiny().train()
    f0, loudness = _controls(2, 40)
    t = torch.arange(40 * 32) / 8000
    target = 0.3 * torch.sin(2 * math.pi * 330.0 * t).expand(2, -1)  # (B, T)
    loss_fn = MultiResolutionSTFTLoss((256, 128, 64), (64, 32, 16), (256, 128, 64))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = loss_fn(model(f0, loudness, seed=0), target)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.9 * losses[0]
    assert model.newt.shaper.input_scale.grad is not None and model.reverb.ir.grad is not None


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("f0", "loudness", "message"),
    [
        (torch.ones(1, 5), torch.ones(1, 6), "same shape"),
        (torch.ones(1, 2, 5), torch.ones(1, 2, 5), "(frames,) or (B, frames)"),
        (torch.ones(1, 0), torch.ones(1, 0), "at least one frame"),
        (torch.tensor([[100.0, float("nan")]]), torch.ones(1, 2), "f0_hz must be finite"),
        (torch.ones(1, 2), torch.tensor([[0.5, float("inf")]]), "loudness must be finite"),
        (torch.tensor([[100.0, -3.0]]), torch.ones(1, 2), "got minimum -3.0"),
    ],
)
def test_bad_controls_raise_clear_errors(f0, loudness, message):
    model = _tiny()
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        model.synthesize(f0, loudness)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        model.stream().process(f0, loudness)


def test_stream_rejects_a_block_of_the_wrong_batch_size():
    stream = _tiny().stream(batch_size=2)
    with pytest.raises(ValueError, match="batch_size 2; got a block of 1"):
        stream.process(torch.ones(1, 3) * 100, torch.ones(1, 3))


def test_bad_config_raises():
    with pytest.raises(ValueError, match="f0_max must exceed f0_min"):
        NEWT(**{**TINY, "f0_max": 10.0})
    with pytest.raises(ValueError, match="n_waveshapers must be positive; got 0"):
        NEWT(**{**TINY, "n_waveshapers": 0})
