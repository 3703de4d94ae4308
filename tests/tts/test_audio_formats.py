"""Incremental encoders of the speech API's formats: streamed as they go, decodable, right rate and length."""

from __future__ import annotations

import io
import subprocess
import sys
from dataclasses import FrozenInstanceError

import av
import numpy as np
import pytest
import scipy.signal
import soxr

from accelerando.tts.audio_formats import FORMATS, AudioEncoder, FormatInfo, encode_all
from accelerando.tts.wav_stream import parse_wav, pcm16_to_float

RATE = 22050
LOSSY = ["mp3", "opus", "aac"]
CHUNK_SIZES = [100, 2048, 1, 5000, 0, 333, 7000, 1500, 4096]  # uneven; the rest comes in 3000s


def _signal(seconds: float = 1.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    chirp = scipy.signal.chirp(t, f0=200.0, t1=t[-1], f1=4000.0)
    return (0.4 * np.sin(2 * np.pi * 440.0 * t) + 0.3 * chirp).astype(np.float32)


SIGNAL = _signal()


def _chunks(audio: np.ndarray) -> list[np.ndarray]:
    bounds = np.cumsum(CHUNK_SIZES)
    bounds = np.concatenate([bounds, np.arange(bounds[-1] + 3000, len(audio), 3000)])
    return np.split(audio, bounds[bounds < len(audio)])


def _encode_chunked(fmt: str, audio: np.ndarray = SIGNAL) -> tuple[list[bytes], bytes]:
    encoder = AudioEncoder(fmt, RATE)
    parts = [encoder.encode(chunk) for chunk in _chunks(audio)]
    return parts, encoder.finish()


def _decode(data: bytes) -> tuple[int, np.ndarray]:
    """(sample rate, float32 mono samples) of a file PyAV can open; 16-bit samples are scaled by 1/32767."""
    with av.open(io.BytesIO(data)) as container:
        rate = container.streams.audio[0].codec_context.sample_rate
        frames = [frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)]
    samples = np.concatenate(frames)
    if np.issubdtype(samples.dtype, np.integer):
        return rate, samples.astype(np.float32) / 32767.0
    return rate, samples.astype(np.float32)


def _aligned_correlation(
    decoded: np.ndarray, reference: np.ndarray, max_lag: int = 3000
) -> tuple[float, int]:
    """Best normalised correlation of ``decoded`` against ``reference`` for a delay of 0..±max_lag samples."""
    lags = scipy.signal.correlation_lags(len(decoded), len(reference))
    xcorr = scipy.signal.correlate(decoded, reference, method="fft")
    keep = np.abs(lags) <= max_lag
    lag = int(lags[keep][np.argmax(xcorr[keep])])
    a = decoded[max(lag, 0) :]
    b = reference[max(-lag, 0) :]
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n], b[:n])[0, 1]), lag


@pytest.fixture(scope="module")
def encoded() -> dict[str, tuple[list[bytes], bytes]]:
    """Each format's chunked encoding of SIGNAL: (what each encode call returned, what finish returned)."""
    return {fmt: _encode_chunked(fmt) for fmt in FORMATS}


def test_formats_table() -> None:
    assert list(FORMATS) == ["mp3", "opus", "aac", "flac", "wav", "pcm"]
    media = {name: info.media_type for name, info in FORMATS.items()}
    assert media == {
        "mp3": "audio/mpeg",
        "opus": "audio/ogg",
        "aac": "audio/aac",
        "flac": "audio/flac",
        "wav": "audio/wav",
        "pcm": "audio/pcm",
    }
    assert FORMATS["pcm"].sample_rate == FORMATS["mp3"].sample_rate == 24000
    assert (
        FORMATS["opus"].sample_rate == 48000
        and FORMATS["wav"].sample_rate is FORMATS["flac"].sample_rate is None
    )
    assert all(isinstance(info, FormatInfo) and info.name == name for name, info in FORMATS.items())
    with pytest.raises(FrozenInstanceError):
        FORMATS["mp3"].sample_rate = 44100  # type: ignore[misc]
    for fmt, info in FORMATS.items():
        encoder = AudioEncoder(fmt, RATE)
        assert encoder.media_type == info.media_type and encoder.output_rate == (info.sample_rate or RATE)
        encoder.close()


@pytest.mark.parametrize("fmt", [*LOSSY, "flac"])
def test_streams_before_finish_and_decodes_to_the_input(encoded, fmt: str) -> None:
    parts, tail = encoded[fmt]
    audio_parts = parts[1:]  # parts[0] (100 samples) holds at most the container's header
    assert any(audio_parts), f"{fmt}: no audio bytes before finish()"
    assert sum(map(len, audio_parts)) > len(tail)  # most of the stream came out before finish()
    rate, decoded = _decode(b"".join(parts) + tail)
    assert rate == (FORMATS[fmt].sample_rate or RATE)
    assert abs(len(decoded) / rate - len(SIGNAL) / RATE) < 0.05
    if fmt == "flac":  # lossless: the 16-bit quantised input, sample for sample
        np.testing.assert_allclose(decoded, np.round(SIGNAL * 32767) / 32767, atol=1e-4)
        return
    reference = soxr.resample(SIGNAL, RATE, rate, "HQ")
    correlation, lag = _aligned_correlation(decoded, reference)
    assert correlation > 0.9, (fmt, correlation, lag)
    assert 0 <= lag < 0.03 * rate  # the codec's lead-in (if any) is short; nothing comes early


@pytest.mark.parametrize("fmt", [*LOSSY, "flac"])
def test_first_audio_bytes_come_within_150_ms_of_input(fmt: str) -> None:
    encoder = AudioEncoder(fmt, RATE)
    encoder.encode(np.zeros(0, np.float32))  # the container's header, if any
    step = RATE // 100  # 10 ms chunks
    fed = 0
    while not encoder.encode(SIGNAL[fed : fed + step]):
        fed += step
        assert fed < 0.15 * RATE, f"{fmt}: no audio bytes after {fed} input samples"
    encoder.close()


def test_wav_returns_bytes_for_every_chunk_and_the_exact_samples(encoded) -> None:
    parts, tail = encoded["wav"]
    chunks = _chunks(SIGNAL)
    assert tail == b"" and parts[0][:4] == b"RIFF" and len(parts[0]) == 44 + 2 * len(chunks[0])
    assert [len(p) for p in parts[1:]] == [2 * len(c) for c in chunks[1:]]
    rate, decoded = parse_wav(b"".join(parts))
    assert rate == RATE
    np.testing.assert_allclose(decoded, np.round(SIGNAL * 32767) / 32767, atol=1e-4)
    pyav_rate, pyav_decoded = _decode(b"".join(parts))  # the unknown-length header is fine for FFmpeg too
    assert pyav_rate == RATE and np.array_equal(pyav_decoded, decoded)


def test_pcm_is_24k_s16le_and_keeps_up_with_the_input(encoded) -> None:
    parts, tail = encoded["pcm"]
    fed = np.cumsum([len(c) for c in _chunks(SIGNAL)]) * 24000 / RATE
    out = np.cumsum([len(p) // 2 for p in parts])
    assert np.all(out >= fed - 1000)  # only the resampler's latency (< 1000 samples) is held back
    assert all(len(p) for p, c in zip(parts, _chunks(SIGNAL)) if len(c) >= 1000)
    decoded = pcm16_to_float(b"".join(parts) + tail)
    reference = soxr.resample(SIGNAL, RATE, 24000, "HQ")
    assert len(decoded) == len(reference)
    np.testing.assert_allclose(decoded, reference, atol=1e-3)


@pytest.mark.parametrize("fmt", ["wav", "pcm", "flac"])
def test_chunked_equals_one_chunk(encoded, fmt: str) -> None:
    parts, tail = encoded[fmt]
    chunked, whole = b"".join(parts) + tail, encode_all(SIGNAL, fmt, RATE)
    if fmt == "pcm":
        np.testing.assert_allclose(pcm16_to_float(chunked), pcm16_to_float(whole), atol=1e-3)
    else:
        assert chunked == whole


def test_samples_are_clipped_and_empty_input_is_a_valid_file() -> None:
    loud = np.array([2.0, -3.0, 0.5], np.float32)
    assert parse_wav(encode_all(loud, "wav", RATE))[1] == pytest.approx([1.0, -1.0, 0.5], abs=1e-4)
    rate, decoded = _decode(encode_all(np.tile(loud, 2000), "flac", RATE))
    assert rate == RATE and decoded.max() == 1.0 and decoded.min() == -1.0
    assert parse_wav(encode_all(np.zeros(0, np.float32), "wav", RATE)) == (RATE, pytest.approx([]))
    assert encode_all(np.zeros(0, np.float32), "pcm", RATE) == b""


def test_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match=r"Unknown audio format 'ogg'.*mp3, opus, aac, flac, wav, pcm"):
        AudioEncoder("ogg", RATE)
    with pytest.raises(ValueError, match="sample_rate must be a positive integer"):
        AudioEncoder("wav", 0)
    with pytest.raises(ValueError, match="bitrate must be a positive integer"):
        AudioEncoder("mp3", RATE, bitrate=-64000)
    encoder = AudioEncoder("mp3", RATE)
    with pytest.raises(ValueError, match=r"must be 1-D.*shape \(2, 100\)"):
        encoder.encode(np.zeros((2, 100), np.float32))
    with pytest.raises(ValueError, match="1 non-finite sample"):
        encoder.encode(np.array([0.0, np.nan, 0.1], np.float32))
    with pytest.raises(ValueError, match="floating-point samples.*int16"):
        encoder.encode(np.zeros(10, np.int16))
    encoder.encode(np.zeros(3000, np.float32))  # the bad chunks left the encoder usable
    encoder.finish()
    with pytest.raises(RuntimeError, match="already finished; cannot encode"):
        encoder.encode(np.zeros(10, np.float32))
    with pytest.raises(RuntimeError, match="already finished; cannot finish"):
        encoder.finish()


def test_close_releases_an_abandoned_encoder() -> None:
    with AudioEncoder("opus", RATE) as encoder:
        encoder.encode(SIGNAL[:5000])
    assert encoder.finished
    with pytest.raises(RuntimeError, match="already finished"):
        encoder.encode(SIGNAL[:10])
    encoder.close()  # a second close is a no-op


def test_import_is_cheap() -> None:
    code = (
        "import sys, accelerando.tts.audio_formats as m; "
        "print(sorted(n for n in ('av', 'soxr', 'torch') if n in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
