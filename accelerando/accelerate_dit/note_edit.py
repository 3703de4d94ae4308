"""One note edit for every front end: ``accelerando edit`` and the demo's Edit tab call :func:`edit_note_audio`.

A recorded note (mono, at the model's sample rate) becomes a log-mel, padded to a multiple of the MelDiT patch
width by repeating its last frame; its MIDI pitch is estimated with pYIN when not given; RF-Edit (Wang et al.,
arXiv 2411.04746) inverts it under the source condition and regenerates it under the target; a vocoder turns the
edited mel back into audio of the input's length, peak-normalised when it would clip. The two front ends add only
their own input handling (files and flags, uploads and limits) and output (a file, the tab's widgets).

Example::

    from accelerando.accelerate_dit.note_edit import edit_note_audio, note_mel_config
    from accelerando.audio import load_audio, save_audio
    from accelerando.generation import MelDiTPipeline

    pipe = MelDiTPipeline.from_pretrained("out/meldit-pipe")
    wav = load_audio("violin.wav", sr=note_mel_config(pipe).sample_rate)
    edit = edit_note_audio(pipe, wav, "Flute", source="Violin")  # pitch estimated
    save_audio("flute.wav", edit.audio, edit.sample_rate)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from accelerando.accelerate_dit.rf_solver import RFEditConfig, rf_edit
from accelerando.audio import MelConfig, extract_f0, mel_spectrogram
from accelerando.generation.instruments import resolve_program

__all__ = [
    "F0_FRAME_LENGTH",
    "F0_MAX_HZ",
    "F0_MIN_HZ",
    "NoteEdit",
    "PitchNotFoundError",
    "edit_note_audio",
    "estimate_f0_hz",
    "estimate_midi_pitch",
    "note_mel_config",
]

F0_MIN_HZ = (
    27.5  # A0, below the lowest note of the corpus (E1, 41 Hz, on the bass); pYIN's default 65 Hz is C2
)
F0_MAX_HZ = (
    4186.0  # C8; pYIN's default 2093 Hz (C7) is the corpus's highest note, which it reads an octave low
)
F0_FRAME_LENGTH = 2048  # two periods of F0_MIN_HZ at 22050 Hz fit in one pYIN frame


class PitchNotFoundError(ValueError):
    """pYIN found no voiced frame in the note, so its MIDI pitch has to be given."""


def estimate_f0_hz(
    wav: np.ndarray | torch.Tensor,
    sample_rate: int,
    hop_length: int = 256,
    fmin: float = F0_MIN_HZ,
    fmax: float = F0_MAX_HZ,
) -> float:
    """Median pYIN f0 in Hz over the voiced frames of a mono note ``(T,)``; ``nan`` when no frame is voiced.

    The default search, 27.5 Hz (A0) to 4186 Hz (C8) with a 2048-sample frame, finds the bass notes below C2 and
    the notes at C7 that pYIN's default range (65-2093 Hz) clamps to its edges. pYIN's cost grows with the square
    of the range: narrow ``fmin`` / ``fmax`` when the pitch is roughly known.
    """
    if not 0 < fmin < fmax:
        raise ValueError(f"Need 0 < fmin < fmax for the f0 search, got fmin={fmin}, fmax={fmax}.")
    f0, voiced, _ = extract_f0(
        wav, sample_rate, hop_length=hop_length, fmin=fmin, fmax=fmax, frame_length=F0_FRAME_LENGTH
    )
    f0 = np.asarray(f0)[np.asarray(voiced, dtype=bool)]
    f0 = f0[np.isfinite(f0) & (f0 > 0)]
    return float(np.median(f0)) if f0.size else float("nan")


def estimate_midi_pitch(wav: np.ndarray | torch.Tensor, sample_rate: int, hop_length: int = 256) -> int:
    """The MIDI number nearest the median pYIN f0 of a mono note ``(T,)`` (searched over A0-C8, see
    :func:`estimate_f0_hz`).

    Raises:
        PitchNotFoundError: (a ``ValueError``) no frame of the note is voiced, e.g. silence or noise.
    """
    f0 = estimate_f0_hz(wav, sample_rate, hop_length)
    if math.isnan(f0):
        raise PitchNotFoundError(
            f"No pitch was found in the note: pYIN found no voiced frame between {F0_MIN_HZ:g} and "
            f"{F0_MAX_HZ:g} Hz."
        )
    return int(round(69 + 12 * math.log2(f0 / 440.0)))


def note_mel_config(pipe: Any) -> MelConfig:
    """The mel front end of a ``MelDiTPipeline``'s transformer; read input audio at its ``sample_rate``."""
    return MelConfig(n_mels=pipe.transformer.config.n_mels)


@dataclass
class NoteEdit:
    """The result of :func:`edit_note_audio`.

    Attributes:
        audio: ``(T,)`` float32 waveform with the input's length, peak-normalised when its peak exceeded 1.
        sample_rate: its sample rate (the model's mel front end's).
        mel_in: ``(n_mels, frames)`` log-mel of the input (float32, CPU), ``frames = max(T, n_fft) // hop``.
        mel_out: ``(n_mels, frames)`` edited log-mel, trimmed to the input's frames (float32, CPU).
        pitch: the MIDI pitch of both conditions.
        pitch_estimated: whether ``pitch`` came from pYIN (no pitch was given).
        seconds: wall time of RF-Edit and the vocoder.
    """

    audio: np.ndarray
    sample_rate: int
    mel_in: torch.Tensor
    mel_out: torch.Tensor
    pitch: int
    pitch_estimated: bool
    seconds: float


def _as_mono(wav: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(wav, np.ndarray):
        wav = torch.from_numpy(np.ascontiguousarray(wav))
    if not isinstance(wav, torch.Tensor):
        raise TypeError(f"wav must be a NumPy array or a torch.Tensor, got {type(wav).__name__}.")
    if wav.ndim != 1 or wav.numel() == 0:
        raise ValueError(
            f"wav must be a non-empty mono waveform of shape (T,), got shape {tuple(wav.shape)}."
        )
    if not wav.is_floating_point():
        raise ValueError(f"wav must hold floating-point samples in [-1, 1], got dtype {wav.dtype}.")
    wav = wav.detach().to("cpu", torch.float32)
    if not torch.isfinite(wav).all():
        raise ValueError("wav holds NaN or Inf samples.")
    return wav


def _check_midi(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= 127:
        raise ValueError(f"{name} must be a whole MIDI number 0-127, got {value!r}.")
    return int(value)


def edit_note_audio(
    pipe: Any,
    wav: np.ndarray | torch.Tensor,
    target: int | str,
    source: int | str | None = None,
    pitch: int | None = None,
    velocity: int = 100,
    config: RFEditConfig | None = None,
    vocoder: Any = None,
    seed: int | None = None,
) -> NoteEdit:
    """RF-Edit a recorded note to instrument ``target``, keeping its pitch, timing and dynamics.

    Args:
        pipe: a ``MelDiTPipeline``; its transformer runs the edit, its vocoder (if any) is the default vocoder.
        wav: the note, mono ``(T,)`` float, at ``note_mel_config(pipe).sample_rate``.
        target: the target GM instrument (name or program number).
        source: the note's GM instrument; ``None`` inverts under the unconditional labels.
        pitch: the note's MIDI pitch 0-127, used by both conditions; ``None`` estimates it
            (:func:`estimate_midi_pitch`, pYIN over A0-C8).
        velocity: the MIDI velocity of both conditions.
        config: RF-Edit settings (steps, shared steps and blocks, shift, guidance); ``None``: ``RFEditConfig()``.
        vocoder: anything with ``synthesize((B, n_mels, frames)) -> (B, samples)``; ``None``: the pipeline's
            vocoder, else Griffin-Lim at the model's mel front end.
        seed: seeds torch's global RNG before the edit (for vocoders that draw noise; RF-Edit itself is
            deterministic); ``None`` leaves it alone.

    Returns:
        A :class:`NoteEdit` whose audio has the input's length.

    Raises:
        PitchNotFoundError: ``pitch`` is ``None`` and pYIN finds no voiced frame.
        ValueError: a bad waveform, pitch, velocity, instrument or RF-Edit setting.
    """
    transformer = pipe.transformer
    cfg = note_mel_config(pipe)
    num_programs = transformer.config.num_programs
    for instrument in (target, source) if source is not None else (target,):
        resolve_program(instrument, num_programs)  # a clear error before the pitch search
    wav = _as_mono(wav)
    if pitch is not None:
        pitch = _check_midi(pitch, "Pitch")
    velocity = _check_midi(velocity, "Velocity")
    num_samples = wav.shape[-1]
    pitch_estimated = pitch is None
    if pitch is None:
        pitch = estimate_midi_pitch(wav.numpy(), cfg.sample_rate, cfg.hop_length)  # 21-108 (A0-C8)

    padded = F.pad(wav, (0, max(0, cfg.n_fft - num_samples)))
    mel = mel_spectrogram(padded, cfg)  # (1, n_mels, frames)
    frames = mel.shape[-1]
    pad = (-frames) % transformer.patch_size[1]
    if pad:  # repeat the last frame up to a multiple of the patch width; the edit is trimmed again below
        mel = torch.cat([mel, mel[..., -1:].expand(-1, -1, pad)], dim=-1)

    target_condition = {"instrument": target, "pitch": pitch, "velocity": velocity}
    source_condition = None if source is None else {**target_condition, "instrument": source}
    if seed is not None:
        torch.manual_seed(seed)
    device = transformer.device
    start = time.perf_counter()
    out = rf_edit(pipe, mel.to(device), source_condition, target_condition, config=config or RFEditConfig())
    # The padded frames are vocoded too: they cover the samples past the last whole frame.
    if (vocoder is None or vocoder is getattr(pipe, "vocoder", None)) and out.audios is not None:
        audio = out.audios
    else:
        if vocoder is None:
            from accelerando.vocoders.griffin_lim import GriffinLim

            vocoder = GriffinLim(cfg)
        with torch.inference_mode():
            audio = vocoder.synthesize(out.mels.float())
    audio = torch.as_tensor(audio)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start

    audio = audio[0].detach().float().cpu().flatten()[:num_samples]
    audio = F.pad(audio, (0, num_samples - audio.shape[0]))
    peak = float(audio.abs().max())
    if peak > 1.0:
        audio = audio / peak
    return NoteEdit(
        audio=audio.numpy().astype(np.float32, copy=False),
        sample_rate=cfg.sample_rate,
        mel_in=mel[0, :, :frames].float().cpu(),
        mel_out=out.mels[0, :, :frames].detach().float().cpu(),
        pitch=pitch,
        pitch_estimated=pitch_estimated,
        seconds=seconds,
    )
