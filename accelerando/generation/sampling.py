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

from accelerando.generation.mel_dit import NULL_LABEL, MelDiT
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
    labels = [
        torch.as_tensor(v, dtype=torch.long, device=device).reshape(-1) for v in (program, pitch, velocity)
    ]
    do_cfg = guidance_scale != 1.0
    if do_cfg:
        labels = [torch.cat([v, torch.full_like(v, NULL_LABEL)]) for v in labels]

    def model(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        x_in = torch.cat([x, x]) if do_cfg else x
        timestep = (sigma.reshape(-1).expand(x.shape[0]) * 1000).to(x.dtype)
        timestep = torch.cat([timestep, timestep]) if do_cfg else timestep
        v = transformer(x_in.to(transformer.dtype), timestep, *labels, return_dict=False)[0].to(x.dtype)
        if do_cfg:
            v_cond, v_uncond = v.chunk(2)
            v = v_uncond + guidance_scale * (v_cond - v_uncond)
        return v

    return model
