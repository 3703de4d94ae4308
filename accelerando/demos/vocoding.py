"""The mel vocoders the demo offers, by display name, and the Vocode tab's logic.

A *variant* is a vocoder checkpoint role plus a step count (FreGrad at 50, 6 and 2 steps are three
variants of one model). Griffin-Lim needs no checkpoint, so the Vocode and Speak tabs always have
at least one vocoder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from accelerando.demos.checkpoints import ModelCache
from accelerando.demos.common import LIMITS, Limits, load_input_audio, mel_image, to_int16, user_errors

__all__ = ["VARIANTS", "VocoderVariant", "available_variants", "load_variant", "vocode_all"]


@dataclass(frozen=True)
class VocoderVariant:
    """One vocoder setting: display ``name``, checkpoint ``role`` (None: Griffin-Lim) and ``num_steps``."""

    name: str
    role: str | None
    num_steps: int | None = None


VARIANTS: tuple[VocoderVariant, ...] = (
    VocoderVariant("FreGrad (50 steps)", "fregrad", 50),
    VocoderVariant("FreGrad (6 steps)", "fregrad", 6),
    VocoderVariant("FreGrad (2 steps)", "fregrad", 2),
    VocoderVariant("PeriodWave (16 steps)", "periodwave", 16),
    VocoderVariant("PeriodWave-Turbo", "periodwave_turbo", None),
    VocoderVariant("MelNEWT", "mel_newt", None),
    VocoderVariant("Griffin-Lim", None, None),
)
_CLASSES = {
    "fregrad": "FreGrad",
    "periodwave": "PeriodWave",
    "periodwave_turbo": "PeriodWaveTurbo",
    "mel_newt": "MelNEWT",
}


def available_variants(cache: ModelCache) -> list[VocoderVariant]:
    """The variants whose checkpoint exists (Griffin-Lim always)."""
    return [v for v in VARIANTS if v.role is None or cache.has(v.role)]


def default_variant(cache: ModelCache) -> tuple[VocoderVariant, str]:
    """The variant the Speak tab starts on and why: the measured default of the speech engine.

    :func:`accelerando.pretrained.defaults.default_vocoder` names a bundled folder or Griffin-Lim; the variant is
    that checkpoint at its own default steps (FreGrad: 6), else Griffin-Lim.
    """
    from accelerando.pretrained.defaults import default_vocoder

    choice = default_vocoder()
    choices = available_variants(cache)
    for variant in choices:
        folder = cache.checkpoints.get(variant.role) if variant.role else None
        if folder is not None and Path(folder).name == choice.name and variant.num_steps in (None, 6):
            return variant, choice.reason
    griffin_lim = next(v for v in choices if v.role is None)
    return griffin_lim, choice.reason


def variant_by_name(name: str, cache: ModelCache) -> VocoderVariant:
    """The available variant called ``name``; ``ValueError`` lists the choices."""
    choices = available_variants(cache)
    for variant in choices:
        if variant.name == name:
            return variant
    raise ValueError(f"Unknown vocoder {name!r}; choose one of: {', '.join(v.name for v in choices)}.")


def load_variant(variant: VocoderVariant, cache: ModelCache, n_mels: int = 80) -> Any:
    """The (cached) vocoder model of ``variant``."""
    from accelerando import vocoders
    from accelerando.audio import MelConfig

    if variant.role is None:
        return cache.get(f"griffin-lim-{n_mels}", lambda: vocoders.GriffinLim(MelConfig(n_mels=n_mels)))
    cls = getattr(vocoders, _CLASSES[variant.role])
    path = cache.path(variant.role)
    return cache.get(variant.role, lambda: cls.from_pretrained(str(path)))


def _metrics(pred: np.ndarray, ref: np.ndarray, sr: int) -> dict[str, float]:
    """M-STFT, mel L1, MCD, PESQ-wb and STOI against the input (pitch metrics left out: pYIN is slow)."""
    import math

    from accelerando.audio import MelConfig
    from accelerando.metrics import align_lengths, mcd, mel_l1, mstft_distance, pesq_wb, resample_mono, stoi

    pred, ref = align_lengths(pred, ref)
    cfg = MelConfig()
    out: dict[str, float] = {"mstft": mstft_distance(pred, ref)}
    for key, fn in (("pesq_wb", pesq_wb), ("stoi", stoi)):
        try:
            out[key] = float(fn(pred, ref, sr))
        except ValueError:
            out[key] = math.nan
    mel_pred, mel_ref = resample_mono(pred, sr, cfg.sample_rate), resample_mono(ref, sr, cfg.sample_rate)
    out["mel_l1"] = mel_l1(mel_pred, mel_ref, cfg)
    out["mcd"] = mcd(mel_pred, mel_ref, cfg)
    return {k: float(v) for k, v in out.items()}


METRIC_COLUMNS = ["vocoder", "time (s)", "RTF", "M-STFT ↓", "mel L1 ↓", "MCD ↓", "PESQ-wb ↑", "STOI ↑"]


def default_selection(cache: ModelCache) -> list[str]:
    """Variants run by default: all on a GPU; on a CPU the many-step ones are left for the user to tick."""
    slow = {"FreGrad (50 steps)", "PeriodWave (16 steps)"}
    return [v.name for v in available_variants(cache) if cache.device != "cpu" or v.name not in slow]


def vocode_all(
    audio_path: str | None, selected: list[str] | None, cache: ModelCache, limits: Limits = LIMITS
) -> tuple[list[tuple[int, np.ndarray] | None], list[np.ndarray | None], list[list[Any]], str]:
    """Input file → mel → each selected vocoder (``None``: all available).

    Returns (audio per available variant as ``(sr, int16)``, or None when not selected;
    spectrogram images ``[input, *variants]``; metric rows (one per selected variant,
    :data:`METRIC_COLUMNS`); a one-line summary).
    """
    import torch

    from accelerando.audio import MelConfig, mel_spectrogram

    variants = available_variants(cache)
    names = [v.name for v in variants]
    selected = names if selected is None else list(selected)
    unknown = [name for name in selected if name not in names]
    if unknown:
        raise ValueError(f"Unknown vocoder(s) {unknown}; choose from: {', '.join(names)}.")
    if not selected:
        raise ValueError("Tick at least one vocoder to run.")
    cfg = MelConfig()
    wav = load_input_audio(audio_path, cfg.sample_rate, limits)  # (T,)
    if len(wav) < cfg.n_fft:
        raise ValueError(
            f"The audio is too short for a mel spectrogram: it needs at least {cfg.n_fft} samples."
        )
    mel = mel_spectrogram(torch.from_numpy(wav), cfg)  # (1, n_mels, frames)
    ref = wav[: mel.shape[-1] * cfg.hop_length]
    seconds = len(ref) / cfg.sample_rate
    audios, images, rows = [], [mel_image(mel, "input", cfg.sample_rate, cfg.hop_length)], []
    for variant in variants:
        if variant.name not in selected:
            audios.append(None)
            images.append(None)
            continue
        model = load_variant(variant, cache, cfg.n_mels)
        device = next(model.parameters()).device if hasattr(model, "parameters") else torch.device("cpu")
        with cache.lock(variant.role or "griffin-lim"), torch.inference_mode():
            start = time.perf_counter()
            generator = torch.Generator(device=device).manual_seed(0)
            out = model.synthesize(mel.to(device), num_steps=variant.num_steps, generator=generator)
            if device.type == "cuda":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
        pred = out[0].detach().float().cpu().numpy()[: len(ref)]
        audios.append((cfg.sample_rate, to_int16(pred)))
        images.append(mel_image(mel_spectrogram(torch.from_numpy(pred), cfg), variant.name))
        m = _metrics(pred, ref, cfg.sample_rate)
        rows.append(
            [variant.name, round(elapsed, 3), round(elapsed / seconds, 3)]
            + [round(m[k], 3) for k in ("mstft", "mel_l1", "mcd", "pesq_wb", "stoi")]
        )
    summary = f"Vocoded {seconds:.2f} s of audio with {len(rows)} vocoders on {cache.device}."
    return audios, images, rows, summary


@user_errors
def vocode_tab(audio_path: str | None, selected: list[str] | None, cache: ModelCache) -> tuple[Any, ...]:
    """The Vocode tab's handler: flat outputs ``(*audios, *images, metrics rows, summary)``."""
    audios, images, rows, summary = vocode_all(audio_path, selected, cache)
    return (*audios, *images, rows, summary)
