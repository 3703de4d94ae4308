"""Synthetic test signals for the metrics tests (no corpus needed)."""

from __future__ import annotations

import numpy as np

SR = 22050


def speechlike(seconds: float = 1.5, sr: int = SR, seed: int = 0) -> np.ndarray:
    """A voiced, syllable-modulated harmonic tone with a gliding f0 (speech-like enough for PESQ/STOI)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140.0 + 30.0 * np.sin(2 * np.pi * 1.3 * t)  # Hz
    phase = 2 * np.pi * np.cumsum(f0) / sr
    harmonics = sum((0.6**k) * np.sin(k * phase + rng.uniform(0, 2 * np.pi)) for k in range(1, 16))
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 3.0 * t)) ** 1.5  # ~3 syllables per second
    return (0.25 * envelope * harmonics / np.max(np.abs(harmonics))).astype(np.float64)


def add_noise(clean: np.ndarray, snr_db: float, seed: int = 1) -> np.ndarray:
    """``clean`` plus white noise scaled to exactly ``snr_db``."""
    noise = np.random.default_rng(seed).standard_normal(clean.shape)
    noise *= np.sqrt(np.sum(clean**2) / (np.sum(noise**2) * 10 ** (snr_db / 10)))
    return clean + noise
