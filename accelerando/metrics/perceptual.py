"""Perceptual speech metrics: wide-band PESQ (ITU-T P.862.2) and STOI.

Both compare a degraded signal with a clean reference of the same length. PESQ-wb is defined at
16 kHz only, so inputs are resampled with :func:`accelerando.audio.resample` first; STOI resamples
to 10 kHz inside ``pystoi``.
"""

from __future__ import annotations

import warnings

import numpy as np

from accelerando.metrics.signal import ArrayLike, align_lengths, as_numpy_1d, resample_mono

PESQ_SAMPLE_RATE = 16000
# PESQ's level alignment needs a quarter of a second; below that ``pesq`` raises BufferTooShort.
PESQ_MIN_SECONDS = 0.25
# STOI averages over 384 ms segments (30 frames at 10 kHz), after dropping silent frames.
STOI_MIN_SECONDS = 0.4


def pesq_wb(pred: ArrayLike, ref: ArrayLike, sr: int) -> float:
    """Wide-band PESQ MOS-LQO (ITU-T P.862.2) via the ``pesq`` package; about 1.0 (bad) to 4.64.

    ``pred`` and ``ref`` are mono waveforms at ``sr``; both are resampled to 16 kHz and trimmed to
    the shorter one. Raises ``ValueError`` for audio shorter than 0.25 s or a silent reference.
    """
    from pesq import PesqError, pesq

    p, r = align_lengths(as_numpy_1d(pred, "pred"), as_numpy_1d(ref, "ref"))
    if len(r) < PESQ_MIN_SECONDS * sr:
        raise ValueError(
            f"PESQ needs at least {PESQ_MIN_SECONDS} s of audio; got {len(r) / sr:.3f} s ({len(r)} samples at {sr} Hz)"
        )
    p16 = resample_mono(p, sr, PESQ_SAMPLE_RATE)
    r16 = resample_mono(r, sr, PESQ_SAMPLE_RATE)
    try:
        return float(pesq(PESQ_SAMPLE_RATE, r16.astype(np.float64), p16.astype(np.float64), "wb"))
    except PesqError as exc:
        raise ValueError(f"PESQ could not score this pair ({type(exc).__name__}: {exc})") from exc


def stoi(pred: ArrayLike, ref: ArrayLike, sr: int, extended: bool = False) -> float:
    """Short-time objective intelligibility (Taal et al., 2011) via ``pystoi``; 0 to 1, higher is better.

    ``extended=True`` gives ESTOI (Jensen & Taal, 2016). Raises ``ValueError`` when the audio is too
    short (under 0.4 s, or too little non-silent speech for one 384 ms STOI segment).
    """
    from pystoi import stoi as _stoi

    p, r = align_lengths(as_numpy_1d(pred, "pred"), as_numpy_1d(ref, "ref"))
    if len(r) < STOI_MIN_SECONDS * sr:
        raise ValueError(
            f"STOI needs at least {STOI_MIN_SECONDS} s of audio; got {len(r) / sr:.3f} s ({len(r)} samples at {sr} Hz)"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(_stoi(r, p, sr, extended=extended))
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        raise ValueError("STOI needs at least 384 ms of non-silent reference audio; this pair has less")
    return value
