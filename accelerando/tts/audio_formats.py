"""Incremental audio encoders for the speech API's ``response_format`` (OpenAI's six formats).

The engine makes float32 mono audio in chunks; :class:`AudioEncoder` turns each chunk into the bytes of
the chosen format that are ready so far, so an HTTP body can be streamed as it is made and a client can
start decoding before the end. The concatenation of everything :meth:`AudioEncoder.encode` and
:meth:`AudioEncoder.finish` return is one valid file (stream) of that format.

========  ===============  =================  ================================================  ==========
format    media type       sample rate        codec / container                                 bit rate
========  ===============  =================  ================================================  ==========
``mp3``   ``audio/mpeg``   24000 Hz           MPEG-2 Layer III (libmp3lame), raw MP3 frames     64 kbit/s
``opus``  ``audio/ogg``    48000 Hz           Opus (libopus) in Ogg, as OpenAI sends            64 kbit/s
``aac``   ``audio/aac``    48000 Hz           AAC-LC (FFmpeg ``aac``) in ADTS frames            64 kbit/s
``flac``  ``audio/flac``   the engine's rate  FLAC, 16-bit, native FLAC stream                  lossless
``wav``   ``audio/wav``    the engine's rate  16-bit PCM after a streamed RIFF header           lossless
``pcm``   ``audio/pcm``    24000 Hz           raw s16le mono, no header (OpenAI documents 24k)  lossless
========  ===============  =================  ================================================  ==========

Every format is mono. Resampling (to 24 or 48 kHz) is streamed with ``soxr.ResampleStream`` (HQ), so
chunked output equals resampling the whole signal at once. The lossy formats and FLAC are encoded with
PyAV (FFmpeg) into an in-memory, non-seekable sink, so no muxer seeks back to patch a header and the
output is valid as a stream: FLAC's STREAMINFO keeps "unknown" (zero) total samples and MD5, which
FFmpeg, libFLAC and browsers accept but libsndfile (``soundfile``) cannot read; MP3 starts with a
LAME "Info" frame that carries the encoder delay only (frame count and padding are unknown).

Lossy codecs add a little audio: MP3 and AAC decode to 20-50 ms more than was encoded (FFmpeg's
decoder, measured: MP3 26-50 ms, lead-in trimmed to 24 ms by the Info frame; AAC 21-43 ms, ADTS cannot
signal its 1024-sample priming, hence 48 kHz where that is 21 ms); Ogg Opus is exact (pre-skip and the
final granule position trim it). The first audio bytes come out after about 80 ms of input for MP3 and
AAC, 117 ms for Opus (Ogg pages of ~40 ms) and 105 ms for FLAC (one 2304-sample block); the header (if
any) comes with the first call. wav returns bytes for every chunk, pcm for every chunk once the
resampler's ~25 ms latency is filled. ``av`` and ``soxr`` are imported when an encoder that needs them
is made, so importing this module is cheap.

Example::

    import numpy as np
    from accelerando.tts.audio_formats import AudioEncoder, encode_all

    rate = 22050
    audio = (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
    enc = AudioEncoder("mp3", rate)
    body = b"".join(enc.encode(chunk) for chunk in np.array_split(audio, 10)) + enc.finish()
    assert enc.media_type == "audio/mpeg" and enc.output_rate == 24000
    wav = encode_all(audio, "wav", rate)  # 44-byte streamed header + 16-bit samples
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from .wav_stream import float_to_pcm16, wav_header

__all__ = ["FORMATS", "AudioEncoder", "FormatInfo", "encode_all"]


@dataclass(frozen=True)
class FormatInfo:
    """One ``response_format``: its name, HTTP media type, output sample rate (``None``: the engine's)."""

    name: str
    media_type: str
    sample_rate: int | None
    description: str


FORMATS: dict[str, FormatInfo] = {
    info.name: info
    for info in (
        FormatInfo("mp3", "audio/mpeg", 24000, "MP3 (libmp3lame), 24 kHz mono, 64 kbit/s"),
        FormatInfo("opus", "audio/ogg", 48000, "Opus (libopus) in an Ogg container, 48 kHz mono, 64 kbit/s"),
        FormatInfo("aac", "audio/aac", 48000, "AAC-LC in ADTS frames, 48 kHz mono, 64 kbit/s"),
        FormatInfo("flac", "audio/flac", None, "FLAC, 16-bit mono at the engine's sample rate"),
        FormatInfo("wav", "audio/wav", None, "16-bit PCM WAV (streamed header) at the engine's sample rate"),
        FormatInfo("pcm", "audio/pcm", 24000, "raw 16-bit little-endian mono PCM at 24 kHz, no header"),
    )
}

# format -> (PyAV container format, codec name, sample format fed to the codec)
_AV_SETTINGS: dict[str, tuple[str, str, str]] = {
    "mp3": ("mp3", "libmp3lame", "fltp"),
    "opus": ("ogg", "libopus", "flt"),
    "aac": ("adts", "aac", "fltp"),
    "flac": ("flac", "flac", "s16"),
}
_DEFAULT_BITRATE = 64000
_LAME_ENCODER_DELAY = 576  # samples of lead-in libmp3lame (3.99+) puts before the audio
# Muxer options: Ogg pages of ~40 ms (FFmpeg's default, 1 s, holds audio back; 20 ms pages cost ~10 % in
# page headers), no ID3v2 tag before the MP3 frames, no 8 KiB padding block after FLAC's STREAMINFO.
_CONTAINER_OPTIONS: dict[str, dict[str, str]] = {
    "ogg": {"page_duration": "40000"},
    "mp3": {"id3v2_version": "0"},
    "flac": {"metadata_header_padding": "0"},
}


def _resampler(in_rate: int, out_rate: int) -> Any:
    import soxr

    return soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="HQ")


def _crc16(data: bytes) -> int:
    """CRC-16/ARC (reflected polynomial 0xA001), the checksum of a LAME tag."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def _lame_info_frame(bit_rate: int) -> bytes:
    """A 192-byte silent MPEG-2 Layer III frame (24 kHz mono) carrying an "Info" tag with LAME's delay.

    LAME encodes ``_LAME_ENCODER_DELAY`` samples of lead-in; with this tag decoders that read it (FFmpeg,
    mpg123, ...) drop that lead-in (plus their own 529-sample decoder delay). A streamed MP3 cannot
    know its frame count or padding, so the tag has no frame, byte or TOC fields (flags 0) and padding 0.
    """
    frame = bytearray(192)  # 64 kbit/s at 24 kHz: 72 * 64000 / 24000 bytes, no padding slot
    frame[0:4] = b"\xff\xf3\x84\xc4"  # sync, MPEG-2, Layer III, no CRC; 64 kbit/s, 24 kHz; mono, original
    lame = (
        b"LAME3.100"  # encoder short version
        + bytes([0x01, 0])  # tag revision 0 / CBR; lowpass unknown
        + bytes(8)  # ReplayGain peak, radio and audiophile gain: none
        + bytes([0, min(bit_rate // 1000, 255)])  # encoding flags / ATH type; bit rate (kbit/s)
        + struct.pack(">I", _LAME_ENCODER_DELAY << 12)[1:]  # 12-bit delay, 12-bit padding (unknown: 0)
        + bytes(12)  # misc, MP3 gain, preset/surround, music length (unknown), music CRC
    )
    tag = b"Info" + struct.pack(">I", 0) + lame  # at 4 + 9 bytes of (zero) MPEG-2 mono side info
    frame[13 : 13 + len(tag)] = tag
    end = 13 + len(tag)
    frame[end : end + 2] = struct.pack(">H", _crc16(bytes(frame[:end])))
    return bytes(frame)


class _Sink:
    """A write-only, non-seekable file object for PyAV; :meth:`take` returns what was written since."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._buffer += view
        return view.nbytes

    def seekable(self) -> bool:
        return False

    def take(self) -> bytes:
        out = bytes(self._buffer)
        self._buffer.clear()
        return out


class _WavBackend:
    def __init__(self, sample_rate: int) -> None:
        self._header: bytes | None = wav_header(sample_rate)

    def _head(self) -> bytes:
        head, self._header = self._header or b"", None
        return head

    def encode(self, audio: np.ndarray) -> bytes:
        return self._head() + float_to_pcm16(audio)

    def finish(self) -> bytes:
        return self._head()

    def close(self) -> None:
        pass


class _PcmBackend:
    def __init__(self, sample_rate: int, out_rate: int) -> None:
        self._stream = _resampler(sample_rate, out_rate) if sample_rate != out_rate else None

    def encode(self, audio: np.ndarray) -> bytes:
        if self._stream is not None:
            audio = self._stream.resample_chunk(audio, last=False)
        return float_to_pcm16(audio)

    def finish(self) -> bytes:
        if self._stream is None:
            return b""
        return float_to_pcm16(self._stream.resample_chunk(np.zeros(0, np.float32), last=True))

    def close(self) -> None:
        self._stream = None


class _AvBackend:
    """PyAV (FFmpeg) encoder and muxer writing into a :class:`_Sink`, fed whole codec frames."""

    def __init__(self, fmt: str, sample_rate: int, out_rate: int, bitrate: int | None) -> None:
        import av

        self._av = av
        container_format, codec, self._sample_format = _AV_SETTINGS[fmt]
        self._rate = out_rate
        self._resample = _resampler(sample_rate, out_rate) if sample_rate != out_rate else None
        # flush_packets: hand each muxed packet to the sink at once (no 32 KiB AVIO buffering)
        options = {"flush_packets": "1", **_CONTAINER_OPTIONS.get(container_format, {})}
        self._sink = _Sink()
        self._container = av.open(self._sink, mode="w", format=container_format, container_options=options)
        self._stream = self._container.add_stream(codec, rate=out_rate, layout="mono")
        self._codec = self._stream.codec_context
        self._codec.format = self._sample_format
        if fmt != "flac":
            self._codec.bit_rate = bitrate or _DEFAULT_BITRATE
        self._stream.time_base = Fraction(1, out_rate)
        self._container.start_encoding()  # opens the codec (frame_size is known) and writes the header
        if fmt == "mp3":  # the muxer writes its Xing/LAME tag only to a seekable file: put ours first
            assert out_rate == 24000, "the LAME Info frame is a 24 kHz MPEG-2 frame"
            self._sink.write(_lame_info_frame(self._codec.bit_rate))
        self._frame_size = self._codec.frame_size or 4096  # 0: any frame size (FLAC reports its own)
        self._pending: list[np.ndarray] = []
        self._pending_len = 0
        self._pts = 0

    def _frame(self, samples: np.ndarray) -> Any:
        if self._sample_format == "s16":
            data = np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)
        else:
            data = np.ascontiguousarray(samples, dtype=np.float32)
        frame = self._av.AudioFrame.from_ndarray(data[None, :], format=self._sample_format, layout="mono")
        frame.sample_rate = self._rate
        frame.time_base = Fraction(1, self._rate)
        frame.pts = self._pts
        self._pts += len(samples)
        return frame

    def _send(self, frame: Any) -> None:
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def encode(self, audio: np.ndarray) -> bytes:
        if self._resample is not None:
            audio = self._resample.resample_chunk(audio, last=False)
        if len(audio):
            self._pending.append(audio)
            self._pending_len += len(audio)
        if self._pending_len >= self._frame_size:
            buffered = np.concatenate(self._pending)
            whole = len(buffered) - len(buffered) % self._frame_size
            for start in range(0, whole, self._frame_size):
                self._send(self._frame(buffered[start : start + self._frame_size]))
            rest = buffered[whole:]
            self._pending, self._pending_len = ([rest] if len(rest) else []), len(rest)
        return self._sink.take()

    def finish(self) -> bytes:
        if self._resample is not None:
            tail = self._resample.resample_chunk(np.zeros(0, np.float32), last=True)
            if len(tail):
                self._pending.append(tail)
                self._pending_len += len(tail)
        buffered = np.concatenate(self._pending) if self._pending else np.zeros(0, np.float32)
        for start in range(0, len(buffered), self._frame_size):
            # the last frame may be short: all four encoders take a small last frame (and pad it themselves)
            self._send(self._frame(buffered[start : start + self._frame_size]))
        self._pending, self._pending_len = [], 0
        self._send(None)  # drain the encoder's delay
        self._container.close()  # trailer (no seek back: the sink is not seekable)
        return self._sink.take()

    def close(self) -> None:
        self._container.close()


class AudioEncoder:
    """Encode float mono audio chunk by chunk into one ``response_format`` (see :data:`FORMATS`).

    ``encode(chunk)`` returns the encoded bytes that are ready (possibly ``b""``: codecs buffer a frame
    and the muxer a page); ``finish()`` flushes the rest. Together they make one valid file. Samples are
    clipped to [-1, 1]. ``bitrate`` (bit/s) applies to mp3, opus and aac (default 64 kbit/s) and is
    ignored by the lossless formats. Not thread-safe: call it from one thread at a time. An encoder that
    is abandoned (a client went away) can be released with :meth:`close` (or ``with``).

    Example::

        import numpy as np
        from accelerando.tts.audio_formats import AudioEncoder

        enc = AudioEncoder("pcm", 22050)  # -> 24 kHz s16le
        chunks = [np.zeros(2205, np.float32), np.full(100, 0.5, np.float32)]
        body = b"".join(enc.encode(c) for c in chunks) + enc.finish()
        assert enc.output_rate == 24000 and len(body) == 2 * 2400 + 2 * 109  # 2 bytes a sample
    """

    def __init__(self, fmt: str, sample_rate: int, bitrate: int | None = None) -> None:
        if fmt not in FORMATS:
            accepted = ", ".join(FORMATS)
            raise ValueError(f"Unknown audio format {fmt!r}; accepted formats: {accepted}.")
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer) or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}.")
        if bitrate is not None and (
            isinstance(bitrate, bool) or not isinstance(bitrate, int) or bitrate <= 0
        ):
            raise ValueError(f"bitrate must be a positive integer (bit/s) or None, got {bitrate!r}.")
        self._info = FORMATS[fmt]
        self._input_rate = int(sample_rate)
        self._output_rate = self._info.sample_rate or self._input_rate
        self._finished = False
        self._backend: _WavBackend | _PcmBackend | _AvBackend
        if fmt == "wav":
            self._backend = _WavBackend(self._output_rate)
        elif fmt == "pcm":
            self._backend = _PcmBackend(self._input_rate, self._output_rate)
        else:
            self._backend = _AvBackend(fmt, self._input_rate, self._output_rate, bitrate)

    @property
    def format(self) -> str:
        """The ``response_format`` name (``"mp3"``, ``"wav"``, ...)."""
        return self._info.name

    @property
    def media_type(self) -> str:
        """The HTTP ``Content-Type`` of the output (e.g. ``audio/mpeg``)."""
        return self._info.media_type

    @property
    def input_rate(self) -> int:
        """The sample rate of the chunks given to :meth:`encode`."""
        return self._input_rate

    @property
    def output_rate(self) -> int:
        """The sample rate of the encoded audio (24 kHz for mp3/pcm, 48 kHz for opus/aac, else the input's)."""
        return self._output_rate

    @property
    def finished(self) -> bool:
        """Whether :meth:`finish` (or :meth:`close`) was called."""
        return self._finished

    def _check_open(self, action: str) -> None:
        if self._finished:
            raise RuntimeError(
                f"AudioEncoder({self._info.name!r}) is already finished; cannot {action} again."
            )

    def encode(self, chunk: np.ndarray) -> bytes:
        """Encode one chunk of float samples (1-D, finite); returns the bytes ready so far (maybe ``b""``)."""
        self._check_open("encode")
        audio = np.asarray(chunk)
        if audio.ndim != 1:
            raise ValueError(f"Audio chunk must be 1-D (mono samples), got shape {audio.shape}.")
        if audio.size and audio.dtype.kind != "f":
            raise ValueError(
                f"Audio chunk must hold floating-point samples in [-1, 1], got dtype {audio.dtype} "
                "(convert 16-bit PCM with accelerando.tts.wav_stream.pcm16_to_float)."
            )
        audio = audio.astype(np.float32, copy=False)
        if not np.isfinite(audio).all():
            bad = int(np.count_nonzero(~np.isfinite(audio)))
            raise ValueError(f"Audio chunk has {bad} non-finite sample(s) (NaN or inf).")
        return self._backend.encode(np.clip(audio, -1.0, 1.0))

    def finish(self) -> bytes:
        """Flush buffered audio and the container's trailer; the encoder cannot be used afterwards."""
        self._check_open("finish")
        self._finished = True
        return self._backend.finish()

    def close(self) -> None:
        """Release the codec without flushing (for an abandoned stream); a no-op once finished."""
        if not self._finished:
            self._finished = True
            self._backend.close()

    def __enter__(self) -> AudioEncoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AudioEncoder({self._info.name!r}, {self._input_rate} Hz -> {self._output_rate} Hz)"


def encode_all(audio: np.ndarray, fmt: str, sample_rate: int, bitrate: int | None = None) -> bytes:
    """The whole of ``audio`` (float mono at ``sample_rate``) encoded as ``fmt`` in one go.

    Example::

        import numpy as np
        from accelerando.tts.audio_formats import encode_all

        flac = encode_all(np.zeros(22050, np.float32), "flac", 22050)
        assert flac[:4] == b"fLaC"
    """
    encoder = AudioEncoder(fmt, sample_rate, bitrate)
    return encoder.encode(audio) + encoder.finish()
