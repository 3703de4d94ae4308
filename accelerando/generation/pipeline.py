"""MelDiTPipeline: instrument notes as mel spectrograms (and audio, with a vocoder) from a MelDiT.

A diffusers ``DiffusionPipeline`` driven by any flow-matching scheduler with the diffusers scheduler API
(``FlowMatchEulerDiscreteScheduler`` by default; ``FlowMatchHeunDiscreteScheduler`` or accelerando's
``RFSolverScheduler`` drop in). The transformer predicts the velocity ``noise - x0`` at
``timestep = sigma * 1000`` (see ``accelerando.generation.mel_dit``).

Example::

    from diffusers import FlowMatchEulerDiscreteScheduler
    from accelerando.generation import MelDiT, MelDiTPipeline

    pipe = MelDiTPipeline(MelDiT.from_preset("small"), FlowMatchEulerDiscreteScheduler(shift=3.0))
    out = pipe(instrument="Violin", pitch=67, velocity=90, num_inference_steps=16, guidance_scale=3.0)
    out.mels.shape  # (1, 80, 128) natural-log mels in MelConfig units
    pipe.save_pretrained("out/meldit-pipe")
    pipe = MelDiTPipeline.from_pretrained("out/meldit-pipe")
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers import DiffusionPipeline, FlowMatchEulerDiscreteScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from accelerando.generation.instruments import resolve_program
from accelerando.generation.mel_dit import NUM_MIDI_VALUES, MelDiT, guidance_labels, guided_velocity

__all__ = ["MelDiTPipeline", "MelDiTPipelineOutput"]

OUTPUT_TYPES = ("np", "pt", "latent")


@dataclass
class MelDiTPipelineOutput(BaseOutput):
    """Output of ``MelDiTPipeline``.

    Attributes:
        mels: ``(B, n_mels, frames)`` natural-log mels (``MelConfig`` units), or model-space mels
            ``(B, 1, n_mels, frames)`` for ``output_type="latent"``.
        audios: ``(B, samples)`` waveforms from the vocoder, or ``None`` without one (or for ``"latent"``).
    """

    mels: np.ndarray | torch.Tensor
    audios: np.ndarray | torch.Tensor | None = None


def _as_list(value: Any, name: str, batch_size: int) -> list:
    values = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    if len(values) == 1:
        values = values * batch_size
    if len(values) != batch_size:
        raise ValueError(
            f"{name} has {len(values)} values but the batch has {batch_size} notes; pass 1 or {batch_size}."
        )
    return values


def _check_midi(values: list, name: str) -> list[int]:
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < NUM_MIDI_VALUES:
            raise ValueError(
                f"{name} {v!r} is out of range: accepted values are integers 0..{NUM_MIDI_VALUES - 1}."
            )
    return [int(v) for v in values]


class MelDiTPipeline(DiffusionPipeline):
    """Text-free note generation: (instrument, pitch, velocity) -> mel (-> audio).

    Components:
        transformer: a ``MelDiT``.
        scheduler: a flow-matching scheduler (``FlowMatchEulerDiscreteScheduler`` or a drop-in).
        vocoder: optional; any component with ``synthesize(mel) -> (B, samples)`` taking
            ``(B, n_mels, frames)`` log-mels (accelerando's mel vocoders), or ``None``.
    """

    model_cpu_offload_seq = "transformer->vocoder"
    # The scheduler is "optional" only in that None means the default FlowMatchEulerDiscreteScheduler.
    _optional_components = ["scheduler", "vocoder"]

    def __init__(self, transformer: MelDiT, scheduler: SchedulerMixin | None = None, vocoder: Any = None):
        super().__init__()
        if scheduler is None:
            scheduler = FlowMatchEulerDiscreteScheduler()
        self.register_modules(transformer=transformer, scheduler=scheduler, vocoder=vocoder)

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any
    ) -> MelDiTPipeline:
        """Load a pipeline folder written by ``save_pretrained`` (local, safetensors only, never unpickles).

        ``kwargs`` go to ``DiffusionPipeline.from_pretrained`` (``torch_dtype``, a component to override, ...).
        """
        if kwargs.get("use_safetensors") is False:
            raise ValueError(
                "accelerando loads safetensors weights only; use_safetensors=False is not supported."
            )
        kwargs["use_safetensors"] = True
        kwargs.setdefault("local_files_only", True)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    def prepare_labels(
        self, instrument: Any, pitch: Any, velocity: Any, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Broadcast the conditioning to one batch and check it; returns three ``(B,)`` long tensors."""
        lengths = [
            len(v)
            for v in (instrument, pitch, velocity)
            if isinstance(v, Sequence) and not isinstance(v, str)
        ]
        batch_size = max(lengths, default=1)
        num_programs = self.transformer.config.num_programs
        programs = [resolve_program(i, num_programs) for i in _as_list(instrument, "instrument", batch_size)]
        pitches = _check_midi(_as_list(pitch, "pitch", batch_size), "pitch")
        velocities = _check_midi(_as_list(velocity, "velocity", batch_size), "velocity")
        return tuple(
            torch.tensor(v, dtype=torch.long, device=device) for v in (programs, pitches, velocities)
        )

    @torch.no_grad()
    def __call__(
        self,
        instrument: int | str | list[int | str] = 0,
        pitch: int | list[int] = 60,
        velocity: int | list[int] = 100,
        num_inference_steps: int = 16,
        guidance_scale: float = 1.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        num_frames: int | None = None,
        sigmas: list[float] | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable[[Any, int, torch.Tensor, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
    ) -> MelDiTPipelineOutput | tuple:
        """Generate notes.

        Args:
            instrument: GM program number(s) 0-127 or GM name(s) (``"Violin"``, ``"acoustic grand piano"``).
            pitch: MIDI pitch(es) 0-127. velocity: MIDI velocity(ies) 0-127. Lists set the batch size;
                scalars broadcast.
            num_inference_steps: scheduler steps (each is one transformer call, two rows with CFG).
            guidance_scale: classifier-free guidance ``v_u + w (v_c - v_u)``; conditional and unconditional rows
                share one forward. ``1.0`` skips the unconditional rows (identical to the conditional output).
            generator: makes the starting noise reproducible.
            latents: ``(B, 1, n_mels, frames)`` starting noise (overrides ``generator``).
            num_frames: mel frames (a multiple of the patch width); defaults to the model's ``num_frames``.
            sigmas: custom decreasing noise levels passed to ``scheduler.set_timesteps``.
            output_type: ``"np"`` (float32 arrays), ``"pt"`` (tensors) or ``"latent"`` (model-space mels).
            return_dict: return a ``MelDiTPipelineOutput`` (else ``(mels, audios)``).
            callback_on_step_end: ``fn(pipe, step, timestep, tensors) -> dict``, as in diffusers pipelines; a
                returned ``"latents"`` replaces the current latents.
        """
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type {output_type!r} is not supported; choose one of {OUTPUT_TYPES}.")
        if num_inference_steps < 1 and sigmas is None:
            raise ValueError(f"num_inference_steps must be at least 1, got {num_inference_steps}.")
        config = self.transformer.config
        device = self._execution_device
        dtype = self.transformer.dtype
        program, pitch_t, velocity_t = self.prepare_labels(instrument, pitch, velocity, device)
        batch_size = program.shape[0]
        num_frames = num_frames or config.num_frames
        if num_frames % self.transformer.patch_size[1]:
            raise ValueError(
                f"num_frames {num_frames} must be a multiple of the patch width {self.transformer.patch_size[1]}."
            )
        shape = (batch_size, config.in_channels, config.n_mels, num_frames)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        elif tuple(latents.shape) != shape:
            raise ValueError(f"latents must have shape {shape}, got {tuple(latents.shape)}.")
        latents = latents.to(device=device, dtype=dtype)

        labels = guidance_labels((program, pitch_t, velocity_t), guidance_scale)

        if sigmas is not None:
            self.scheduler.set_timesteps(sigmas=sigmas, device=device)
        else:
            self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        self._guidance_scale = guidance_scale
        self._num_timesteps = len(timesteps)

        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                model_input = latents
                if hasattr(self.scheduler, "scale_model_input"):
                    model_input = self.scheduler.scale_model_input(model_input, t)
                timestep = t.expand(model_input.shape[0]).to(dtype)
                velocity_pred = guided_velocity(  # (B, 1, n_mels, frames)
                    self.transformer, model_input, timestep, labels, guidance_scale
                )
                latents = self.scheduler.step(velocity_pred, t, latents, return_dict=False)[0]

                if callback_on_step_end is not None:
                    local = {"latents": latents, "velocity_pred": velocity_pred}
                    tensors = {k: local[k] for k in callback_on_step_end_tensor_inputs}
                    result = callback_on_step_end(self, i, t, tensors) or {}
                    latents = result.get("latents", latents)
                progress_bar.update()

        if output_type == "latent":
            mels, audios = latents, None
        else:
            mels = self.transformer.denormalize_mel(latents.float())[:, 0]  # (B, n_mels, frames)
            audios = self.vocoder.synthesize(mels) if self.vocoder is not None else None
            if output_type == "np":
                mels = mels.cpu().numpy()
                audios = audios.float().cpu().numpy() if audios is not None else None
        self.maybe_free_model_hooks()
        if not return_dict:
            return (mels, audios)
        return MelDiTPipelineOutput(mels=mels, audios=audios)
