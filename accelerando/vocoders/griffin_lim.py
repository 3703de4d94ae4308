"""Griffin-Lim reference vocoder: librosa mel inversion, the quality floor for neural vocoders.

No weights, no training: the log-mel is exponentiated, mapped back to a linear STFT magnitude by
non-negative least squares against the same slaney mel basis (``librosa.feature.inverse.mel_to_stft``),
and a phase is found by fast Griffin-Lim (Griffin & Lim 1984; Perraudin et al. 2013, momentum 0.99,
``librosa.griffinlim``). Every neural vocoder in accelerando must beat its figures on the held-out
split (``accelerando bench griffin-lim``).

Example::

    from accelerando.audio import MelConfig, mel_spectrogram
    from accelerando.vocoders.griffin_lim import GriffinLim

    mel = mel_spectrogram(wav, MelConfig())           # (1, 80, frames)
    audio = GriffinLim().synthesize(mel, n_iter=32)   # (1, frames * 256)
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from accelerando.audio import MelConfig


class GriffinLim:
    """Mel → waveform by NNLS mel inversion + fast Griffin-Lim, matched to a :class:`MelConfig`.

    Args:
        config: the mel front end the input mels come from (natural log of slaney mel magnitude).
        n_iter: default number of Griffin-Lim iterations.
        momentum: fast Griffin-Lim momentum (0 gives the original algorithm).
        seed: seed of the random initial phase, so output is reproducible.
    """

    def __init__(
        self, config: MelConfig | None = None, n_iter: int = 32, momentum: float = 0.99, seed: int = 0
    ):
        if config is not None and not isinstance(config, MelConfig):
            raise TypeError(
                f"config must be a MelConfig or None; got {config!r} (the iterations are n_iter=..., "
                "e.g. GriffinLim(n_iter=32))"
            )
        self.config = dataclasses.replace(config) if config is not None else MelConfig()
        if n_iter < 1:
            raise ValueError(f"n_iter must be >= 1; got {n_iter}")
        self.n_iter = n_iter
        self.momentum = momentum
        self.seed = seed

    @property
    def sample_rate(self) -> int:
        """Output sample rate in Hz."""
        return self.config.sample_rate

    @property
    def hop_length(self) -> int:
        """Samples per mel frame."""
        return self.config.hop_length

    def mel_to_magnitude(self, mel: np.ndarray) -> np.ndarray:
        """Log-mel ``(n_mels, frames)`` → linear STFT magnitude ``(n_fft // 2 + 1, frames)`` by NNLS."""
        import librosa

        cfg = self.config
        return librosa.feature.inverse.mel_to_stft(
            np.exp(mel.astype(np.float64)),
            sr=cfg.sample_rate,
            n_fft=cfg.n_fft,
            power=1.0,
            fmin=cfg.f_min,
            fmax=cfg.f_max,
            htk=False,
            norm="slaney",
        )

    def _invert_one(self, mel: np.ndarray, n_iter: int) -> np.ndarray:
        import librosa

        cfg = self.config
        frames = mel.shape[-1]
        magnitude = self.mel_to_magnitude(mel)  # (F, frames)
        # Our front end frames a signal reflect-padded by (n_fft - hop) // 2 with center=False, so
        # frame i starts at sample i * hop - pad. Running Griffin-Lim uncentred gives a signal whose
        # frame i starts at i * hop; dropping its first `pad` samples aligns it with the original.
        wav = librosa.griffinlim(
            magnitude,
            n_iter=n_iter,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length,
            n_fft=cfg.n_fft,
            window="hann",
            center=False,
            momentum=self.momentum,
            init="random",
            random_state=self.seed,
        )  # (n_fft + hop * (frames - 1),)
        pad = (cfg.n_fft - cfg.hop_length) // 2
        out = wav[pad : pad + frames * cfg.hop_length]
        if len(out) < frames * cfg.hop_length:
            out = np.pad(out, (0, frames * cfg.hop_length - len(out)))
        return out

    def synthesize(
        self,
        mel: torch.Tensor,
        num_steps: int | None = None,
        generator: torch.Generator | None = None,
        *,
        progress: bool = False,
        n_iter: int | None = None,
    ) -> torch.Tensor:
        """Waveform for a log-mel ``(B, n_mels, frames)`` or ``(n_mels, frames)``.

        Returns ``(B, frames * hop_length)`` float32 on ``mel``'s device, frame-aligned with the
        audio the mel was computed from. ``num_steps`` and ``generator`` exist only for the shared
        mel-vocoder contract (:mod:`accelerando.vocoders.contract`) and are ignored, as is ``progress`` (use ``n_iter``; the initial phase is seeded by ``seed``).
        """
        del num_steps, generator
        if not isinstance(mel, torch.Tensor):
            raise TypeError(f"mel must be a torch.Tensor; got {type(mel).__name__}")
        if mel.dim() == 2:
            mel = mel.unsqueeze(0)
        if mel.dim() != 3 or mel.shape[1] != self.config.n_mels:
            raise ValueError(
                f"mel must have shape (B, {self.config.n_mels}, frames) or ({self.config.n_mels}, frames); "
                f"got {tuple(mel.shape)}"
            )
        if mel.shape[-1] < 1:
            raise ValueError("mel has no frames")
        iters = self.n_iter if n_iter is None else n_iter
        if iters < 1:
            raise ValueError(f"n_iter must be >= 1; got {iters}")
        array = mel.detach().cpu().double().numpy()  # (B, n_mels, frames)
        audio = np.stack([self._invert_one(item, iters) for item in array])  # (B, frames * hop)
        return torch.from_numpy(audio.astype(np.float32)).to(mel.device)
