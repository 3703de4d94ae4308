"""FreGrad: architecture size, sub-band path, schedules, prior, loss, sampling, save/load, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from accelerando.audio import dwt_haar, idwt_haar
from accelerando.vocoders import FreGrad
from accelerando.vocoders.fregrad import compute_band_std, compute_energy_stats, get_schedule
from accelerando.vocoders.fregrad.model import FrequencyAwareDilatedConv
from accelerando.vocoders.fregrad.prior import DEFAULT_ENERGY_MIN
from accelerando.vocoders.fregrad.schedule import default_training_betas, rescale_zero_terminal_snr

PAPER_PARAMETERS = 1_782_548  # FreGrad paper / kaistmm/fregrad


@pytest.fixture(scope="module")
def small() -> FreGrad:
    torch.manual_seed(0)
    return FreGrad.from_preset("small", residual_layers=4).eval()


def _mel(batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 80, frames, generator=g) - 4.0  # (B, 80, frames), natural-log-mel-like


def _seed(s: int) -> torch.Generator:
    return torch.Generator().manual_seed(s)


# ------------------------------------------------------------------------------------------------ size


def test_default_is_the_paper_model_with_its_parameter_count():
    model = FreGrad()
    assert abs(model.num_parameters() - PAPER_PARAMETERS) <= 0.02 * PAPER_PARAMETERS
    assert model.num_parameters() == PAPER_PARAMETERS  # exact: same layers as the reference code
    assert len(model.blocks) == 30 and model.config.residual_channels == 32
    assert [b.dilated_conv.dilation[0] for b in model.blocks[:8]] == [1, 2, 4, 8, 16, 32, 64, 1]
    assert model.diffusion_embedding.projection1.in_features == 128
    assert model.diffusion_embedding.projection2.out_features == 512
    assert len(model.config.noise_schedule) == 50 and len(model.config.inference_noise_schedule) == 6


def test_small_preset_is_small_and_presets_are_checked():
    assert FreGrad.from_preset("small").num_parameters() < 300_000
    with pytest.raises(ValueError, match="Unknown FreGrad preset 'huge'.*paper.*small"):
        FreGrad.from_preset("huge")


# ------------------------------------------------------------------------------------- sub-band path


def test_frequency_aware_conv_with_identity_weights_round_trips_through_the_dwt():
    conv = FrequencyAwareDilatedConv(3, 3, kernel_size=3, dilation=4)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        conv.weight[torch.arange(6), torch.arange(6), 1] = 1.0  # identity on [L, H]
    x = torch.randn(2, 3, 64, dtype=torch.float32)
    torch.testing.assert_close(conv(x), x, rtol=0, atol=1e-6)
    assert conv.in_channels == 6 and conv.out_channels == 6  # the conv sees [low, high] at half rate


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_polyphase_path_equals_dwt_conv_idwt_forward_and_backward(dtype):
    torch.manual_seed(0)
    conv = FrequencyAwareDilatedConv(5, 7, kernel_size=3, dilation=8).to(dtype)
    x = torch.randn(2, 5, 96, dtype=dtype, requires_grad=True)
    fast, ref = conv(x), conv.forward_dwt(x)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(fast, ref, rtol=tol, atol=tol)
    grads = [torch.autograd.grad(out.square().sum(), [x, conv.weight, conv.bias]) for out in (fast, ref)]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=tol * 10, atol=tol * 10)
    odd = torch.randn(1, 5, 31, dtype=dtype)  # odd lengths take the DWT path (zero-padded by the DWT)
    assert conv(odd).shape == (1, 7, 31)


def test_waveform_subband_round_trip_is_exact():
    audio = torch.rand(2, 7 * 256) * 2 - 1
    sub = dwt_haar(audio.unsqueeze(1))  # what training_loss diffuses
    assert sub.shape == (2, 2, 7 * 128)
    torch.testing.assert_close(idwt_haar(sub, length=audio.shape[-1]).squeeze(1), audio, rtol=0, atol=1e-6)


def test_forward_shapes_and_fractional_steps(small):
    mel = _mel(2, 5)
    x = torch.randn(2, 2, 5 * 128)
    with torch.no_grad():
        out_int = small(x, torch.tensor([0, 49]), mel)
        out_frac = small(x, torch.tensor([0.0, 49.0]), mel)
        small(x, torch.tensor([3.25, 17.5]), mel)
    assert out_int.shape == (2, 2, 640)
    torch.testing.assert_close(out_int, out_frac)
    with pytest.raises(ValueError, match="need 768"):
        small(torch.randn(2, 2, 640), torch.tensor([0, 1]), _mel(2, 6))


# ------------------------------------------------------------------------------------------ schedule


def test_training_schedule_has_zero_terminal_snr_and_is_monotone():
    betas = torch.tensor(default_training_betas(), dtype=torch.float64)
    alpha_bar = torch.cumprod(1 - betas, 0)
    assert betas.numel() == 50
    assert alpha_bar[-1] < 1e-7  # SNR_T = a/(1-a) ~ 0
    assert bool((alpha_bar[1:] < alpha_bar[:-1]).all()) and bool(((betas > 0) & (betas < 1)).all())
    assert math.isclose(betas[0].item(), 1e-4, rel_tol=1e-9)  # sqrt(alpha_bar_0) is kept
    exact = rescale_zero_terminal_snr(torch.linspace(1e-4, 0.05, 50), offset=0.0)
    assert torch.cumprod(1 - exact, 0)[-1].abs() < 1e-12


@pytest.mark.parametrize("num_steps", [50, 12, 6, 3, 2])
def test_named_schedules_align_to_increasing_training_steps(num_steps):
    train = default_training_betas()
    sched = get_schedule(train, num_steps)
    assert len(sched) == num_steps
    t = sched.timesteps
    assert bool((t[1:] > t[:-1]).all()) and t.min() >= 0 and t.max() <= 49
    assert bool((sched.alpha_bars[1:] < sched.alpha_bars[:-1]).all())


def test_fast_schedule_values_and_user_betas():
    train = default_training_betas()
    six = get_schedule(train, 6).betas.tolist()
    assert six[0] == pytest.approx(train[0]) and six[1:] == [0.0215, 0.045, 0.08, 0.2, 0.5]
    assert get_schedule(train, 2).betas.tolist() == [0.04, 0.95]
    assert get_schedule(train, 50).timesteps.tolist() == pytest.approx(list(range(50)), abs=1e-6)
    custom = get_schedule(train, betas=[0.01, 0.1, 0.6])
    assert len(custom) == 3
    with pytest.raises(ValueError, match=r"num_steps=7.*available: \[50, 12, 6, 3, 2\]"):
        get_schedule(train, 7)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        get_schedule(train, betas=[0.1, 1.0])


# --------------------------------------------------------------------------------------------- prior


def test_band_std_floor_range_and_energy_stats():
    silent = torch.full((1, 80, 20), math.log(1e-5))
    lo, hi = compute_energy_stats([silent[0], silent])
    assert lo == pytest.approx(DEFAULT_ENERGY_MIN) and hi == pytest.approx(DEFAULT_ENERGY_MIN)
    std = compute_band_std(silent)
    assert std.shape == (1, 2, 20)
    torch.testing.assert_close(std, torch.full_like(std, 0.1))  # silence: the floor
    loud = torch.zeros(1, 80, 20)
    loud[:, :40] = math.log(1.0)  # low energy sqrt(40) > 4: clamped to energy_max -> 1
    for filtered in (False, True):
        band = compute_band_std(loud, filter_track=filtered)
        assert band.min() >= 0.1 - 1e-6 and band.max() <= 1.0 + 1e-6
    unfiltered = compute_band_std(loud, filter_track=False)
    assert unfiltered[0, 0].tolist() == pytest.approx([1.0] * 20)
    with pytest.raises(ValueError, match="energy_max"):
        compute_band_std(loud, energy_min=2.0, energy_max=1.0)


# ------------------------------------------------------------------------------------ loss, training


def test_training_loss_parts_and_a_few_steps_lower_it():
    torch.manual_seed(0)
    model = FreGrad.from_preset("small", residual_layers=4)
    g = _seed(1)
    audio = torch.sin(torch.arange(8 * 256) * 0.05).repeat(2, 1) * 0.5 + 0.01 * torch.randn(
        2, 8 * 256, generator=g
    )
    mel = _mel(2, 8, seed=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)

    def loss_at_fixed_noise() -> torch.Tensor:
        return model.training_loss(audio, mel, generator=_seed(7))[0]

    with torch.no_grad():
        first = loss_at_fixed_noise().item()
    loss, parts = model.training_loss(audio, mel, generator=_seed(7))
    assert set(parts) == {"mse_low", "mse_high", "stft_low", "stft_high"}
    assert loss.item() == pytest.approx(first)
    for _ in range(20):
        optimizer.zero_grad()
        loss_at_fixed_noise().backward()
        optimizer.step()
    with torch.no_grad():
        last = loss_at_fixed_noise().item()
    assert math.isfinite(last) and last < 0.8 * first


def test_training_loss_checks_its_inputs(small):
    with pytest.raises(ValueError, match="need 2048"):
        small.training_loss(torch.zeros(2, 2000), _mel(2, 8))
    with pytest.raises(ValueError, match="at least 5 frames"):
        small.training_loss(torch.zeros(1, 4 * 256), _mel(1, 4))
    with pytest.raises(ValueError, match="NaN or Inf"):
        small.training_loss(torch.full((1, 8 * 256), float("nan")), _mel(1, 8))


# ------------------------------------------------------------------------------------------ sampling


@pytest.mark.parametrize(("shape", "steps"), [((3, 80, 7), 2), ((80, 5), 6), ((1, 80, 1), 3)])
def test_synthesize_shapes_for_odd_lengths_and_batches(small, shape, steps):
    wav = small.synthesize(torch.randn(shape) - 4, num_steps=steps, generator=_seed(0))
    batch = shape[0] if len(shape) == 3 else 1
    assert wav.shape == (batch, shape[-1] * 256) and wav.dtype == torch.float32
    assert bool(torch.isfinite(wav).all()) and wav.abs().max() <= 1.0


def test_synthesize_is_deterministic_with_a_generator(small):
    mel = _mel(2, 5)
    a = small.synthesize(mel, generator=_seed(3))
    b = small.synthesize(mel, generator=_seed(3))
    c = small.synthesize(mel, generator=_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    custom = small.synthesize(mel, betas=[0.01, 0.2, 0.6], generator=_seed(3))
    assert custom.shape == a.shape


def test_the_zero_snr_terminal_step_takes_the_sample_as_its_noise(small, monkeypatch):
    """At the training schedule's last step (alpha_bar ~ 4.5e-8) the sample is pure noise; asking the network
    there multiplied its error by 1 / sqrt(alpha) ~ 140, so 50 steps sounded worse than 6 (mel L1 4.5 vs 1.2)."""
    calls: list[float] = []
    predict = FreGrad._predict_noise

    def spy(self, net, noisy, step, mel, std):
        calls.append(float(step[0]))
        return predict(self, net, noisy, step, mel, std) + 0.05 * std  # an imperfect network

    monkeypatch.setattr(FreGrad, "_predict_noise", spy)
    mel = _mel(1, 4)
    wav = small.synthesize(mel, num_steps=50, generator=_seed(0))
    assert len(calls) == 49 and max(calls) == 48  # every step but the pure-noise one
    calls.clear()
    small.synthesize(mel, num_steps=6, generator=_seed(0))
    assert len(calls) == 6  # the fast schedules never reach pure noise
    assert bool(torch.isfinite(wav).all())


def test_save_and_load_give_identical_output(small, tmp_path):
    small.register_to_config(energy_min=0.05, energy_max=3.5)  # as the train script stores corpus stats
    small.save_pretrained(tmp_path / "fregrad")
    loaded = FreGrad.from_pretrained(tmp_path / "fregrad").eval()
    assert loaded.config.energy_min == 0.05 and loaded.config.noise_schedule == small.config.noise_schedule
    mel = _mel(1, 6)
    torch.testing.assert_close(
        loaded.synthesize(mel, num_steps=2, generator=_seed(5)),
        small.synthesize(mel, num_steps=2, generator=_seed(5)),
        rtol=0,
        atol=0,
    )


def test_bad_mels_and_step_counts_give_clear_errors(small):
    with pytest.raises(ValueError, match="64 mel bins.*n_mels=80"):
        small.synthesize(torch.zeros(1, 64, 10))
    with pytest.raises(ValueError, match=r"\(n_mels, frames\) or \(B, n_mels, frames\).*\(1, 1, 80, 10\)"):
        small.synthesize(torch.zeros(1, 1, 80, 10))
    with pytest.raises(ValueError, match="no frames"):
        small.synthesize(torch.zeros(1, 80, 0))
    nan_mel = _mel(1, 4)
    nan_mel[0, 3, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        small.synthesize(nan_mel)
    inf_mel = _mel(1, 4)
    inf_mel[0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or Inf"):
        small.synthesize(inf_mel)
    with pytest.raises(ValueError, match=r"num_steps=4.*available: \[50, 12, 6, 3, 2\]"):
        small.synthesize(_mel(1, 4), num_steps=4)
    with pytest.raises(ValueError, match="floating-point"):
        small.synthesize(torch.zeros(1, 80, 4, dtype=torch.long))


# ------------------------------------------------------------------------ aliasing and prior consistency


def _line_ratio(wav: torch.Tensor, freq: float, sample_rate: int = 22050) -> float:
    """Welch power at ``freq`` over the median power of the 80 bins around it (a narrowband peak is >> 1)."""
    from scipy.signal import welch

    f, p = welch(wav.numpy(), fs=sample_rate, nperseg=2048)
    i = int(abs(f - freq).argmin())
    return float(p[max(i - 1, 0) : i + 2].max() / np.median(p[max(i - 40, 0) : i + 40]))


def test_remove_cutoff_alias_removes_subband_dc_and_nyquist_lines_only():
    from accelerando.vocoders.fregrad.model import remove_cutoff_alias

    n = 8192
    g = torch.Generator().manual_seed(0)
    noise = 0.01 * torch.randn(1, 2, n, generator=g, dtype=torch.float64)
    alt = (-1.0) ** torch.arange(n, dtype=torch.float64)
    lines = torch.stack([0.1 * alt, 0.1 + 0.1 * alt])[None]  # DC and Nyquist in the sub-bands
    dirty = idwt_haar(noise + lines)[0, 0]
    clean = idwt_haar(remove_cutoff_alias(noise + lines, 22050))[0, 0]
    for freq in (22050 / 4, 22050 / 2 - 11):  # where the sub-band lines land after the inverse DWT
        assert _line_ratio(dirty, freq) > 100
        assert _line_ratio(clean, freq) < 5
    # The rest of the spectrum is kept: same power in 1-4 kHz.
    from scipy.signal import welch

    f, p_in = welch(idwt_haar(noise)[0, 0].numpy(), fs=22050, nperseg=1024)
    _, p_out = welch(clean.numpy(), fs=22050, nperseg=1024)
    band = (f > 1000) & (f < 4000)
    assert p_out[band].sum() == pytest.approx(p_in[band].sum(), rel=0.1)


def test_synthesize_from_silence_has_no_line_at_half_or_quarter_rate():
    torch.manual_seed(0)
    silent = torch.full((1, 80, 120), math.log(1e-5))
    ratios = {}
    for flag in (False, True):
        model = FreGrad.from_preset("small", remove_cutoff_alias=flag).eval()
        wav = model.synthesize(silent, num_steps=6, generator=torch.Generator().manual_seed(0))[0]
        ratios[flag] = _line_ratio(wav, 22050 / 2 - 11)
    assert ratios[False] > 10  # the band-split convs' line (fs/2 from the high band's offset)...
    assert ratios[True] < 5  # ...is gone with the post-filter (on by default)
    assert FreGrad.from_preset("small").config.remove_cutoff_alias


def test_default_prior_of_a_crop_equals_the_prior_of_the_whole_utterance():
    mel = _mel(1, 300, seed=3) + 3.0
    whole = compute_band_std(mel)  # (1, 2, 300)
    crop = compute_band_std(mel[..., 100:162])  # a 62-frame training crop
    torch.testing.assert_close(crop, whole[..., 100:162])
    # The reference's frame-rate filtering decays the track along the utterance (why it is off).
    filtered = compute_band_std(mel, filter_track=True)
    assert filtered[..., 200:].mean() < 0.5 * filtered[..., :30].mean()
    assert not FreGrad.from_preset("small").config.filter_prior


def test_calibrated_prior_follows_each_sub_band_level():
    from accelerando.audio import mel_spectrogram
    from accelerando.vocoders.fregrad.prior import (
        compute_calibrated_band_std,
        fit_band_scales,
        prior_split_bin,
    )

    split = prior_split_bin(80, 22050, 0.0, 8000.0)
    assert 60 < split < 80  # the bin at 5512 Hz on the 0-8 kHz slaney scale
    g = torch.Generator().manual_seed(0)
    t = torch.arange(22050) / 22050
    pairs = []
    for level in (0.05, 0.2, 0.5):  # a low tone plus a quieter 7 kHz tone, at three levels
        wav = level * (torch.sin(2 * math.pi * 300 * t) + 0.2 * torch.sin(2 * math.pi * 7000 * t))
        wav = wav + 1e-4 * torch.randn(wav.shape, generator=g)
        pairs.append((wav, mel_spectrogram(wav)))
    scales = fit_band_scales(pairs, split)
    wav, mel = pairs[1]
    std = compute_calibrated_band_std(mel, scales, split)[0, :, 10:-10]  # (2, frames) away from the edges
    rms = dwt_haar(wav[None, None, : mel.shape[-1] * 256])[0].reshape(2, -1, 128).pow(2).mean(-1).sqrt()
    torch.testing.assert_close(std, rms[:, 10:-10].float(), rtol=0.15, atol=0.0)  # sigma tracks the level
    silent = torch.full((1, 80, 20), math.log(1e-5))
    assert compute_calibrated_band_std(silent, scales, split, std_min=0.005).max() == pytest.approx(0.005)
    # Linear in the amplitude: twice the level, twice sigma.
    loud = compute_calibrated_band_std(mel + math.log(2.0), scales, split)[0, :, 10:-10]
    torch.testing.assert_close(loud, 2 * std, rtol=1e-4, atol=1e-6)


def test_calibrated_prior_config_round_trip_and_errors(tmp_path):
    model = FreGrad.from_preset(
        "small",
        residual_layers=2,
        prior="calibrated",
        prior_scales=[0.1, 1.4],
        prior_split_bin=71,
        std_min=0.005,
    )
    model.save_pretrained(tmp_path)
    loaded = FreGrad.from_pretrained(tmp_path)
    mel = _mel(1, 8)
    torch.testing.assert_close(loaded.band_std(mel), model.band_std(mel))
    assert loaded.band_std(torch.full((1, 80, 4), math.log(1e-5))).max() == pytest.approx(0.005)
    with pytest.raises(ValueError, match="prior must be one of"):
        FreGrad.from_preset("small", prior="flat")
    with pytest.raises(ValueError, match="needs prior_scales"):
        FreGrad.from_preset("small", prior="calibrated")


def test_preconditioned_network_works_in_units_of_sigma():
    torch.manual_seed(0)
    plain = FreGrad.from_preset("small", residual_layers=2).eval()
    pre = FreGrad.from_preset("small", residual_layers=2, precondition=True).eval()
    pre.load_state_dict(plain.state_dict())
    mel = _mel(1, 8)
    std = pre.band_std(mel)
    x = torch.randn(std.shape, generator=torch.Generator().manual_seed(1)) * std
    step = torch.tensor([10.0])
    with torch.no_grad():
        torch.testing.assert_close(
            pre._predict_noise(pre, x, step, mel, std), std * plain(x / std, step, mel)
        )
        torch.testing.assert_close(plain._predict_noise(plain, x, step, mel, std), plain(x, step, mel))
    loss, parts = pre.training_loss(torch.randn(2, 64 * 256) * 0.1, _mel(2, 64), generator=torch.Generator())
    assert torch.isfinite(loss) and set(parts) == {"mse_low", "mse_high", "stft_low", "stft_high"}
    wav = pre.synthesize(mel, num_steps=2, generator=torch.Generator().manual_seed(0))
    assert wav.shape == (1, 8 * 256) and bool(torch.isfinite(wav).all())
