"""The Griffin-Lim reference vocoder: exact length, alignment, and mel round trip."""

from __future__ import annotations

import pytest
import torch
from metrics_signals import speechlike

from accelerando.audio import MelConfig, mel_spectrogram
from accelerando.vocoders.griffin_lim import GriffinLim


@pytest.fixture(scope="module")
def wav() -> torch.Tensor:
    audio = torch.tensor(speechlike(seconds=0.75), dtype=torch.float32)
    return audio[: (audio.shape[0] // 256) * 256]


def test_output_length_is_frames_times_hop_and_mel_round_trips(wav):
    mel = mel_spectrogram(wav)  # (1, 80, frames)
    vocoder = GriffinLim(n_iter=32)
    out = vocoder.synthesize(mel)
    assert out.shape == (1, mel.shape[-1] * 256) and out.dtype == torch.float32
    remel = mel_spectrogram(out[0])
    err = (remel - mel).abs()[..., 2:-2].mean().item()
    silence = (mel_spectrogram(torch.zeros_like(wav)) - mel).abs().mean().item()
    assert err < 0.5 < silence


def test_output_is_aligned_with_the_input_audio(wav):
    mel = mel_spectrogram(wav)
    out = GriffinLim(n_iter=16).synthesize(mel[0])[0]  # a (80, frames) input works too

    def error(shift: int) -> float:
        return (mel_spectrogram(torch.roll(out, shift)) - mel).abs()[..., 4:-4].mean().item()

    assert error(0) < min(error(-128), error(128))


def test_batch_and_contract_arguments(wav):
    mel = mel_spectrogram(torch.stack([wav, 0.5 * wav]))  # (2, 80, frames)
    vocoder = GriffinLim(MelConfig(), n_iter=4)
    out = vocoder.synthesize(mel, num_steps=7, generator=torch.Generator())
    assert out.shape == (2, mel.shape[-1] * 256)
    assert torch.equal(vocoder.synthesize(mel[:1]), vocoder.synthesize(mel[:1]))  # seeded phase
    assert vocoder.sample_rate == 22050 and vocoder.hop_length == 256
    with pytest.raises(ValueError, match="mel must have shape"):
        vocoder.synthesize(torch.zeros(2, 40, 10))
    with pytest.raises(TypeError, match=r"config must be a MelConfig or None; got 32 .*n_iter=32"):
        GriffinLim(32)  # the iterations are a keyword, not the first argument
