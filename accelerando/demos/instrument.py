"""The Instrument tab: a hum or melody → f0 and loudness → a NEWT / FastNEWT instrument."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from accelerando.demos.checkpoints import ModelCache
from accelerando.demos.common import LIMITS, Limits, curves_image, load_input_audio, to_int16, user_errors

__all__ = ["instruments", "render_instrument"]


def instruments(cache: ModelCache) -> list[str]:
    """Instrument names with a ``newt-<instrument>`` checkpoint, sorted."""
    entry = cache.checkpoints.get("newt") or {}
    return sorted(entry)


def _model(name: str, fast: bool, cache: ModelCache) -> Any:
    from accelerando.vocoders import NEWT

    path = cache.path("newt", name)
    plain = cache.get(f"newt:{name}", lambda: NEWT.from_pretrained(str(path)))
    if not fast:
        return plain
    return cache.get(f"fastnewt:{name}", lambda: plain.to_fast())


def render_instrument(
    audio_path: str | None,
    instrument: str | None,
    fast: bool,
    transpose: float,
    cache: ModelCache,
    limits: Limits = LIMITS,
) -> tuple[tuple[int, np.ndarray], np.ndarray, str]:
    """Returns ``((sr, int16 audio), f0/loudness plot, summary)``; ``transpose`` is in semitones."""
    import torch

    from accelerando.audio import extract_f0, extract_loudness, normalize_loudness

    names = instruments(cache)
    if instrument not in names:
        raise ValueError(f"Unknown instrument {instrument!r}; choose one of: {', '.join(names) or 'none'}.")
    if transpose is None or not -24 <= float(transpose) <= 24:
        raise ValueError(f"Transpose must be between -24 and 24 semitones, got {transpose!r}.")
    model = _model(instrument, bool(fast), cache)
    sr, hop = int(model.config.sample_rate), int(model.config.control_hop)
    wav = load_input_audio(audio_path, sr, limits)
    if len(wav) < 4 * hop:
        raise ValueError(f"The audio is too short: it needs at least {4 * hop} samples at {sr} Hz.")
    f0, voiced, _ = extract_f0(wav, sr, hop_length=hop, frame_length=max(1024, 4 * hop))
    loudness = extract_loudness(wav, sr, hop_length=hop, n_fft=max(1024, 4 * hop))
    frames = min(len(f0), len(loudness))
    f0, loudness = f0[:frames], loudness[:frames]
    if not voiced[:frames].any():
        raise ValueError("No pitch was found in the audio; hum or play a clear melody.")
    shifted = np.where(f0 > 0, f0 * 2.0 ** (float(transpose) / 12.0), 0.0).astype(np.float32)
    shifted = np.clip(shifted, 0.0, float(model.config.f0_max))
    # NEWT expects a continuous f0: carry the last voiced value through unvoiced frames (loudness silences them).
    filled = shifted.copy()
    last = float(shifted[shifted > 0][0])
    for i, value in enumerate(filled):
        last = float(value) if value > 0 else last
        filled[i] = last
    device = next(model.parameters()).device
    with cache.lock(f"newt:{instrument}"), torch.inference_mode():
        start = time.perf_counter()
        audio = model.synthesize(
            torch.from_numpy(filled)[None].to(device),
            torch.from_numpy(np.asarray(normalize_loudness(loudness), dtype=np.float32))[None].to(device),
            seed=0,
        )
        elapsed = time.perf_counter() - start
    audio = audio[0].float().cpu().numpy()
    peak = float(np.abs(audio).max())
    if peak > 1.0:
        audio = audio / peak
    seconds = len(audio) / sr
    plot = curves_image(shifted, loudness, hop / sr)
    variant = "FastNEWT (lookup tables)" if fast else "NEWT"
    summary = (
        f"{variant} {instrument}: {seconds:.2f} s rendered in {elapsed:.3f} s on {cache.device} "
        f"(RTF {elapsed / max(seconds, 1e-9):.3f}); transpose {float(transpose):+g} semitones."
    )
    return (sr, to_int16(audio)), plot, summary


@user_errors
def instrument_tab(
    audio_path: str | None, instrument: str | None, fast: bool, transpose: float, cache: ModelCache
) -> tuple[Any, ...]:
    """The Instrument tab's handler."""
    return render_instrument(audio_path, instrument, fast, transpose, cache)
