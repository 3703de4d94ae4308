"""MelNEWT, the mel-conditioned NEWT speech vocoder: alignment, streaming, pitch heads, FastNEWT, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from accelerando.audio import MelConfig, mel_spectrogram
from accelerando.vocoders import MelNEWT
from accelerando.vocoders.newt.mel_newt import fill_unvoiced, scaled_sigmoid


def _tiny(**overrides) -> MelNEWT:
    torch.manual_seed(0)
    config = dict(hidden=24, mlp_depth=2, n_harmonics=12, n_waveshapers=3, shaper_width=4, n_noise_bands=17,
                  noise_ir_length=32, n_pitch_bins=48)  # fmt: skip
    config.update(overrides)
    return MelNEWT(**config).eval()


def _mel(frames: int = 20, batch: int = 1, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 80, frames, generator=g) - 6.0


def test_output_is_frames_times_hop_and_batched_like_the_input():
    model = _tiny()
    assert model.synthesize(_mel(7, batch=2), seed=0).shape == (2, 7 * 256)
    assert model.synthesize(_mel(1)[0], seed=0).shape == (1, 256)  # (n_mels, frames) is one item


@pytest.mark.parametrize("envelope_passes", [0, 2])
@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("blocks", [[20], [1] * 20, [7, 6, 7], [3, 17]])
def test_stream_chunk_by_chunk_equals_one_call(blocks, fast, envelope_passes):
    model = _tiny(envelope_passes=envelope_passes)
    model = model.to_fast() if fast else model
    mel = _mel(sum(blocks), batch=2)
    whole = model.synthesize(mel, seed=5)
    stream = model.stream(batch_size=2, seed=5)
    parts, start = [], 0
    for n in blocks:
        parts.append(stream.push(mel[..., start : start + n]))
        start += n
    parts.append(stream.finish())
    streamed = torch.cat(parts, dim=-1)
    assert streamed.shape == whole.shape
    torch.testing.assert_close(streamed, whole, atol=5e-5 if envelope_passes else 2e-5, rtol=1e-4)


def test_output_up_to_a_frame_centre_ignores_later_frames():
    """Causal with half a hop of latency: samples before frame i's centre depend on frames <= i only."""
    model = _tiny()
    mel = _mel(12)
    changed = mel.clone()
    changed[..., 8:] += 3.0
    a, b = model.synthesize(mel, seed=1), model.synthesize(changed, seed=1)
    centre = 7 * 256 + 128  # frame 7's centre
    torch.testing.assert_close(a[:, :centre], b[:, :centre])
    assert not torch.allclose(a[:, centre + 256 :], b[:, centre + 256 :])


def _constant_harmonics(model: MelNEWT) -> MelNEWT:
    """Constant harmonic amplitudes and voicing, no noise: the output is a pure function of f0."""
    with torch.no_grad():
        for layer in (model.amp_mlp.net[-1], model.voicing_head, model.noise_mlp.net[-1]):
            layer.weight.zero_()
        model.noise_mlp.net[-1].bias.fill_(-30.0)
        model.voicing_head.bias.fill_(10.0)
    return model


def test_harmonic_controls_are_centred_on_their_frames():
    """Frame i's f0 holds from its centre (sample i * hop + hop // 2): with f0 = 220.5 Hz (period 100
    samples) up to frame 19 and 441 Hz (period 50) from frame 20, the output is exactly periodic with
    period 100 up to frame 19's centre and with period 50 from frame 20's centre on."""
    model = _constant_harmonics(_tiny(n_waveshapers=0))
    frames, hop = 40, 256
    mel = _mel(frames)
    f0 = torch.full((1, frames), 220.5)
    f0[:, 20:] = 441.0
    with torch.no_grad():
        x = model(mel, f0_hz=f0, seed=0).audio[0]
    centre_19, centre_20 = 19 * hop + hop // 2, 20 * hop + hop // 2
    torch.testing.assert_close(x[1000 : centre_19 - 100], x[1100:centre_19], atol=1e-4, rtol=0)
    torch.testing.assert_close(x[centre_20:-50], x[centre_20 + 50 :], atol=1e-4, rtol=0)
    assert (x[centre_19 - 100 + 60 : centre_19 + 60] - x[centre_19 + 60 : centre_19 + 160]).abs().max() > 1e-3


def test_pitch_targets_and_decoding_round_trip():
    model = _tiny(n_pitch_bins=192)
    f0 = torch.tensor([[60.0, 110.0, 220.0, 333.3, 700.0]])
    targets = model.pitch_targets(f0)
    torch.testing.assert_close(targets.sum(-1), torch.ones(1, 5))
    decoded = model.decode_f0(torch.log(targets + 1e-12))
    torch.testing.assert_close(decoded, f0, rtol=2e-3, atol=0.0)
    assert model.f0_to_bin(torch.tensor([10.0, 5000.0])).tolist() == pytest.approx([0.0, 191.0])


def test_fill_unvoiced_interpolates_log_linearly_and_holds_the_ends():
    f0 = torch.tensor([[0.0, 100.0, 0.0, 400.0, 0.0], [0.0] * 5, [0.0, 0.0, 250.0, 0.0, 0.0]])
    out = fill_unvoiced(f0)
    assert out[0].tolist() == pytest.approx([100.0, 100.0, 200.0, 400.0, 400.0])
    assert out[1].tolist() == [150.0] * 5
    assert out[2].tolist() == [250.0] * 5


def test_fast_newt_is_close_to_the_mlp_model_and_round_trips(tmp_path):
    model = _tiny()
    fast = model.to_fast()
    assert fast.config.use_lookup_table and fast.to_fast().config.use_lookup_table
    mel = _mel(10)
    a, b = model.synthesize(mel, seed=2), fast.synthesize(mel, seed=2)
    assert float((a - b).pow(2).mean() / a.pow(2).mean()) < 1e-3
    for m, name in ((model, "mlp"), (fast, "fast")):
        m.save_pretrained(tmp_path / name)
        loaded = MelNEWT.from_pretrained(tmp_path / name).eval()
        torch.testing.assert_close(loaded.synthesize(mel, seed=2), m.synthesize(mel, seed=2))


def test_to_trainable_fits_mlp_shapers_to_the_tables_and_keeps_every_other_weight():
    model = _tiny()
    fast = model.to_fast()
    slow = fast.to_trainable(steps=1500)
    assert not slow.config.use_lookup_table and slow.training == fast.training
    for key, value in fast.state_dict().items():
        if key != "newt.shaper.table":
            torch.testing.assert_close(slow.state_dict()[key], value)
    table = fast.newt.shaper.table
    refit = slow.newt.shaper.sample_table(table.shape[-1], slow.config.lut_range)
    assert float((refit - table).pow(2).mean().sqrt()) < 0.05 * float(table.abs().max())
    mel = _mel(10)
    a, b = fast.synthesize(mel, seed=2), slow.synthesize(mel, seed=2)
    assert float((a - b).pow(2).mean() / a.pow(2).mean()) < 1e-2
    assert all(p.requires_grad for p in slow.newt.shaper.parameters())
    again = slow.to_trainable()  # an MLP model is copied as it is
    torch.testing.assert_close(again.synthesize(mel, seed=2), b)


def test_seed_fixes_the_noise_and_the_harmonics_do_not_depend_on_it():
    model = _tiny()
    mel = _mel(10)
    torch.testing.assert_close(model.synthesize(mel, seed=3), model.synthesize(mel, seed=3))
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    torch.testing.assert_close(model.synthesize(mel, generator=g1), model.synthesize(mel, generator=g2))
    assert not torch.allclose(model.synthesize(mel, seed=1), model.synthesize(mel, seed=2))
    _constant_harmonics(model)
    torch.testing.assert_close(
        model.synthesize(mel, seed=1), model.synthesize(mel, seed=2), atol=1e-6, rtol=0
    )


def test_no_harmonic_above_nyquist():
    """A high f0 with many harmonics: the additive part has no energy aliased below f0."""
    model = _constant_harmonics(_tiny(n_harmonics=40, n_waveshapers=0))
    mel = _mel(1).expand(1, 80, 30).contiguous()
    f0 = torch.full((1, 30), 700.0)  # harmonics 16.. are above 11025 Hz
    with torch.no_grad():
        audio = model(mel, f0_hz=f0, seed=0).audio[0, 1024:].numpy()
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    freqs = np.fft.rfftfreq(len(audio), 1 / 22050)
    assert spectrum[(freqs > 50) & (freqs < 600)].max() < 1e-3 * spectrum.max()


def test_a_few_steps_on_one_clip_lower_the_loss():
    from accelerando.audio import MultiResolutionSTFTLoss

    model = _tiny().train()
    t = torch.arange(256 * 24) / 22050
    audio = (0.3 * torch.sin(2 * torch.pi * 180 * t) + 0.1 * torch.sin(2 * torch.pi * 360 * t))[None]
    mel = mel_spectrogram(audio, MelConfig())
    f0 = torch.full((1, mel.shape[-1]), 180.0)
    loss_fn = MultiResolutionSTFTLoss(fft_sizes=(512, 256), hop_sizes=(64, 32), win_lengths=(512, 256))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = loss_fn(model(mel, f0_hz=f0, seed=0).audio, audio)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]


def test_scaled_sigmoid_range():
    x = torch.tensor([-100.0, 0.0, 100.0])
    y = scaled_sigmoid(x)
    assert y[0] == pytest.approx(1e-7) and y[2] == pytest.approx(2.0) and 0 < y[1] < 2


@pytest.mark.parametrize(
    "mel, message",
    [
        (torch.zeros(1, 40, 5), r"\(B, 80, frames\)"),
        (torch.zeros(1, 80, 0), "at least one frame"),
        (torch.full((1, 80, 3), float("nan")), "finite"),
    ],
)
def test_bad_mels_raise_clear_errors(mel, message):
    with pytest.raises(ValueError, match=message):
        _tiny().synthesize(mel)


def test_stream_misuse_is_a_clear_error():
    model = _tiny()
    stream = model.stream(batch_size=1, seed=0)
    with pytest.raises(ValueError, match="batch_size 1"):
        stream.push(_mel(3, batch=2))
    stream.push(_mel(3))
    stream.finish()
    with pytest.raises(RuntimeError, match="finished"):
        stream.push(_mel(3))


@pytest.mark.parametrize(
    "kwargs, message",
    [({"hop_length": 255}, "even"), ({"f0_max": 40.0}, "f0_max"), ({"hidden": 0}, "hidden")],
)
def test_bad_config_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MelNEWT(**kwargs)


def test_predict_f0_is_what_synthesis_decodes():
    model = _tiny()
    mel = _mel(12, batch=2)
    f0, p_voiced = model.predict_f0(mel)
    with torch.no_grad():
        out = model(mel, seed=0)
    torch.testing.assert_close(f0, model.decode_f0(out.pitch_logits))
    torch.testing.assert_close(p_voiced, torch.sigmoid(out.voicing_logits))
    assert f0.shape == p_voiced.shape == (2, 12) and ((f0 >= 50) & (f0 <= 800)).all()


def test_voicing_temperature_one_is_the_default_and_lower_sharpens_the_gate():
    model = _tiny(n_waveshapers=0)  # the additive harmonics and the noise only
    with torch.no_grad():
        model.voicing_head.weight.zero_()
        model.voicing_head.bias.fill_(-1.0)  # p(voiced) = 0.27 everywhere
        model.noise_mlp.net[-1].bias.fill_(-30.0)  # no noise: the harmonic part alone
        model.amp_mlp.net[-1].bias[0].fill_(3.0)  # a loud harmonic gain
    mel = _mel(12)
    default = model.synthesize(mel, seed=1)
    sharp = MelNEWT.from_config(model.config, voicing_temperature=0.25).eval()
    sharp.load_state_dict(model.state_dict())
    same = MelNEWT.from_config(model.config, voicing_temperature=1.0).eval()
    same.load_state_dict(model.state_dict())
    torch.testing.assert_close(same.synthesize(mel, seed=1), default)
    assert float(sharp.synthesize(mel, seed=1).pow(2).mean()) < 0.5 * float(default.pow(2).mean())
    with pytest.raises(ValueError, match="voicing_temperature"):
        MelNEWT(voicing_temperature=0.0)


def test_aperiodicity_bands_start_close_to_the_model_and_can_remove_the_harmonics():
    plain = _tiny(n_waveshapers=0)
    with torch.no_grad():
        plain.amp_mlp.net[-1].bias[0].fill_(3.0)  # a loud harmonic part
    banded = MelNEWT.from_config(plain.config, aperiodicity_bands=5).eval()
    missing, unexpected = banded.load_state_dict(plain.state_dict(), strict=False)
    assert missing == ["aperiodicity_head.weight", "aperiodicity_head.bias"] and not unexpected
    with torch.no_grad():
        plain.noise_mlp.net[-1].bias.fill_(-30.0)  # the harmonic part alone
        banded.noise_mlp.net[-1].bias.fill_(-30.0)
    mel = _mel(12)
    a, b = plain.synthesize(mel, seed=1), banded.synthesize(mel, seed=1)
    torch.testing.assert_close(b, a * torch.sigmoid(torch.tensor(3.0)), atol=1e-5, rtol=1e-3)  # w = 0.95
    with torch.no_grad():
        banded.aperiodicity_head.bias.fill_(-20.0)  # no band periodic: no harmonic
    assert float(banded.synthesize(mel, seed=1).abs().max()) < 1e-6 * float(a.abs().max()) + 1e-7
    stream = banded.stream(seed=1)
    chunks = [stream.push(mel[..., :5]), stream.push(mel[..., 5:]), stream.finish()]
    torch.testing.assert_close(torch.cat(chunks, dim=-1), banded.synthesize(mel, seed=1))
    with pytest.raises(ValueError, match="aperiodicity_bands"):
        MelNEWT(aperiodicity_bands=1)


def test_aperiodicity_bias_moves_unsure_bands_to_noise_and_zero_is_the_trained_model():
    model = _tiny(n_waveshapers=0, aperiodicity_bands=4)
    with torch.no_grad():
        model.amp_mlp.net[-1].bias[0].fill_(3.0)
        model.noise_mlp.net[-1].bias.fill_(-30.0)  # the harmonic part alone
        model.aperiodicity_head.bias.copy_(torch.tensor([12.0, 0.0, 0.0, 0.0]))  # sure below 1/3 Nyquist
    mel = _mel(12)
    out = {}
    for bias in (0.0, 4.0):
        biased = MelNEWT.from_config(model.config, aperiodicity_bias=bias).eval()
        biased.load_state_dict(model.state_dict())
        out[bias] = biased.synthesize(mel, seed=1)
    torch.testing.assert_close(out[0.0], model.synthesize(mel, seed=1))
    power = float(out[4.0].pow(2).mean())
    assert 0.05 * float(out[0.0].pow(2).mean()) < power < 0.9 * float(out[0.0].pow(2).mean())
    with pytest.raises(ValueError, match="aperiodicity_bias"):
        MelNEWT(aperiodicity_bias=1.0)


def test_envelope_passes_apply_mel_envelope_matching_after_the_render():
    from accelerando.audio import match_mel_envelope

    mel = _mel(24, batch=2)
    raw = _tiny().synthesize(mel, seed=3)
    matched = _tiny(envelope_passes=2, envelope_max_gain_db=12.0).synthesize(mel, seed=3)
    torch.testing.assert_close(matched, match_mel_envelope(raw, mel, MelConfig(), passes=2, max_gain_db=12.0))
    before = (mel_spectrogram(raw, MelConfig()) - mel).abs().mean()
    assert (mel_spectrogram(matched, MelConfig()) - mel).abs().mean() < before


def test_envelope_settings_are_checked():
    with pytest.raises(ValueError, match="envelope_passes must be a whole number >= 0"):
        _tiny(envelope_passes=-1)
    with pytest.raises(ValueError, match="envelope_max_gain_db must be positive"):
        _tiny(envelope_max_gain_db=0.0)
