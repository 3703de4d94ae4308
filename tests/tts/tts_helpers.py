"""Tiny random models for the streaming-engine and speech-server tests."""

from __future__ import annotations

import time

import numpy as np
import torch

from accelerando.tts import IncrementalFastPitch

TINY = dict(
    d_model=32,
    d_head=16,
    n_heads=2,
    conv_filter=64,
    enc_layers=1,
    dec_layers=2,
    predictor_filters=32,
    aligner_channels=16,
    dropout=0.0,
    attn_dropout=0.0,
    predictor_dropout=0.0,
    n_speakers=2,
    speakers=["ana", "bob"],
)


def tiny_fastpitch(frames_per_token: float = 4.0, seed: int = 0) -> IncrementalFastPitch:
    """A random tiny Incremental FastPitch whose durations are fixed (an untrained one's are ~0)."""
    torch.manual_seed(seed)
    model = IncrementalFastPitch.from_preset("small", **TINY).eval()
    with torch.no_grad():
        model.duration_predictor.proj.weight.zero_()
        model.duration_predictor.proj.bias.fill_(float(np.log1p(frames_per_token)))
    return model


class LocalVocoder:
    """A deterministic vocoder stand-in whose output depends only on mel frames within ±2 of a sample.

    A transposed conv (kernel 4 hops, stride 1 hop) + tanh: translation-equivariant by one hop, so
    stitched windows with enough context reproduce the whole-utterance output exactly.
    """

    sample_rate = 22050
    hop_length = 256

    def __init__(self, n_mels: int = 80, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.kernel = torch.randn(n_mels, 1, 4 * self.hop_length, generator=gen) * 0.02  # (n_mels, 1, K)

    def synthesize(self, mel: torch.Tensor, num_steps=None, generator=None) -> torch.Tensor:
        frames = mel.shape[-1]
        out = torch.nn.functional.conv_transpose1d(mel.float(), self.kernel, stride=self.hop_length)
        start = 3 * self.hop_length // 2
        return torch.tanh(out[:, 0, start : start + frames * self.hop_length])  # (B, frames * hop)


class CountingVocoder(LocalVocoder):
    """LocalVocoder that counts calls and can be slowed down (to observe cancellation)."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay
        self.calls = 0

    def synthesize(self, mel, num_steps=None, generator=None):
        self.calls += 1
        time.sleep(self.delay)
        return super().synthesize(mel, num_steps, generator)
