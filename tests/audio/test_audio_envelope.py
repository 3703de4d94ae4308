"""Mel-envelope matching: exact when nothing needs moving, closer with each pass, stream == whole, errors."""

from __future__ import annotations

import math

import pytest
import torch

from accelerando.audio import MelConfig, MelEnvelopeMatch, match_mel_envelope, mel_spectrogram

CFG = MelConfig()


def _harmonic(frames: int, f0: float = 140.0, batch: int = 1, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(frames * CFG.hop_length) / CFG.sample_rate
    tone = sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, 20))
    return (0.1 * tone + 0.01 * torch.randn(batch, t.numel(), generator=g)).float()  # (B, T)


def _mel_l1(wav: torch.Tensor, mel: torch.Tensor) -> float:
    return float((mel_spectrogram(wav, CFG) - mel).abs().mean())


def test_a_waveform_that_already_has_the_mel_comes_back_unchanged():
    wav = _harmonic(40, batch=2)
    out = match_mel_envelope(wav, mel_spectrogram(wav, CFG), passes=2)
    torch.testing.assert_close(out, wav, atol=2e-5, rtol=1e-4)


def test_each_pass_brings_the_log_mel_closer_and_keeps_the_length():
    target = mel_spectrogram(_harmonic(60, f0=120.0, seed=1), CFG)  # (1, 80, 60)
    start = _harmonic(60, f0=180.0, seed=2) * torch.linspace(0.2, 2.0, 60 * 256)  # another pitch and loudness
    errors = [_mel_l1(start, target)]
    for passes in (1, 2, 3):
        out = match_mel_envelope(start, target, passes=passes)
        assert out.shape == start.shape and torch.isfinite(out).all()
        errors.append(_mel_l1(out, target))
    assert errors[1] < 0.5 * errors[0]
    assert errors[3] < errors[2] < errors[1]


def test_the_gain_of_one_pass_is_bounded():
    wav = _harmonic(30)
    louder = match_mel_envelope(wav, mel_spectrogram(wav, CFG) + 10.0, max_gain_db=6.0)  # asks for +87 dB
    ratio = float(louder[:, 2048:-2048].pow(2).mean().sqrt() / wav[:, 2048:-2048].pow(2).mean().sqrt())
    assert 1.9 < ratio < 2.01  # +6 dB and no more


@pytest.mark.parametrize("passes", [1, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_stream_chunk_by_chunk_equals_one_call(passes, seed):
    g = torch.Generator().manual_seed(seed)
    wav = _harmonic(50, batch=2, seed=seed)
    mel = mel_spectrogram(_harmonic(50, f0=100.0, batch=2, seed=seed + 7), CFG)
    whole = match_mel_envelope(wav, mel, passes=passes)
    stream = MelEnvelopeMatch(CFG, passes=passes, batch_size=2)
    parts, sample, frame = [], 0, 0
    while sample < wav.shape[-1] or frame < mel.shape[-1]:
        n = int(torch.randint(0, 1500, (1,), generator=g))  # empty chunks too
        f = int(torch.randint(0, 8, (1,), generator=g))  # the mel runs ahead of or behind the audio
        parts.append(stream.push(wav[:, sample : sample + n], mel[..., frame : frame + f]))
        sample, frame = sample + n, frame + f
    parts.append(stream.finish())
    streamed = torch.cat(parts, dim=-1)
    assert streamed.shape == whole.shape
    torch.testing.assert_close(streamed, whole, atol=1e-5, rtol=1e-4)


def test_a_waveform_shorter_than_the_reflect_padding_is_returned_as_is():
    wav = _harmonic(1)  # 256 samples < the 384 of padding a side
    torch.testing.assert_close(match_mel_envelope(wav[0], torch.zeros(80, 1) - 5), wav[0])


def test_bad_input_is_a_clear_error():
    wav = _harmonic(10)
    mel = mel_spectrogram(wav, CFG)
    with pytest.raises(ValueError, match="so 10 mel frames of hop 256; the mel has 9"):
        match_mel_envelope(wav, torch.zeros(1, 80, 9))
    with pytest.raises(ValueError, match="passes must be a whole number >= 1; got 0"):
        match_mel_envelope(wav, mel, passes=0)
    with pytest.raises(ValueError, match="max_gain_db must be a finite number > 0"):
        match_mel_envelope(wav, mel, max_gain_db=-3)
    with pytest.raises(ValueError, match=r"mel must be \(1, 80, frames\)"):
        match_mel_envelope(wav, mel[:, :40])
    stream = MelEnvelopeMatch(CFG)
    stream.push(wav, mel[..., :5])
    with pytest.raises(ValueError, match="the mel given has 5"):
        stream.finish()
    with pytest.raises(RuntimeError, match="finished"):
        stream.push(wav, mel)
