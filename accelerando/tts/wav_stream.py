"""Audio byte formats of the speech API: streamed WAV header, 16-bit PCM, and a tolerant parser.

A streamed WAV is a 44-byte RIFF/WAVE header whose RIFF and ``data`` sizes are ``0xFFFFFFFF``
("unknown length", as Kokoro-FastAPI and OpenAI send) followed by little-endian 16-bit mono PCM.
:func:`parse_wav` reads those (and ordinary WAVs) by taking the data chunk to the end of the bytes.
"""

from __future__ import annotations

import struct

import numpy as np

__all__ = [
    "UNKNOWN_SIZE",
    "WAV_HEADER_BYTES",
    "float_to_pcm16",
    "parse_wav",
    "pcm16_to_float",
    "wav_header",
    "wav_sample_rate",
]

UNKNOWN_SIZE = 0xFFFFFFFF
WAV_HEADER_BYTES = 44  # the size of :func:`wav_header`'s header


def wav_sample_rate(header: bytes) -> int:
    """The sample rate of a canonical 44-byte PCM WAV header (as :func:`wav_header` writes)."""
    if len(header) < WAV_HEADER_BYTES or header[:4] != b"RIFF" or header[12:16] != b"fmt ":
        raise ValueError("Not a canonical 44-byte RIFF/WAVE header.")
    return struct.unpack("<I", header[24:28])[0]


def wav_header(sample_rate: int, num_samples: int | None = None, channels: int = 1) -> bytes:
    """A 44-byte PCM s16le WAV header; ``num_samples=None`` writes the unknown-length sizes."""
    block = 2 * channels
    if num_samples is None:
        riff_size = data_size = UNKNOWN_SIZE
    else:
        data_size = num_samples * block
        riff_size = 36 + data_size
    return (
        b"RIFF"
        + struct.pack("<I", riff_size)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block, block, 16)
        + b"data"
        + struct.pack("<I", data_size)
    )


def float_to_pcm16(audio: np.ndarray) -> bytes:
    """float audio in [-1, 1] (clipped) → little-endian 16-bit PCM bytes."""
    clipped = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    return (clipped * 32767.0).round().astype("<i2").tobytes()


def pcm16_to_float(data: bytes) -> np.ndarray:
    """Little-endian 16-bit PCM bytes → float32 in [-1, 1] (a trailing odd byte is dropped)."""
    usable = len(data) - len(data) % 2
    return np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32767.0


def parse_wav(data: bytes) -> tuple[int, np.ndarray]:
    """``(sample_rate, float32 samples)`` of a mono or multi-channel s16le WAV, streamed or not.

    Raises ``ValueError`` naming what is wrong when the bytes are not such a WAV.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("Not a RIFF/WAVE file.")
    pos, sample_rate, channels = 12, None, 1
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = pos + 8
        if chunk_id == b"fmt ":
            fmt, channels, sample_rate, _, _, bits = struct.unpack("<HHIIHH", data[body : body + 16])
            if fmt != 1 or bits != 16:
                raise ValueError(f"Only 16-bit PCM WAV is supported (format {fmt}, {bits} bits).")
        elif chunk_id == b"data":
            if sample_rate is None:
                raise ValueError("WAV data chunk comes before its fmt chunk.")
            end = len(data) if size == UNKNOWN_SIZE else min(len(data), body + size)
            samples = pcm16_to_float(data[body:end])
            return sample_rate, samples.reshape(-1, channels)[:, 0] if channels > 1 else samples
        pos = body + size + (size & 1)
    raise ValueError("WAV has no data chunk.")
