"""PeriodWave / PeriodWave-Turbo: sizes, period reshapes, flow-matching invariants, sampling, save/load, errors."""

from __future__ import annotations

import math

import pytest
import torch

from accelerando.vocoders.periodwave import (
    PeriodWave,
    PeriodWaveTurbo,
    period_reshape,
    period_unreshape,
)

PAPER_SIZES = {"S": 7.57e6, "B": 29.80e6, "L": 70.24e6}


@pytest.fixture(scope="module")
def tiny() -> PeriodWave:
    torch.manual_seed(0)
    return PeriodWave.from_preset("tiny").eval()


def _mel(batch: int = 2, frames: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 80, frames, generator=torch.Generator().manual_seed(seed)) - 5.0


@pytest.mark.parametrize("name", sorted(PAPER_SIZES))
def test_presets_match_the_paper_sizes(name):
    count = PeriodWave.from_preset(name).num_parameters()
    assert abs(count - PAPER_SIZES[name]) / PAPER_SIZES[name] < 0.03, count


def test_tiny_preset_is_small(tiny):
    assert tiny.num_parameters() < 200_000


# Every period and odd lengths, where reflect padding is possible (it needs pad < length).
RESHAPE_CASES = [
    (period, length, multiple)
    for period in (1, 2, 3, 5, 7, 11)
    for length in (1, 7, 257, 1001, 4097)
    for multiple in (1, 64)
    if -length % (multiple * period) < length
]


@pytest.mark.parametrize(("period", "length", "multiple"), RESHAPE_CASES)
def test_period_reshape_round_trip_is_exact(period, length, multiple):
    x = torch.randn(2, 3, length, dtype=torch.float64)
    folded = period_reshape(x, period, multiple)  # (B, C, T' / p, p)
    assert folded.shape[-1] == period and folded.shape[2] * period % (multiple * period) == 0
    flat = folded.reshape(2, 3, -1)
    assert torch.equal(flat[..., :length], x)  # row i, column j holds sample i * p + j
    assert torch.equal(period_unreshape(folded, length), x)


def test_forward_shape_and_mel_encoding_reuse(tiny):
    mel = _mel(frames=5)
    x = torch.randn(2, 1, 5 * 256)
    t = torch.tensor([0.1, 0.9])
    with torch.no_grad():
        v = tiny(x, t, mel)
        v_cached = tiny(x, t, cond=tiny.encode_mel(mel))
    assert v.shape == (2, 1, 5 * 256)
    torch.testing.assert_close(v, v_cached)


def test_flow_matching_loss_is_zero_for_the_true_velocity(tiny):
    mel = _mel(frames=4).double()
    audio = 0.3 * torch.randn(2, 4 * 256, dtype=torch.float64)
    sigma_min = tiny.config.sigma_min

    def true_velocity(x_t, t, mel):  # invert x_t = (1 - (1 - s) t) x0 + t x1 for x0, then u = x1 - (1 - s) x0
        t = t[:, None, None]
        x0 = (x_t - t * audio[:, None]) / (1 - (1 - sigma_min) * t)
        return audio[:, None] - (1 - sigma_min) * x0

    loss = tiny.flow_matching_loss(audio, mel, torch.Generator().manual_seed(1), estimator=true_velocity)
    assert loss.item() < 1e-20
    zero = tiny.flow_matching_loss(audio, mel, estimator=lambda x, t, m: torch.zeros_like(x))
    assert zero.item() > 1.0
    learned = tiny.flow_matching_loss(audio.float(), mel.float())
    assert learned.requires_grad and math.isfinite(learned.item())


class _GaussianFlow(PeriodWave):
    """PeriodWave whose velocity is the exact OT-CFM field from its prior N(0, a^2) to N(mu, b^2) per sample."""

    mu, b = 0.3, 0.05

    def forward(self, x_t, t, mel=None, cond=None):
        a = self.a
        s = self.config.sigma_min
        t = t.reshape(-1, 1, 1).to(x_t.dtype)
        alpha = 1 - (1 - s) * t
        var = alpha**2 * a**2 + t**2 * self.b**2
        cov = t * self.b**2 - (1 - s) * alpha * a**2  # Cov(u, x_t)
        return self.mu + cov / var * (x_t - t * self.mu)


@pytest.mark.parametrize(
    ("method", "steps", "tol"),
    [
        ("midpoint", 16, 1e-4),
        ("rf_solver", 16, 1e-4),
        ("rf_solver3", 16, 1e-4),
        ("fireflow", 24, 1e-3),
        ("euler", 400, 2e-3),
    ],  # fmt: skip
)
def test_sampler_with_the_exact_field_transports_prior_to_target(method, steps, tol):
    model = _GaussianFlow.from_preset("tiny").eval()
    mel = torch.full((1, 80, 8), -2.0)  # constant energy: one prior std for every sample
    a = model.config.noise_scale * model.prior_std(mel)[0, 0].item()
    model.a = a
    out = model.synthesize(
        mel, num_steps=steps, method=method, temperature=1.0, generator=torch.Generator().manual_seed(3)
    )
    x0 = model.sample_prior(mel, torch.Generator().manual_seed(3))[:, 0]
    s = model.config.sigma_min
    expected = model.mu + math.sqrt(s**2 * a**2 + model.b**2) / a * x0  # the exact affine flow map at t = 1
    assert (out - expected).abs().max().item() < tol * (1 + expected.abs().max().item())
    assert abs(out.mean().item() - model.mu) < 0.01 and abs(out.std().item() - model.b) < 0.01


@pytest.mark.parametrize("steps", [2, 4])
def test_turbo_unrolled_steps_equal_the_euler_sampler_at_initialisation(tiny, steps):
    turbo = PeriodWaveTurbo.from_periodwave(tiny, num_steps=steps)
    assert not turbo.training and turbo.config.num_steps == steps
    mel = _mel(frames=4)
    expected = tiny.synthesize(
        mel, num_steps=steps, method="euler", temperature=1.0, generator=torch.Generator().manual_seed(5)
    )
    got = turbo.synthesize(mel, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert torch.allclose(turbo.euler_times(), torch.linspace(0, 1, steps + 1))


def test_turbo_generate_train_is_differentiable(tiny):
    turbo = PeriodWaveTurbo.from_periodwave(tiny, num_steps=2).train()
    wav = turbo.generate_train(_mel(frames=3))
    assert wav.shape == (2, 1, 3 * 256)
    wav.square().mean().backward()
    assert turbo.final.out.parametrizations.weight.original1.grad is not None


def test_save_and_load_round_trip(tiny, tmp_path):
    mel = _mel(frames=3)
    tiny.save_pretrained(tmp_path / "pw")
    loaded = PeriodWave.from_pretrained(tmp_path / "pw").eval()
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    torch.testing.assert_close(loaded.synthesize(mel, 2, gen()), tiny.synthesize(mel, 2, gen()))
    turbo = PeriodWaveTurbo.from_periodwave(tiny, num_steps=2)
    turbo.save_pretrained(tmp_path / "turbo")
    turbo2 = PeriodWaveTurbo.from_pretrained(tmp_path / "turbo").eval()
    assert turbo2.config.num_steps == 2 and list(turbo2.config.periods) == [1, 2, 3, 5, 7]
    torch.testing.assert_close(
        turbo2.synthesize(mel, generator=gen()), turbo.synthesize(mel, generator=gen())
    )


def test_clear_errors_for_bad_inputs(tiny):
    with pytest.raises(ValueError, match="80 mel bins"):
        tiny.synthesize(torch.zeros(1, 100, 4))
    with pytest.raises(ValueError, match="NaN"):
        tiny.synthesize(torch.full((1, 80, 4), float("nan")))
    with pytest.raises(ValueError, match="too short"):
        tiny.synthesize(torch.zeros(1, 80, 0))
    with pytest.raises(ValueError, match="too short"):
        PeriodWave.from_preset("tiny", periods=[1, 13]).synthesize(torch.zeros(1, 80, 1) - 5)
    with pytest.raises(ValueError, match="batch, 80, frames"):
        tiny.synthesize(torch.zeros(80, 4))
    with pytest.raises(ValueError, match="Unknown sampling method"):
        tiny.synthesize(_mel(frames=2), method="dpm")
    with pytest.raises(ValueError, match="audio must be"):
        tiny.flow_matching_loss(torch.zeros(2, 100), _mel(frames=2))
    with pytest.raises(ValueError, match="Unknown PeriodWave preset"):
        PeriodWave.from_preset("XL")
    with pytest.raises(ValueError, match="hop_length"):
        PeriodWave.from_preset("tiny", hop_length=300)
    with pytest.raises(ValueError, match="2 or 4 Euler steps"):
        PeriodWaveTurbo.from_periodwave(tiny, num_steps=3)
    with pytest.raises(ValueError, match="energy_max"):
        PeriodWave.from_preset("tiny", energy_min=2.0, energy_max=1.0)


# ----------------------------------------------------------------------------------------- upsampling


def _line_ratio(wav: torch.Tensor, freq: float) -> float:
    from scipy.signal import welch

    f, p = welch(wav.numpy(), fs=22050, nperseg=2048)
    i = int(abs(f - freq).argmin())
    return float(p[max(i - 1, 0) : i + 2].max() / torch.tensor(p[max(i - 40, 0) : i + 40]).median())


def test_resize_upsampling_has_no_quarter_rate_line_where_transposed_has_one():
    silent = torch.full((1, 80, 128), math.log(1e-5))
    ratios = {}
    for mode in ("transposed", "resize"):
        torch.manual_seed(0)
        model = PeriodWave.from_preset("tiny", upsample_mode=mode).eval()
        with torch.no_grad():
            v = model(torch.zeros(1, 1, 128 * 256), torch.zeros(1), silent)[0, 0]  # velocity at x = 0
        ratios[mode] = _line_ratio(v, 22050 / 4)
    assert ratios["transposed"] > 100  # the paper's stride-4 transposed convs: a checkerboard at fs/4
    assert ratios["resize"] < 5


@pytest.mark.parametrize("dims", [1, 2])
def test_resize_conv_maps_a_constant_to_a_constant(dims):
    from accelerando.vocoders.periodwave.modules import ResizeConv

    torch.manual_seed(0)
    layer = ResizeConv(3, 2, 4, dims=dims)
    y = layer(torch.ones(1, 3, 16))  # (N, C, rows); a 2D layer's (k, 1) kernel runs along the rows
    assert y.shape[2] == 64
    inner = y[:, :, 8:-8]  # away from the zero padding at the edges
    torch.testing.assert_close(inner, inner[:, :, :1].expand_as(inner))


def test_column_layout_equals_the_2d_convolution():
    from accelerando.vocoders.periodwave.modules import conv_rows

    torch.manual_seed(0)
    x = torch.randn(2, 3, 20, 5)  # (B, C, rows, p)
    columns = x.permute(0, 3, 1, 2).reshape(10, 3, 20)
    for conv in (
        torch.nn.Conv2d(3, 4, (9, 1), (4, 1), padding=(4, 0)),
        torch.nn.Conv2d(3, 4, (3, 1), dilation=(2, 1), padding=(2, 0)),
        torch.nn.ConvTranspose2d(3, 4, (8, 1), (4, 1), padding=(2, 0), bias=False),
    ):
        ref = conv(x)  # (B, C_out, rows', p)
        out = conv_rows(conv, columns).reshape(2, 5, 4, -1).permute(0, 2, 3, 1)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_upsample_mode_round_trip_and_error(tmp_path):
    model = PeriodWaveTurbo.from_preset("tiny", upsample_mode="resize")
    model.save_pretrained(tmp_path)
    loaded = PeriodWaveTurbo.from_pretrained(tmp_path)
    assert loaded.config.upsample_mode == "resize"
    torch.testing.assert_close(loaded.state_dict(), model.state_dict())
    with pytest.raises(ValueError, match="upsample_mode must be one of"):
        PeriodWave.from_preset("tiny", upsample_mode="bilinear")
