"""The audio core of accelerando: one mel front end, I/O, Haar DWT, spectral losses, features.

Every mel model uses :class:`MelConfig` and :func:`mel_spectrogram` (natural-log slaney mel of
the STFT magnitude, ``T // hop`` frames), so any acoustic model can drive any vocoder.

- ``mel``: :class:`MelConfig`, :func:`mel_spectrogram`, :class:`MelSpectrogram`.
- ``io``: :func:`load_audio`, :func:`save_audio` (atomic), :func:`resample` (soxr).
- ``dwt``: :func:`dwt_haar`, :func:`idwt_haar` (orthonormal one-level Haar, FreGrad).
- ``losses``: :class:`MultiResolutionSTFTLoss`, :class:`MultiScaleMelLoss`.
- ``envelope``: :func:`match_mel_envelope`, :class:`MelEnvelopeMatch` (give a waveform the asked log-mel, keeping
  its phase; streaming).
- ``features``: :func:`extract_f0` (pYIN), :func:`cached_f0`, :func:`extract_loudness`, :func:`normalize_loudness`.

Example::

    from accelerando.audio import MelConfig, load_audio, mel_spectrogram

    cfg = MelConfig()
    wav = load_audio("speech.wav", sr=cfg.sample_rate)  # (T,)
    mel = mel_spectrogram(wav, cfg)  # (1, 80, T // 256)
"""

from .dwt import dwt_haar, idwt_haar
from .envelope import MelEnvelopeMatch, match_mel_envelope
from .features import cached_f0, extract_f0, extract_loudness, normalize_loudness
from .io import load_audio, resample, save_audio
from .losses import MultiResolutionSTFTLoss, MultiScaleMelLoss
from .mel import MelConfig, MelSpectrogram, mel_spectrogram

__all__ = [
    "MelConfig",
    "MelEnvelopeMatch",
    "MelSpectrogram",
    "MultiResolutionSTFTLoss",
    "MultiScaleMelLoss",
    "dwt_haar",
    "cached_f0",
    "extract_f0",
    "extract_loudness",
    "idwt_haar",
    "load_audio",
    "match_mel_envelope",
    "mel_spectrogram",
    "normalize_loudness",
    "resample",
    "save_audio",
]
