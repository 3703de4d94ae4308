"""Audio file I/O (soundfile) and resampling (soxr).

``load_audio`` returns float32 torch tensors at the sample rate asked for; ``save_audio`` writes
atomically (a temporary file in the target folder, then ``os.replace``), so readers never see a
half-written file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
from torch import Tensor

from accelerando.fileio import atomic_path

# Output formats by suffix, with the subtype used when none is given.
FORMATS: dict[str, tuple[str, str]] = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
}
_FLOAT_SUBTYPES = {"FLOAT", "DOUBLE"}


def _check_sample_rate(sr: int, name: str = "sr") -> int:
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ValueError(f"{name} must be a positive int sample rate in Hz; got {sr!r}")
    return int(sr)


def resample(wav: Tensor | np.ndarray, orig_sr: int, target_sr: int) -> Tensor:
    """Resample along the last axis with soxr (high quality): ``(..., T) -> (..., T * target / orig)``.

    Runs on the CPU in NumPy (not differentiable); the result comes back on the input's device
    in its dtype (float32 unless the input is float64). Returns the input unchanged if the rates match.
    """
    orig_sr, target_sr = _check_sample_rate(orig_sr, "orig_sr"), _check_sample_rate(target_sr, "target_sr")
    tensor = torch.as_tensor(wav)
    if orig_sr == target_sr:
        return tensor
    dtype = torch.float64 if tensor.dtype == torch.float64 else torch.float32
    array = tensor.detach().cpu().to(dtype).numpy()
    lead, length = array.shape[:-1], array.shape[-1]
    frames = np.ascontiguousarray(array.reshape(-1, length).T)  # (T, N): soxr wants channels last
    out = soxr.resample(frames, orig_sr, target_sr, quality="HQ")  # (T', N)
    out = np.ascontiguousarray(out.T).reshape(*lead, out.shape[0])  # (..., T')
    return torch.from_numpy(out).to(tensor.device)


def load_audio(path: str | os.PathLike, sr: int, mono: bool = True) -> Tensor:
    """Read an audio file as float32, resampled to ``sr``.

    Returns:
        ``(T,)`` (channels averaged) if ``mono`` else ``(C, T)``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: unreadable or unsupported file, empty audio, NaN/Inf samples, bad ``sr``.
    """
    sr = _check_sample_rate(sr)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No audio file at {str(path)!r}")
    try:
        data, file_sr = sf.read(path, dtype="float32", always_2d=True)  # (T, C)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        formats = ", ".join(sorted(sf.available_formats()))
        raise ValueError(f"Cannot read audio file {str(path)!r} ({err}); soundfile reads: {formats}") from err
    if data.size == 0:
        raise ValueError(f"Audio file {str(path)!r} holds no samples")
    if not np.isfinite(data).all():
        raise ValueError(f"Audio file {str(path)!r} holds NaN or Inf samples")
    wav = torch.from_numpy(np.ascontiguousarray(data.T))  # (C, T)
    if mono:
        wav = wav.mean(dim=0)  # (T,)
    return resample(wav, file_sr, sr).contiguous()


def save_audio(
    path: str | os.PathLike, wav: Tensor | np.ndarray, sr: int, subtype: str | None = None
) -> Path:
    """Write ``wav`` (``(T,)`` or ``(C, T)``, torch or NumPy) to ``path`` atomically.

    The format comes from the suffix (``.wav``, ``.flac``, ``.ogg``); the default subtype is
    PCM_16 for wav and flac, VORBIS for ogg. Parent folders are created. For every subtype but
    FLOAT/DOUBLE, samples beyond [-1, 1] are clipped with a warning.

    Returns:
        The path written.
    """
    sr = _check_sample_rate(sr)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(
            f"Cannot save {str(path)!r}: unsupported suffix {suffix!r}; use one of {sorted(FORMATS)}"
        )
    fmt, default_subtype = FORMATS[suffix]
    subtype = (subtype or default_subtype).upper()
    if not sf.check_format(fmt, subtype):
        raise ValueError(
            f"Subtype {subtype!r} is not valid for {fmt}; use one of {sorted(sf.available_subtypes(fmt))}"
        )

    data = wav.detach().cpu().numpy() if isinstance(wav, Tensor) else np.asarray(wav)
    if data.ndim not in (1, 2) or data.size == 0:
        raise ValueError(
            f"save_audio expects a non-empty waveform of shape (T,) or (C, T); got shape {data.shape}"
        )
    if data.ndim == 2 and data.shape[0] > data.shape[1]:
        raise ValueError(
            f"save_audio expects (C, T) with fewer channels than samples; got shape {data.shape} (is it (T, C)?)"
        )
    if not np.issubdtype(data.dtype, np.floating):
        raise ValueError(f"save_audio expects floating-point samples in [-1, 1]; got dtype {data.dtype}")
    if not np.isfinite(data).all():
        raise ValueError(f"Refusing to save {str(path)!r}: the waveform holds NaN or Inf samples")
    peak = float(np.abs(data).max())
    if peak > 1.0 and subtype not in _FLOAT_SUBTYPES:
        warnings.warn(f"Clipping {str(path)!r}: peak |x| = {peak:.3f} > 1.0", stacklevel=2)
        data = np.clip(data, -1.0, 1.0)
    frames = data if data.ndim == 1 else data.T  # soundfile wants (T,) or (T, C)

    with atomic_path(path, suffix=f"{suffix}.tmp") as tmp:
        sf.write(tmp, frames, sr, subtype=subtype, format=fmt)
    return path
