"""Timbre transfer with NEWT: f0 and loudness from any mono recording drive an instrument model.

The recipe of DDSP's and NEWT's timbre-transfer demos (Engel et al., ICLR 2020; Hayes et al., ISMIR 2021):

1. :func:`extract_controls`: resample to 16 kHz, pYIN f0 and A-weighted loudness at the control hop
   (128), both from :mod:`accelerando.audio.features`, on the same framing as the training corpus;
2. :func:`shift_octaves`: move the melody by whole octaves so its median voiced pitch sits inside the
   instrument's range (:data:`INSTRUMENT_RANGES`), keeping every pitch class;
3. :func:`remap_loudness`: match the mean and spread of the voiced frames' loudness to what the
   instrument's model was trained on (:data:`LOUDNESS_STATS`, or the model config's own figures);
4. :meth:`NEWT.synthesize`.

Unvoiced frames follow the corpus convention (``accelerando.data.melodies.f0_track``): f0 holds the last
voiced pitch (the first voiced pitch before it; 0 Hz if nothing is voiced) and the loudness sits on the
-80 dB floor, so the instrument rests where the voice has consonants or silence.

Example::

    from accelerando.audio import load_audio
    from accelerando.vocoders import NEWT
    from accelerando.vocoders.newt.transfer import timbre_transfer

    model = NEWT.from_pretrained("runs/newt-violin/model").eval()
    wav = load_audio("hum.wav", sr=44100)  # (T,)
    audio, info = timbre_transfer(model, wav, 44100, "violin", seed=0)  # (T * 16000 // 44100 // 128 * 128,)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from accelerando.data.midi_render import GM_INSTRUMENTS

from .model import NEWT

__all__ = [
    "INSTRUMENT_RANGES",
    "LOUDNESS_STATS",
    "check_instrument",
    "extract_controls",
    "loudness_targets",
    "remap_loudness",
    "shift_octaves",
    "timbre_transfer",
]

TRANSFER_INSTRUMENTS: tuple[str, ...] = ("violin", "flute", "trumpet", "cello", "clarinet", "alto_sax")

#: MIDI pitch range ``(low, high)`` of each instrument NEWT checkpoints are trained for. These are the
#: ranges the melody corpus draws its notes from (``accelerando.data.midi_render.GM_INSTRUMENTS``, one
#: source of truth), so the octave shift lands where the model has seen data: violin 55-96 (G3-C7),
#: flute 60-96 (C4-C7), trumpet 54-84 (F#3-C6), cello 36-76 (C2-E5), clarinet 50-91 (D3-G6),
#: alto_sax 49-81 (C#3-A5).
INSTRUMENT_RANGES: dict[str, tuple[int, int]] = {
    name: (GM_INSTRUMENTS[name].low, GM_INSTRUMENTS[name].high) for name in TRANSFER_INSTRUMENTS
}

#: ``(mean, std)`` of the normalised loudness ``(dB + 80) / 80`` over the voiced frames of each
#: instrument's training melodies (``corpora/instruments/melodies``, train split, 16 kHz, hop 128,
#: n_fft 1024; measured once when this table was written). A model whose ``config.json`` carries
#: ``loudness_mean`` and ``loudness_std`` overrides these (see :func:`loudness_targets`).
LOUDNESS_STATS: dict[str, tuple[float, float]] = {
    "violin": (0.953, 0.065),
    "flute": (1.015, 0.063),
    "trumpet": (0.983, 0.036),
    "cello": (0.898, 0.066),
    "clarinet": (1.047, 0.058),
    "alto_sax": (1.011, 0.045),
}

LOUDNESS_N_FFT = 1024  # the corpus's loudness window (accelerando.data.melodies.LOUDNESS_N_FFT)
_MIN_STD = 1e-3  # below this the input loudness is treated as constant: only its mean is moved


def check_instrument(instrument: str) -> str:
    """``instrument`` if timbre transfer knows its range; otherwise a ``ValueError`` listing the known ones."""
    if instrument not in INSTRUMENT_RANGES:
        raise ValueError(
            f"unknown instrument {instrument!r}; known instruments: {', '.join(INSTRUMENT_RANGES)}"
        )
    return instrument


def _hold_unvoiced(f0: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    """Unvoiced frames take the last voiced f0 (the first voiced f0 before it; all 0 if none is voiced)."""
    index = np.where(voiced, np.arange(len(f0)), -1)
    index = np.maximum.accumulate(index)  # last voiced frame at or before each frame
    voiced_frames = np.flatnonzero(voiced)
    if voiced_frames.size == 0:
        return np.zeros_like(f0)
    index[index < 0] = voiced_frames[0]
    return f0[index]


def extract_controls(
    wav: Tensor | np.ndarray,
    sr: int,
    control_hop: int = 128,
    sample_rate: int = 16000,
    fmin: float = 65.0,
    fmax: float = 2093.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """NEWT controls from a mono recording.

    Args:
        wav: ``(T,)`` mono waveform at ``sr``.
        sr: its sample rate; it is resampled to ``sample_rate`` first.
        control_hop: samples per control frame at ``sample_rate``.
        fmin, fmax: pYIN's search range in Hz (the defaults cover bass voices to the top of a flute).

    Returns:
        ``(f0_hz, loudness_norm, voiced)``, each ``(T' // control_hop,)`` with ``T'`` the resampled
        length: float32 f0 in Hz with unvoiced frames holding the last voiced f0 (0 if none), float32
        loudness ``(dB + 80) / 80`` set to 0 (the -80 dB floor) on unvoiced frames, bool voicing.
    """
    from accelerando.audio import extract_f0, extract_loudness, normalize_loudness, resample

    x = resample(torch.as_tensor(wav, dtype=torch.float32), sr, sample_rate)  # (T',)
    if x.dim() != 1:
        raise ValueError(f"extract_controls expects a mono waveform (T,); got shape {tuple(x.shape)}")
    if x.shape[0] < 2 * control_hop:
        raise ValueError(
            f"the recording is too short: {x.shape[0]} samples at {sample_rate} Hz; "
            f"timbre transfer needs at least {2 * control_hop}"
        )
    f0, voiced, _ = extract_f0(x, sample_rate, hop_length=control_hop, fmin=fmin, fmax=fmax)
    loudness = normalize_loudness(
        extract_loudness(x, sample_rate, hop_length=control_hop, n_fft=LOUDNESS_N_FFT)
    )
    f0 = _hold_unvoiced(f0, voiced)
    loudness = np.where(voiced, loudness, 0.0)
    return (
        torch.from_numpy(f0.astype(np.float32)),
        torch.from_numpy(loudness.astype(np.float32)),
        torch.from_numpy(voiced.astype(bool)),
    )


def _midi(f0_hz: Tensor) -> Tensor:
    return 69.0 + 12.0 * torch.log2(f0_hz / 440.0)


def octave_shift_for(f0_hz: Tensor, instrument: str, voiced: Tensor | None = None) -> int:
    """Whole octaves that move the median voiced pitch of ``f0_hz (F,)`` nearest the middle of the range.

    Frames count as voiced where ``voiced`` is true (default: ``f0_hz > 0``). Every instrument's range
    spans more than an octave, so the shifted median always lies inside it. 0 when nothing is voiced.
    """
    low, high = INSTRUMENT_RANGES[check_instrument(instrument)]
    mask = (f0_hz > 0) if voiced is None else (torch.as_tensor(voiced, dtype=torch.bool) & (f0_hz > 0))
    if not bool(mask.any()):
        return 0
    median = float(_midi(f0_hz[mask].double()).median())
    return round(((low + high) / 2.0 - median) / 12.0)


def shift_octaves(
    f0_hz: Tensor, instrument: str, voiced: Tensor | None = None, octaves: int | None = None
) -> tuple[Tensor, int]:
    """Transpose ``f0_hz (F,)`` by whole octaves into ``instrument``'s range; 0 Hz frames stay 0.

    ``octaves=None`` picks the shift with :func:`octave_shift_for` (the median voiced pitch lands inside
    :data:`INSTRUMENT_RANGES`); an int forces it. Returns ``(shifted f0 (F,), octaves)``; every pitch class
    is preserved because only powers of two multiply the frequencies.
    """
    check_instrument(instrument)
    f0_hz = torch.as_tensor(f0_hz, dtype=torch.float32)
    if octaves is None:
        octaves = octave_shift_for(f0_hz, instrument, voiced)
    return f0_hz * (2.0 ** int(octaves)), int(octaves)


def loudness_targets(instrument: str, model: NEWT | None = None) -> tuple[float, float]:
    """``(mean, std)`` the voiced loudness is mapped to for ``instrument``.

    A model whose config holds ``loudness_mean`` and ``loudness_std`` (written by a training run that
    measured its own data) wins; otherwise the corpus statistics in :data:`LOUDNESS_STATS`.
    """
    check_instrument(instrument)
    config = getattr(model, "config", None)
    mean = getattr(config, "loudness_mean", None) if config is not None else None
    std = getattr(config, "loudness_std", None) if config is not None else None
    if mean is not None and std is not None:
        return float(mean), float(std)
    return LOUDNESS_STATS[instrument]


def remap_loudness(
    loudness: Tensor, target_mean: float, target_std: float, voiced: Tensor | None = None
) -> Tensor:
    """Affine map of normalised loudness ``(F,)`` so its voiced frames have ``target_mean`` and ``target_std``.

    Statistics are taken over ``voiced`` frames (default: all). Unvoiced frames are set to 0 (the -80 dB
    floor). A constant input (std below 1e-3) is only moved to the target mean. Results are clamped at 0.
    """
    if not target_std >= 0 or not math.isfinite(target_mean):
        raise ValueError(f"target_std must be >= 0 and target_mean finite; got {target_mean}, {target_std}")
    loudness = torch.as_tensor(loudness, dtype=torch.float32)
    mask = torch.ones_like(loudness, dtype=torch.bool) if voiced is None else torch.as_tensor(voiced).bool()
    if not bool(mask.any()):
        return torch.zeros_like(loudness)
    values = loudness[mask].double()
    mean, std = float(values.mean()), float(values.std(unbiased=False))
    scale = target_std / std if std > _MIN_STD else 1.0
    out = ((loudness.double() - mean) * scale + target_mean).clamp(min=0.0).float()
    return torch.where(mask, out, torch.zeros_like(out))


def timbre_transfer(
    model: NEWT,
    wav: Tensor | np.ndarray,
    sr: int,
    instrument: str,
    seed: int = 0,
    octave_shift: int | None = None,
) -> tuple[Tensor, dict[str, Any]]:
    """Re-synthesise a mono recording ``wav (T,)`` at ``sr`` as ``instrument`` with a NEWT (or FastNEWT).

    Args:
        model: an instrument's NEWT in ``eval()`` mode (its ``sample_rate`` and ``control_hop`` are used).
        octave_shift: ``None`` shifts by whole octaves into the instrument's range; an int forces the shift.
        seed: fixes the model's noise and initial phases.

    Returns:
        ``(audio, info)``: ``(frames * control_hop,)`` float32 audio at ``model.config.sample_rate``, and
        ``info`` with ``frames``, ``voiced_fraction``, ``octave_shift``, ``median_f0_in_hz``,
        ``median_f0_out_hz``, ``loudness_target`` and ``sample_rate``.
    """
    check_instrument(instrument)
    rate, hop = int(model.config.sample_rate), int(model.config.control_hop)
    f0, loudness, voiced = extract_controls(wav, sr, control_hop=hop, sample_rate=rate)
    f0_out, octaves = shift_octaves(f0, instrument, voiced, octave_shift)
    target = loudness_targets(instrument, model)
    loudness_out = remap_loudness(loudness, *target, voiced=voiced)
    audio = model.synthesize(f0_out, loudness_out, seed=seed).float().cpu()  # (frames * hop,)

    def median(x: Tensor) -> float | None:
        picked = x[voiced & (x > 0)]
        return float(picked.median()) if picked.numel() else None

    info = {
        "frames": int(f0.shape[0]),
        "sample_rate": rate,
        "voiced_fraction": float(voiced.float().mean()),
        "octave_shift": octaves,
        "median_f0_in_hz": median(f0),
        "median_f0_out_hz": median(f0_out),
        "loudness_target": {"mean": target[0], "std": target[1]},
    }
    return audio, info
