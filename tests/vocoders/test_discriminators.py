"""Shared GAN discriminators: the torch CQT, MPD / MS-SB-CQTD output shapes, LSGAN and feature losses."""

from __future__ import annotations

import math

import pytest
import torch

from accelerando.vocoders.discriminators import (
    ConstantQTransform,
    MultiPeriodDiscriminator,
    MultiScaleSubbandCQTDiscriminator,
    discriminator_loss,
    feature_loss,
    generator_loss,
)


@pytest.mark.parametrize("bins_per_octave", [24, 48])
@pytest.mark.parametrize("bin_index", [20, 100, 190])
def test_cqt_peaks_at_the_bin_of_a_sinusoid(bins_per_octave, bin_index):
    sr, fmin = 44100, 32.70
    k = bin_index * bins_per_octave // 24
    freq = fmin * 2 ** (k / bins_per_octave)
    cqt = ConstantQTransform(sr, 256, n_octaves=9, bins_per_octave=bins_per_octave, fmin=fmin)
    t = torch.arange(3 * sr) / sr  # the lowest kernels span about 1 s
    z = cqt(torch.sin(2 * math.pi * freq * t)[None])  # (1, n_bins, frames)
    assert z.is_complex() and z.shape == (1, 9 * bins_per_octave, math.ceil(3 * sr / 256))
    magnitude = z.abs()[0, :, 200:-200].mean(-1)  # frames whose kernels lie inside the signal
    assert magnitude.argmax().item() == k
    assert magnitude[k].item() == pytest.approx(0.5, abs=0.03)


def test_cqt_runs_in_float32_under_bf16_autocast():
    # `--mixed_precision bf16` wraps the discriminators in autocast; complex bf16 does not exist.
    cqt = ConstantQTransform(44100, 256, n_octaves=9, bins_per_octave=24, fmin=32.70)
    x = torch.randn(2, 4096) * 0.1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = cqt(x.bfloat16())
    assert z.dtype == torch.complex64
    torch.testing.assert_close(z, cqt(x.bfloat16().float()))
    cqtd = MultiScaleSubbandCQTDiscriminator(sample_rate=22050, filters=8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        real, fake, _, _ = cqtd(x[:, None], x)
    assert all(torch.isfinite(s).all() for s in real + fake)


def test_cqt_strided_correlation_matches_conv1d_forward_and_backward():
    # The CQT's frames x kernels matmul replaces F.conv1d, whose oneDNN backward crashed the process for
    # MS-SB-CQTD's third scale (hop 256, 48 bins per octave: kernel 363 at stride 4 after 6 octaves).
    from torch.nn import functional as F

    from accelerando.vocoders.discriminators import _strided_correlation

    kernels = torch.randn(96, 1, 363, dtype=torch.float64)
    for stride in (1, 4, 256):
        x = torch.randn(2, 1, 128 + 362, dtype=torch.float64, requires_grad=True)
        out = _strided_correlation(x, kernels, stride)
        grad = torch.randn_like(out)
        (got,) = torch.autograd.grad(out, x, grad)
        with torch.backends.mkldnn.flags(enabled=False):
            ref_out = F.conv1d(x, kernels, stride=stride)
            (ref,) = torch.autograd.grad(ref_out, x, grad)
        torch.testing.assert_close(out, ref_out)
        torch.testing.assert_close(got, ref)
    cqt = ConstantQTransform(44100, 256, n_octaves=9, bins_per_octave=48)
    for _ in range(5):  # the heap corruption showed after a few backward passes
        x = (torch.randn(2, 8192) * 0.1).requires_grad_()
        z = cqt(x)
        (z.real.square() + z.imag.square()).sum().backward()
        assert torch.isfinite(x.grad).all()


def test_cqt_rejects_bad_settings():
    with pytest.raises(ValueError, match="divisible"):
        ConstantQTransform(44100, 100, n_octaves=9)
    with pytest.raises(ValueError, match="Nyquist"):
        ConstantQTransform(22050, 256, n_octaves=9)


def test_discriminator_output_shapes():
    y, y_hat = torch.randn(2, 1, 4096) * 0.1, torch.randn(2, 4096) * 0.1
    mpd = MultiPeriodDiscriminator(channel_mult=0.125)
    real, fake, fmap_r, fmap_g = mpd(y, y_hat)
    assert len(real) == len(fake) == len(fmap_r) == 5 and all(len(f) == 6 for f in fmap_g)
    for p, score in zip((2, 3, 5, 7, 11), real):
        rows = math.ceil(4096 / p)
        for _ in range(4):
            rows = (rows - 1) // 3 + 1
        assert score.shape == (2, rows * p)

    cqtd = MultiScaleSubbandCQTDiscriminator(sample_rate=22050, filters=8)
    real, fake, fmap_r, fmap_g = cqtd(y, y_hat)
    assert len(real) == 3 and all(len(f) == 5 for f in fmap_r)
    for hop, bpo, score in zip((512, 256, 256), (24, 36, 48), real):
        bins = 9 * bpo
        for _ in range(3):
            bins = (bins - 1) // 2 + 1
        assert score.shape == (2, 1, 2 * 4096 // hop, bins)
        assert fake[0].shape == real[0].shape
    assert fmap_r[0][0].shape == (2, 8, 16, 9 * 24)

    with pytest.raises(ValueError, match="same shape"):
        cqtd(y, y_hat[:, :100])
    with pytest.raises(ValueError, match="batch, 1, samples"):
        mpd(torch.zeros(2, 2, 100), torch.zeros(2, 2, 100))


def test_discriminators_give_gradients_to_the_generator():
    y_hat = (torch.randn(1, 1, 2048) * 0.1).requires_grad_()
    cqtd = MultiScaleSubbandCQTDiscriminator(
        filters=4, hop_lengths=(256,), n_octaves=(9,), bins_per_octave=(24,)
    )
    _, fake, fmap_r, fmap_g = cqtd(torch.zeros(1, 1, 2048), y_hat)
    (generator_loss(fake) + feature_loss(fmap_r, fmap_g)).backward()
    assert y_hat.grad is not None and y_hat.grad.abs().sum() > 0


def test_lsgan_and_feature_losses():
    ones, zeros = [torch.ones(2, 3)] * 2, [torch.zeros(2, 3)] * 2
    assert discriminator_loss(ones, zeros).item() == 0.0
    assert discriminator_loss(zeros, ones).item() == pytest.approx(4.0)
    assert generator_loss(ones).item() == 0.0 and generator_loss(zeros).item() == pytest.approx(2.0)
    fmap = [[torch.ones(2, 2), torch.zeros(3)]]
    assert feature_loss(fmap, fmap).item() == 0.0
    assert feature_loss(fmap, [[torch.zeros(2, 2), torch.ones(3)]]).item() == pytest.approx(2.0)
