"""Biquad filters: exact zeros at DC / Nyquist, passband kept, agreement with the direct recursion, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from accelerando.audio.filters import biquad, biquad_coefficients


def _direct(x: np.ndarray, b: list[float], a: list[float]) -> np.ndarray:
    y = np.zeros_like(x)
    for n in range(len(x)):
        acc = sum(b[k] * x[n - k] for k in range(3) if n - k >= 0)
        acc -= sum(a[k] * y[n - k] for k in (1, 2) if n - k >= 0)
        y[n] = acc
    return y


def test_biquad_matches_the_recursion_and_keeps_shape_dtype():
    x = torch.randn(2, 3, 300, generator=torch.Generator().manual_seed(0))
    y = biquad(x, "lowpass", 1000.0, 8000.0)
    assert y.shape == x.shape and y.dtype == x.dtype
    b, a = biquad_coefficients("lowpass", 1000.0, 8000.0)
    np.testing.assert_allclose(y[1, 2].numpy(), _direct(x[1, 2].double().numpy(), b, a), atol=1e-5)


@pytest.mark.parametrize("kind", ["highpass", "lowpass"])
def test_biquad_zero_at_dc_or_nyquist_and_passband_kept(kind):
    rate, n = 11025.0, 20000
    t = np.arange(n)
    line = np.ones(n) if kind == "highpass" else (-1.0) ** t  # the component the filter must remove
    tone = np.sin(2 * np.pi * 1000.0 * t / rate)  # well inside the passband of both
    cutoff = 5.0 if kind == "highpass" else 5500.0
    y_line = biquad(torch.tensor(line), kind, cutoff, rate).numpy()
    y_tone = biquad(torch.tensor(tone), kind, cutoff, rate).numpy()
    tail = slice(n // 2, None)  # after the transient
    assert np.abs(y_line[tail]).max() < 1e-6
    assert np.sqrt(np.mean(y_tone[tail] ** 2)) == pytest.approx(math.sqrt(0.5), rel=0.02)


def test_biquad_clamp_and_errors():
    assert biquad(torch.full((50,), 4.0), "lowpass", 100.0, 1000.0, clamp=True).max() <= 1.0
    with pytest.raises(ValueError, match="kind must be one of"):
        biquad(torch.zeros(10), "bandpass", 100.0, 1000.0)
    with pytest.raises(ValueError, match="cutoff must lie in"):
        biquad(torch.zeros(10), "lowpass", 600.0, 1000.0)
