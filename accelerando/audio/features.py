"""Frame-level control features: f0 (pYIN) and A-weighted loudness, for NEWT and pitch metrics.

Both run at a frame rate of ``sr / hop_length`` frames per second and return
``len(wav) // hop_length`` frames whose centres (sample ``i * hop + hop // 2``) coincide with
the mel frames of :func:`accelerando.audio.mel_spectrogram` for the same hop, so features and
mels of one clip line up frame for frame. NumPy in, NumPy out (data preparation, not training).
"""

from __future__ import annotations

import os
from pathlib import Path

import librosa
import numpy as np
import torch
from torch import Tensor

from .mel import frame_padding, stft_magnitude

LOUDNESS_FLOOR_DB = -80.0


def _as_mono(wav: np.ndarray | Tensor, name: str) -> np.ndarray:
    y = wav.detach().cpu().numpy() if isinstance(wav, Tensor) else np.asarray(wav)
    if y.ndim != 1:
        raise ValueError(f"{name} expects a 1-D waveform (T,); got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.floating):
        raise ValueError(f"{name} expects floating-point samples; got dtype {y.dtype}")
    if not np.isfinite(y).all():
        raise ValueError(f"{name} got a waveform with NaN or Inf samples; only finite values are accepted")
    return y.astype(np.float32, copy=False)


def extract_f0(
    wav: np.ndarray | Tensor,
    sr: int,
    hop_length: int = 256,
    fmin: float = 65.0,
    fmax: float = 2093.0,
    frame_length: int = 1024,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fundamental frequency with librosa's pYIN (Mauch & Dixon 2014).

    Args:
        wav: ``(T,)`` waveform with ``T >= hop_length``.
        sr: its sample rate; frames are ``hop_length / sr`` seconds apart.

    Returns:
        ``(f0_hz, voiced_flag, voiced_prob)``, each ``(T // hop_length,)``: float32 f0 in Hz
        (``0.0`` where unvoiced), bool voicing decision, float32 voicing probability.
    """
    y = _as_mono(wav, "extract_f0")
    frames = len(y) // hop_length
    if frames == 0:
        raise ValueError(f"extract_f0 needs at least hop_length={hop_length} samples; got {len(y)}")
    # pYIN centres frame i on sample i * hop; starting hop // 2 later centres it where mel frame i is.
    f0, voiced, prob = librosa.pyin(
        y[hop_length // 2 :],
        fmin=fmin,
        fmax=fmax,
        sr=sr,
        frame_length=frame_length,
        hop_length=hop_length,
        center=True,
    )
    f0, voiced, prob = f0[:frames], voiced[:frames], prob[:frames]
    f0 = np.where(voiced & np.isfinite(f0), f0, 0.0).astype(np.float32)
    return f0, voiced.astype(bool), np.nan_to_num(prob, nan=0.0).astype(np.float32)


def cached_f0(
    wav: np.ndarray | Tensor | None,
    sr: int,
    cache_path: str | os.PathLike | None,
    hop_length: int = 256,
    fmin: float = 65.0,
    fmax: float = 2093.0,
    num_frames: int | None = None,
) -> np.ndarray:
    """:func:`extract_f0`'s f0 (Hz, ``0.0`` where unvoiced), read from or written to a ``.npy`` cache.

    The cache file is written atomically (a killed run never leaves half an array), so several trainings
    may share one cache folder. The cache is keyed by path only: use one folder per ``(hop, fmin, fmax)``.
    Audio shorter than one hop is zero-padded to it. With ``num_frames`` the track is cut or zero-padded
    to that many frames (e.g. the mel's). ``wav`` may be ``None`` when the cache file exists (so a caller need
    not read the audio); without a cache file that is a ``ValueError``.

    Returns:
        ``(frames,)`` float32.
    """
    from accelerando.fileio import atomic_path

    path = Path(cache_path) if cache_path is not None else None
    f0: np.ndarray | None = None
    if path is not None and path.is_file():
        f0 = np.load(path, allow_pickle=False)
    if f0 is None:
        if wav is None:
            raise ValueError(f"cached_f0 needs the waveform: there is no cache file at {path}")
        y = _as_mono(wav, "cached_f0")
        if len(y) < hop_length:
            y = np.pad(y, (0, hop_length - len(y)))
        f0 = extract_f0(y, sr, hop_length, fmin=fmin, fmax=fmax)[0].astype(np.float32)
        if path is not None:
            with atomic_path(path, suffix=".npy") as tmp, open(tmp, "wb") as handle:
                np.save(handle, f0, allow_pickle=False)
    f0 = np.asarray(f0, dtype=np.float32)
    if num_frames is not None:
        f0 = np.pad(f0[:num_frames], (0, max(0, num_frames - len(f0))))
    return f0


def extract_loudness(
    wav: np.ndarray | Tensor, sr: int, hop_length: int = 256, n_fft: int = 1024
) -> np.ndarray:
    """A-weighted loudness in dB per frame, floored at -80 dB.

    ``10 * log10(mean_f(|X_f|^2 * 10^(A_f / 10)))`` with ``A_f = librosa.A_weighting`` at the bin
    frequencies and ``X`` the hann-windowed STFT on the mel framing (DDSP's and NEWT's inputs:
    power spectrum, A-weighting, mean over frequency). The mean is taken over weighted *power*,
    not over per-bin dB values: the latter sits on the -80 dB floor for most bins of a tonal
    sound and hardly moves with gain, whereas here a 10x gain reads as +20 dB.

    Args:
        wav: ``(T,)`` waveform, ``T`` longer than the ``(n_fft - hop_length) / 2`` reflect pad.

    Returns:
        ``(T // hop_length,)`` float32 dB; feed :func:`normalize_loudness` for model inputs.
    """
    y = _as_mono(wav, "extract_loudness")
    _, right = frame_padding(n_fft, hop_length)
    minimum = max(hop_length, right + 1)
    if len(y) < minimum:
        raise ValueError(
            f"extract_loudness needs at least {minimum} samples for n_fft={n_fft}, hop_length={hop_length}; got {len(y)}"
        )
    x = torch.from_numpy(y.astype(np.float64))[None]  # (1, T)
    window = torch.hann_window(n_fft, dtype=torch.float64)
    power = stft_magnitude(x, n_fft, hop_length, window, eps=0.0)[0].square().numpy()  # (F, T // hop)
    with np.errstate(divide="ignore"):  # the DC bin's weight is log10(0), clipped to min_db by librosa
        a_weighting = librosa.A_weighting(librosa.fft_frequencies(sr=sr, n_fft=n_fft))  # (F,)
    weighted = (power * 10.0 ** (a_weighting[:, None] / 10.0)).mean(axis=0)  # (T // hop,)
    db = 10.0 * np.log10(np.maximum(weighted, 1e-12))
    return np.maximum(db, LOUDNESS_FLOOR_DB).astype(np.float32)


def normalize_loudness(db: np.ndarray | Tensor | float) -> np.ndarray | Tensor | float:
    """NEWT's loudness normalisation ``(db + 80) / 80`` (silence at the -80 dB floor maps to 0)."""
    return (db + 80.0) / 80.0
