"""The one mel front end of accelerando, and the STFT helper every spectral piece shares.

Frame rule (vocoders rely on it): the waveform is reflect-padded by ``(n_fft - hop) // 2``
samples on the left and ``n_fft - hop - (n_fft - hop) // 2`` on the right, then framed with
``center=False``. That gives exactly ``T // hop`` frames, so ``frames * hop == T`` whenever ``T``
is a multiple of ``hop``; frame ``i`` is centred on sample ``i * hop + hop / 2``.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import librosa
import numpy as np
import torch
from torch import Tensor, nn

# Added under the square root so that the magnitude (and its gradient) stays finite at 0.
MAGNITUDE_EPS = 1e-9


@dataclass
class MelConfig:
    """Settings of the shared log-mel front end (HiFi-GAN / FastPitch defaults).

    The mel is the natural log of the slaney-normalised mel projection of the STFT magnitude,
    clamped below at ``clamp_min``. ``f_max=None`` means the Nyquist frequency.
    """

    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float | None = 8000.0
    clamp_min: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"MelConfig.{name} must be a positive int; got {value!r}")
        if self.win_length > self.n_fft:
            raise ValueError(f"MelConfig.win_length ({self.win_length}) must be <= n_fft ({self.n_fft})")
        if self.hop_length > self.n_fft:
            raise ValueError(f"MelConfig.hop_length ({self.hop_length}) must be <= n_fft ({self.n_fft})")
        nyquist = self.sample_rate / 2
        f_max = nyquist if self.f_max is None else self.f_max
        if not 0.0 <= self.f_min < f_max <= nyquist:
            raise ValueError(
                f"MelConfig needs 0 <= f_min < f_max <= sample_rate / 2 ({nyquist:g} Hz); "
                f"got f_min={self.f_min!r}, f_max={self.f_max!r}"
            )
        if not self.clamp_min > 0:
            raise ValueError(f"MelConfig.clamp_min must be > 0; got {self.clamp_min!r}")

    def num_frames(self, num_samples: int) -> int:
        """Number of mel frames for ``num_samples`` samples: ``num_samples // hop_length``.

        Valid for ``num_samples >= min_num_samples()``; shorter inputs are rejected by
        :func:`mel_spectrogram`.
        """
        if num_samples < 0:
            raise ValueError(f"num_samples must be >= 0; got {num_samples}")
        return num_samples // self.hop_length

    def min_num_samples(self) -> int:
        """Shortest waveform :func:`mel_spectrogram` accepts (one hop, and longer than the pad)."""
        _, right = frame_padding(self.n_fft, self.hop_length)
        return max(self.hop_length, right + 1)


def frame_padding(n_fft: int, hop_length: int) -> tuple[int, int]:
    """(left, right) reflect padding that makes an uncentred STFT give ``T // hop`` frames."""
    total = n_fft - hop_length
    return total // 2, total - total // 2


def stft_magnitude(
    x: Tensor,
    n_fft: int,
    hop_length: int,
    window: Tensor,
    *,
    center: bool = False,
    eps: float = MAGNITUDE_EPS,
) -> Tensor:
    """STFT magnitude ``sqrt(re^2 + im^2 + eps)`` of a batch of waveforms.

    Args:
        x: ``(B, T)`` waveforms.
        window: ``(win_length,)`` analysis window (zero-padded to ``n_fft`` by ``torch.stft``).
        center: ``False`` uses the mel frame rule (``T // hop`` frames, see module docstring);
            ``True`` uses torch's centred framing (``n_fft // 2`` reflect pad, ``T // hop + 1``
            frames), as in the STFT losses.

    Returns:
        ``(B, n_fft // 2 + 1, frames)`` magnitudes.
    """
    if not center:
        left, right = frame_padding(n_fft, hop_length)
        x = nn.functional.pad(x.unsqueeze(1), (left, right), mode="reflect").squeeze(
            1
        )  # (B, T + n_fft - hop)
    spec = torch.stft(
        x,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=window.shape[-1],
        window=window,
        center=center,
        pad_mode="reflect",
        return_complex=True,
    )  # (B, F, frames)
    return torch.sqrt(spec.real.square() + spec.imag.square() + eps)


@functools.lru_cache(maxsize=64)
def _mel_basis_numpy(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float | None
) -> np.ndarray:
    basis = librosa.filters.mel(
        sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max, norm="slaney"
    )
    basis.setflags(write=False)
    return basis


def mel_basis(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None
) -> Tensor:
    """Slaney-normalised mel filterbank ``(n_mels, n_fft // 2 + 1)`` float32, built once per setting."""
    return torch.tensor(_mel_basis_numpy(sample_rate, n_fft, n_mels, f_min, f_max), dtype=torch.float32)


def _check_waveform(wav: Tensor, cfg: MelConfig) -> Tensor:
    if not isinstance(wav, Tensor):
        raise TypeError(f"mel_spectrogram expects a torch.Tensor; got {type(wav).__name__}")
    if wav.dim() not in (1, 2):
        raise ValueError(
            f"mel_spectrogram expects a waveform of shape (T,) or (B, T); got shape {tuple(wav.shape)}"
        )
    if not wav.is_floating_point():
        raise ValueError(f"mel_spectrogram expects a floating-point waveform; got dtype {wav.dtype}")
    wav = wav.unsqueeze(0) if wav.dim() == 1 else wav  # (B, T)
    minimum = cfg.min_num_samples()
    if wav.shape[-1] < minimum:
        raise ValueError(
            f"mel_spectrogram needs at least {minimum} samples for n_fft={cfg.n_fft}, "
            f"hop_length={cfg.hop_length}; got {wav.shape[-1]}"
        )
    if not bool(torch.isfinite(wav).all()):
        raise ValueError(
            "mel_spectrogram got a waveform with NaN or Inf samples; only finite values are accepted"
        )
    return wav


class MelSpectrogram(nn.Module):
    """Log-mel spectrogram module: ``(T,)`` or ``(B, T)`` waveform -> ``(B, n_mels, T // hop)``.

    Window and mel basis are non-persistent buffers: ``.to(device)`` moves them, and they never
    land in a checkpoint. Computes in the buffers' dtype (float32 unless the module is cast).
    """

    def __init__(self, cfg: MelConfig = MelConfig()) -> None:
        super().__init__()
        self.cfg = dataclasses.replace(cfg)  # a private copy: later edits of cfg cannot desync the buffers
        self.register_buffer("window", torch.hann_window(cfg.win_length), persistent=False)
        basis = mel_basis(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max)
        self.register_buffer("mel_basis", basis, persistent=False)  # (n_mels, n_fft // 2 + 1)

    def forward(self, wav: Tensor) -> Tensor:
        cfg = self.cfg
        wav = _check_waveform(wav, cfg).to(self.window.dtype)  # (B, T)
        magnitude = stft_magnitude(wav, cfg.n_fft, cfg.hop_length, self.window)  # (B, F, frames)
        mel = torch.matmul(self.mel_basis, magnitude)  # (B, n_mels, frames)
        return torch.log(torch.clamp(mel, min=cfg.clamp_min))


@functools.lru_cache(maxsize=32)
def _cached_module(fields: tuple, device: torch.device, dtype: torch.dtype) -> MelSpectrogram:
    return MelSpectrogram(MelConfig(*fields)).to(device=device, dtype=dtype)


def mel_spectrogram(wav: Tensor, cfg: MelConfig = MelConfig()) -> Tensor:
    """Natural-log slaney mel spectrogram of ``wav``.

    Reflect-pads ``(n_fft - hop) / 2`` samples per side, takes an uncentred STFT with a hann
    window of ``win_length``, the magnitude ``sqrt(re^2 + im^2 + 1e-9)``, the slaney mel
    projection and ``log(clamp(mel, min=clamp_min))``.

    Args:
        wav: ``(T,)`` or ``(B, T)`` float waveform with ``T >= cfg.min_num_samples()``.
        cfg: front-end settings.

    Returns:
        ``(B, n_mels, T // hop_length)``, float32 (float64 for a float64 input). A ``(T,)`` input
        gives ``B = 1``. Modules are cached per (cfg, device, dtype), so repeated calls are cheap.
    """
    if not isinstance(wav, Tensor):
        raise TypeError(f"mel_spectrogram expects a torch.Tensor; got {type(wav).__name__}")
    dtype = wav.dtype if wav.dtype in (torch.float32, torch.float64) else torch.float32
    return _cached_module(dataclasses.astuple(cfg), wav.device, dtype)(wav)
