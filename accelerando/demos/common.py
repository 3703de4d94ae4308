"""Shared helpers of the demo tabs: user-facing errors, input limits, audio conversion, figures.

Every tab function is wrapped in :func:`user_errors`, so a user sees one clear sentence in the UI
(``gr.Error``) for bad input and never a stack trace; unexpected failures are logged with their
traceback on the server and reported in one line.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "LIMITS",
    "Limits",
    "load_input_audio",
    "mel_image",
    "curves_image",
    "to_int16",
    "user_errors",
]

log = logging.getLogger("accelerando.demos")

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


@dataclass(frozen=True)
class Limits:
    """Caps on what a request may ask for."""

    max_file_mb: float = 10.0
    max_audio_seconds: float = 20.0
    min_audio_seconds: float = 0.1
    max_text_chars: int = 1000


LIMITS = Limits()


def _error(message: str) -> Exception:
    import gradio as gr

    return gr.Error(message, print_exception=False)


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn ``ValueError`` / ``FileNotFoundError`` into ``gr.Error`` and anything else into a one-line error.

    Works for plain functions and generators (streaming tabs).
    """
    import gradio as gr

    def convert(exc: Exception) -> Exception:
        if isinstance(exc, gr.Error):
            return exc
        if isinstance(exc, (ValueError, FileNotFoundError)):
            return _error(str(exc))
        log.exception("demo tab %s failed", fn.__name__)
        return _error(f"Internal error in {fn.__name__} ({type(exc).__name__}: {exc}); see the server log.")

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:
                raise convert(exc) from None

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise convert(exc) from None

    return wrapper


def load_input_audio(path: str | os.PathLike | None, sr: int, limits: Limits = LIMITS) -> np.ndarray:
    """Check an uploaded / recorded file against the limits and read it as float32 mono at ``sr``.

    Raises ``ValueError`` with a sentence for the user: no file, unsupported type, too big, too
    long, too short, silent.
    """
    from accelerando.audio import load_audio

    if path is None or str(path) == "":
        raise ValueError("Please upload or record some audio first.")
    path = Path(path)
    if not path.is_file():
        raise ValueError("The uploaded audio did not arrive; please upload it again.")
    if path.suffix.lower() not in AUDIO_SUFFIXES:
        raise ValueError(
            f"Unsupported file type {path.suffix or '(none)'!r}; upload audio as {', '.join(AUDIO_SUFFIXES)}."
        )
    size_mb = path.stat().st_size / 1e6
    if size_mb > limits.max_file_mb:
        raise ValueError(f"The file is {size_mb:.1f} MB; the limit is {limits.max_file_mb:g} MB.")
    try:
        wav = load_audio(path, sr=sr).numpy()
    except ValueError as err:
        raise ValueError(f"Could not read {path.name} as audio ({err}).") from None
    seconds = wav.shape[-1] / sr
    if seconds > limits.max_audio_seconds:
        raise ValueError(
            f"The audio is {seconds:.1f} s long; the limit is {limits.max_audio_seconds:g} s. Trim it and try again."
        )
    if seconds < limits.min_audio_seconds:
        raise ValueError(
            f"The audio is {seconds:.2f} s long; it needs at least {limits.min_audio_seconds:g} s."
        )
    if not np.any(np.abs(wav) > 1e-4):
        raise ValueError("The audio is silent; record or upload something audible.")
    return wav.astype(np.float32)


def to_int16(wav: Any) -> np.ndarray:
    """Float waveform (any shape that flattens to mono) → int16 PCM, clipped to [-1, 1]."""
    if hasattr(wav, "detach"):
        wav = wav.detach().float().cpu().numpy()
    wav = np.nan_to_num(np.asarray(wav, dtype=np.float32).reshape(-1))
    return (np.clip(wav, -1.0, 1.0) * 32767.0).astype(np.int16)


def _figure_to_array(fig: Any) -> np.ndarray:
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()  # (H, W, 3) uint8
    import matplotlib.pyplot as plt

    plt.close(fig)
    return image


def mel_image(mel: Any, title: str, sr: int = 22050, hop: int = 256) -> np.ndarray:
    """A log-mel spectrogram ``(n_mels, frames)`` (or ``(1, n_mels, frames)``) as an RGB image."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if hasattr(mel, "detach"):
        mel = mel.detach().float().cpu().numpy()
    mel = np.asarray(mel, dtype=np.float32)
    mel = mel.reshape(mel.shape[-2], mel.shape[-1])
    fig, ax = plt.subplots(figsize=(4.0, 2.4), dpi=80)
    seconds = mel.shape[1] * hop / sr
    ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, mel.shape[0]))
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("s", fontsize=8)
    ax.set_ylabel("mel bin", fontsize=8)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return _figure_to_array(fig)


def curves_image(f0_hz: np.ndarray, loudness_db: np.ndarray, frame_seconds: float) -> np.ndarray:
    """f0 (Hz) and loudness (dB) tracks, one above the other, as an RGB image."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    t = np.arange(len(f0_hz)) * frame_seconds
    fig, (ax_f0, ax_ld) = plt.subplots(2, 1, figsize=(6.0, 3.2), dpi=80, sharex=True)
    voiced = np.where(f0_hz > 0, f0_hz, np.nan)
    ax_f0.plot(t, voiced, color="tab:blue", lw=1.2)
    ax_f0.set_ylabel("f0 (Hz)", fontsize=8)
    ax_ld.plot(t[: len(loudness_db)], loudness_db, color="tab:orange", lw=1.2)
    ax_ld.set_ylabel("loudness (dB)", fontsize=8)
    ax_ld.set_xlabel("s", fontsize=8)
    for ax in (ax_f0, ax_ld):
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _figure_to_array(fig)
