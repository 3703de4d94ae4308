"""The Notes tab (MelDiT with samplers and acceleration plugins) and the Edit tab (RF-Edit)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from accelerando.demos.checkpoints import ModelCache
from accelerando.demos.common import LIMITS, Limits, load_input_audio, mel_image, to_int16, user_errors

__all__ = ["SAMPLERS", "edit_note", "generate_note", "instrument_names"]

SAMPLERS = ("Euler", "RF-Solver")
MAX_EDIT_SECONDS = 6.0  # RF-Edit works on single notes; its cost grows with the number of frames


def _pipeline(cache: ModelCache) -> Any:
    from accelerando.generation import MelDiTPipeline

    path = cache.path("meldit")
    return cache.get("meldit", lambda: MelDiTPipeline.from_pretrained(str(path)).to(cache.device))


def _sim_transformer(cache: ModelCache) -> Any:
    from accelerando.generation import MelDiT

    path = cache.path("meldit_sim")
    return cache.get("meldit_sim", lambda: MelDiT.from_pretrained(str(path)))


def _vocoder(pipe: Any, cache: ModelCache) -> Any:
    """The pipeline's own vocoder, else Griffin-Lim at the model's mel size."""
    if pipe.vocoder is not None:
        return pipe.vocoder
    from accelerando.audio import MelConfig
    from accelerando.vocoders import GriffinLim

    n_mels = pipe.transformer.config.n_mels
    return cache.get(f"griffin-lim-{n_mels}", lambda: GriffinLim(MelConfig(n_mels=n_mels)))


def instrument_names(cache: ModelCache) -> list[str]:
    """GM names of the programs the MelDiT checkpoint was trained on (all it can index when its config does not
    say, i.e. checkpoints from before ``trained_programs``); loads it."""
    from accelerando.generation import GM_PROGRAM_NAMES

    config = _pipeline(cache).transformer.config
    programs = config.get("trained_programs") or range(config.num_programs)
    return [GM_PROGRAM_NAMES[p] for p in programs]


def _check_label(value: Any, name: str) -> int:
    if value is None or not 0 <= float(value) <= 127 or float(value) != int(float(value)):
        raise ValueError(f"{name} must be a whole number 0-127, got {value!r}.")
    return int(float(value))


def _run(pipe_cls: Any, transformer: Any, scheduler: Any, latents: Any, labels: dict, steps: int, cfg: float):
    import torch

    pipe = pipe_cls(transformer, scheduler)
    pipe.set_progress_bar_config(disable=True)
    start = time.perf_counter()
    out = pipe(**labels, num_inference_steps=steps, guidance_scale=cfg, latents=latents, output_type="pt")
    if latents.device.type == "cuda":
        torch.cuda.synchronize()
    return out.mels, time.perf_counter() - start


def generate_note(
    instrument: str,
    pitch: float,
    velocity: float,
    steps: float,
    sampler: str,
    tome_ratio: float,
    fora_interval: float,
    one_step: bool,
    guidance: float,
    cache: ModelCache,
) -> tuple[tuple[int, np.ndarray], np.ndarray, str]:
    """Draw one note and time it against the plain run (Euler, same steps, no plugins, same noise).

    The plain run of each setting (instrument, pitch, velocity, steps, guidance) is run and timed once and
    cached, so a click costs one accelerated run; when the chosen run *is* the plain run it is not run twice.

    Returns ``((sr, int16 audio), spectrogram image, markdown summary)``.
    """
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler

    from accelerando.accelerate_dit import (
        FORAConfig,
        RFSolverScheduler,
        ToMeConfig,
        apply_fora,
        apply_tome,
        remove_acceleration,
    )
    from accelerando.audio import MelConfig
    from accelerando.generation import MelDiTPipeline

    names = instrument_names(cache)
    if instrument not in names:
        raise ValueError(f"Unknown instrument {instrument!r}; this model was trained on: {', '.join(names)}.")
    labels = {
        "instrument": instrument,
        "pitch": _check_label(pitch, "Pitch"),
        "velocity": _check_label(velocity, "Velocity"),
    }
    if steps is None or not 1 <= int(steps) <= 100:
        raise ValueError(f"Steps must be 1-100, got {steps!r}.")
    if sampler not in SAMPLERS:
        raise ValueError(f"Unknown sampler {sampler!r}; choose one of: {', '.join(SAMPLERS)}.")
    if tome_ratio is None or not 0.0 <= float(tome_ratio) < 0.75 + 1e-9:
        raise ValueError(f"ToMe ratio must be in [0, 0.75], got {tome_ratio!r}.")
    if fora_interval is None or not 1 <= int(fora_interval) <= 8:
        raise ValueError(f"FORA interval must be 1-8, got {fora_interval!r}.")
    if one_step and not cache.has("meldit_sim"):
        from accelerando.demos.checkpoints import missing_message

        raise ValueError(missing_message("meldit_sim"))
    steps, cfg = int(steps), float(guidance or 1.0)
    pipe = _pipeline(cache)
    transformer = pipe.transformer
    config = transformer.config
    device = transformer.device
    shape = (1, config.in_channels, config.n_mels, config.num_frames)
    latents = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device, transformer.dtype)
    base = pipe.scheduler.config
    plugins: list[str] = []
    is_plain = not one_step and sampler == "Euler" and float(tome_ratio) == 0 and int(fora_interval) <= 1
    setting = f"notes-plain:{instrument}|{labels['pitch']}|{labels['velocity']}|{steps}|{cfg:g}"
    with cache.lock("meldit"):
        plain, plain_time = cache.get(
            setting,
            lambda: _run(
                MelDiTPipeline,
                transformer,
                FlowMatchEulerDiscreteScheduler.from_config(base),
                latents,
                labels,
                steps,
                cfg,
            ),
        )
        if is_plain:
            mels, took = plain, plain_time
            how = f"Euler, {steps} steps ({steps} model calls), no plugins"
        elif one_step:
            sim = _sim_transformer(cache)
            with cache.lock("meldit_sim"):
                mels, took = _run(
                    MelDiTPipeline, sim, FlowMatchEulerDiscreteScheduler(), latents, labels, 1, 1.0
                )
            how = "SIM one-step generator (1 network evaluation; its guidance is distilled in, the slider does not apply)"
        else:
            scheduler_cls = RFSolverScheduler if sampler == "RF-Solver" else FlowMatchEulerDiscreteScheduler
            try:
                if float(tome_ratio) > 0:
                    apply_tome(transformer, ToMeConfig(ratio=float(tome_ratio)))
                    plugins.append(f"ToMe {float(tome_ratio):g}")
                if int(fora_interval) > 1:
                    # taylor1: closer to the plain output than repeating the cache at every interval
                    # (benchmarks/results/dit_caching.json)
                    apply_fora(transformer, FORAConfig(interval=int(fora_interval), forecast="taylor1"))
                    plugins.append(f"FORA every {int(fora_interval)} (taylor1 forecast)")
                mels, took = _run(
                    MelDiTPipeline, transformer, scheduler_cls.from_config(base), latents, labels, steps, cfg
                )
            finally:
                remove_acceleration(transformer)
            calls = steps * (2 if sampler == "RF-Solver" else 1)
            how = f"{sampler}, {steps} steps ({calls} model calls), " + (", ".join(plugins) or "no plugins")
        with torch.inference_mode():
            audio = _vocoder(pipe, cache).synthesize(mels.float())
    distance = float((mels - plain).abs().mean())
    mel_cfg = MelConfig(n_mels=config.n_mels)
    if is_plain:
        summary = (
            f"**{how}** — this *is* the plain run (timed once per setting: {plain_time:.3f} s); pick RF-Solver, "
            f"ToMe, FORA or one step to compare against it · guidance {cfg:g} · {cache.device}"
        )
    else:
        summary = (
            f"**{how}** · time {took:.3f} s · plain run (Euler, {steps} steps, no plugins; timed once per "
            f"setting) {plain_time:.3f} s · speedup **{plain_time / max(took, 1e-9):.2f}×** · mel L1 to the "
            f"plain run {distance:.3f} · guidance {cfg:g} · {cache.device}"
        )
    image = mel_image(
        mels[0], f"{instrument}, pitch {labels['pitch']}", mel_cfg.sample_rate, mel_cfg.hop_length
    )
    return (mel_cfg.sample_rate, to_int16(audio[0])), image, summary


def edit_note(
    audio_path: str | None,
    target: str,
    source: str | None,
    pitch: float | None,
    steps: float,
    inject_steps: float,
    cache: ModelCache,
    limits: Limits = LIMITS,
) -> tuple[tuple[int, np.ndarray], np.ndarray, np.ndarray, str]:
    """RF-Edit a recorded note to ``target``, keeping its melody (pitch, timing, dynamics).

    ``source`` is the note's instrument (``None`` / ``""``: invert unconditionally); ``pitch`` 0 or
    ``None`` estimates it with pYIN. The edit is ``accelerando edit``'s
    (:func:`accelerando.accelerate_dit.note_edit.edit_note_audio`, velocity 100, the default shift, shared blocks
    and guidance). Returns ``((sr, int16 audio), input image, output image, summary)``.
    """
    import dataclasses

    from accelerando.accelerate_dit import RFEditConfig
    from accelerando.accelerate_dit.note_edit import (
        PitchNotFoundError,
        edit_note_audio,
        estimate_midi_pitch,
        note_mel_config,
    )

    names = instrument_names(cache)
    if target not in names:
        raise ValueError(
            f"Unknown target instrument {target!r}; this model was trained on: {', '.join(names)}."
        )
    if source and source not in names:
        raise ValueError(
            f"Unknown source instrument {source!r}; this model was trained on: {', '.join(names)}."
        )
    if steps is None or not 1 <= int(steps) <= 50:
        raise ValueError(f"Steps must be 1-50, got {steps!r}.")
    if inject_steps is None or not 0 <= int(inject_steps) <= int(steps):
        raise ValueError(f"Inject steps must be 0..steps ({int(steps)}), got {inject_steps!r}.")
    pipe = _pipeline(cache)
    cfg = note_mel_config(pipe)
    edit_limits = dataclasses.replace(
        limits, max_audio_seconds=min(limits.max_audio_seconds, MAX_EDIT_SECONDS)
    )
    wav = load_input_audio(audio_path, cfg.sample_rate, edit_limits)
    try:  # outside the model's lock: pYIN takes seconds on a long note
        midi = int(pitch) if pitch else estimate_midi_pitch(wav, cfg.sample_rate, cfg.hop_length)
    except PitchNotFoundError as err:
        raise ValueError(f"{err} Set its MIDI pitch by hand.") from None
    config = RFEditConfig(num_steps=int(steps), inject_steps=int(inject_steps))
    with cache.lock("meldit"):
        edit = edit_note_audio(
            pipe, wav, target, source or None, pitch=midi, config=config, vocoder=_vocoder(pipe, cache)
        )
    summary = (
        f"{source or 'unconditional inversion'} → **{target}**, pitch {midi}"
        f"{'' if pitch else ' (estimated)'}, {int(steps)} RF-Solver steps, values shared for the first "
        f"{int(inject_steps)}; {edit.seconds:.2f} s on {cache.device}."
    )
    before = mel_image(edit.mel_in, "input", cfg.sample_rate, cfg.hop_length)
    after = mel_image(edit.mel_out, f"edited: {target}", cfg.sample_rate, cfg.hop_length)
    return (edit.sample_rate, to_int16(edit.audio)), before, after, summary


@user_errors
def notes_tab(*args: Any, cache: ModelCache) -> tuple[Any, ...]:
    """The Notes tab's handler (see :func:`generate_note`)."""
    return generate_note(*args, cache=cache)


@user_errors
def edit_tab(*args: Any, cache: ModelCache) -> tuple[Any, ...]:
    """The Edit tab's handler (see :func:`edit_note`)."""
    return edit_note(*args, cache=cache)
