"""Flow samplers for MelDiT: the core samplers (:mod:`accelerando.samplers`) and the MelDiT adapter.

``flow_model_wrapper`` adapts a ``MelDiT`` (timestep ``sigma * 1000``, labels, classifier-free guidance) to the
samplers' ``model(x, sigma) -> velocity`` signature. The samplers and schedules live in the core module
:mod:`accelerando.samplers` (the vocoders use them too) and are re-exported here, where they were first
documented.

Example::

    from accelerando.generation import MelDiT, flow_model_wrapper, get_sigmas_shifted, sample_heun

    model = MelDiT.from_preset("small").eval()
    fn = flow_model_wrapper(model, program=[40], pitch=[67], velocity=[90], guidance_scale=3.0)
    sigmas = get_sigmas_shifted(12, shift=3.0)
    x = sample_heun(fn, torch.randn(1, 1, 80, 128), sigmas)  # model-space mel
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from accelerando.generation.mel_dit import MelDiT, guidance_labels, guided_velocity
from accelerando.samplers import (
    FlowModel,
    get_sigmas_shifted,
    get_sigmas_uniform,
    sample_euler,
    sample_fireflow,
    sample_heun,
    sample_midpoint,
    sample_rf_solver,
)

__all__ = [
    "flow_model_wrapper",
    "get_sigmas_shifted",
    "get_sigmas_uniform",
    "sample_euler",
    "sample_fireflow",
    "sample_heun",
    "sample_midpoint",
    "sample_rf_solver",
]


def flow_model_wrapper(
    transformer: MelDiT,
    program: Sequence[int] | torch.Tensor,
    pitch: Sequence[int] | torch.Tensor,
    velocity: Sequence[int] | torch.Tensor,
    guidance_scale: float = 1.0,
) -> FlowModel:
    """Adapt a ``MelDiT`` to ``model(x, sigma) -> velocity`` with classifier-free guidance.

    Labels are ``(B,)`` (lists or tensors). The conditional and unconditional (``NULL_LABEL``) rows run in one
    forward; ``guidance_scale == 1`` runs the conditional rows only.
    """
    device = transformer.device
    labels = guidance_labels(
        [torch.as_tensor(v, dtype=torch.long, device=device).reshape(-1) for v in (program, pitch, velocity)],
        guidance_scale,
    )

    def model(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        timestep = (sigma.reshape(-1).expand(x.shape[0]) * 1000).to(x.dtype)
        v = guided_velocity(transformer, x.to(transformer.dtype), timestep, labels, guidance_scale)
        return v.to(x.dtype)

    return model
