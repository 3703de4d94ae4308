"""PeriodWave-Turbo: a PeriodWave fine-tuned into a fixed-step (2 or 4 Euler steps) adversarial generator.

Lee, Choi, Lee, "Accelerating High-Fidelity Waveform Generation via Adversarial Flow Matching Optimization"
(arXiv 2408.08019). The generator is a trained :class:`PeriodWave` whose Euler solve at ``t = 0, 1/n, ...``
is unrolled (``generate_train``, differentiable) and trained end to end with 45 x multi-scale mel loss
(DAC-style) + 2 x feature matching + LSGAN against MPD and MS-SB-CQTD (:mod:`accelerando.vocoders.discriminators`).

Example::

    from accelerando.vocoders import PeriodWave, PeriodWaveTurbo

    teacher = PeriodWave.from_preset("tiny")
    turbo = PeriodWaveTurbo.from_periodwave(teacher, num_steps=4).eval()
    wav = turbo.synthesize(torch.randn(1, 80, 20) - 5)  # (1, 20 * 256), 4 Euler steps
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from diffusers.configuration_utils import register_to_config
from torch import Tensor

from accelerando.vocoders.energy import DEFAULT_ENERGY_MAX, DEFAULT_ENERGY_MIN

from .model import PRESETS, PeriodWave

__all__ = ["TURBO_STEPS", "PeriodWaveTurbo"]

TURBO_STEPS = (2, 4)


class PeriodWaveTurbo(PeriodWave):
    """A :class:`PeriodWave` sampled with ``num_steps`` fixed Euler steps (2 or 4) at ``temperature``.

    The architecture arguments are :class:`PeriodWave`'s; ``num_steps`` and ``temperature`` (1.0 in the
    Turbo recipe) are the generator's fixed sampling settings, stored in its config.
    """

    @register_to_config
    def __init__(
        self,
        n_mels: int = 80,
        sample_rate: int = 22050,
        hop_length: int = 256,
        periods: Sequence[int] = (1, 2, 3, 5, 7),
        hidden_dim: int = 512,
        kernel_size: int = 9,
        stride: int = 4,
        mid_dilations: Sequence[int] = (1, 2, 4),
        final_dilations: Sequence[int] = (1, 2, 4),
        encoder_blocks: int = 8,
        encoder_up_blocks: int = 4,
        drop_path: float = 0.1,
        noise_scale: float = 0.25,
        sigma_min: float = 1e-4,
        std_min: float = 0.1,
        energy_min: float = DEFAULT_ENERGY_MIN,
        energy_max: float = DEFAULT_ENERGY_MAX,
        upsample_mode: str = "transposed",
        num_steps: int = 4,
        temperature: float = 1.0,
    ) -> None:
        _check_steps(num_steps)
        super().__init__(
            n_mels, sample_rate, hop_length, periods, hidden_dim, kernel_size, stride, mid_dilations,
            final_dilations, encoder_blocks, encoder_up_blocks, drop_path, noise_scale, sigma_min, std_min,
            energy_min, energy_max, upsample_mode,
        )  # fmt: skip

    @classmethod
    def from_preset(cls, name: str = "B", **overrides: Any) -> PeriodWaveTurbo:
        """An untrained Turbo of a :class:`PeriodWave` preset (normally use :meth:`from_periodwave`)."""
        if name not in PRESETS:
            raise ValueError(f"Unknown PeriodWave preset {name!r}; available: {sorted(PRESETS)}.")
        return cls(**{**PRESETS[name], **overrides})

    @classmethod
    def from_periodwave(
        cls, model: PeriodWave, num_steps: int = 4, temperature: float = 1.0
    ) -> PeriodWaveTurbo:
        """A Turbo generator initialised with a (trained) PeriodWave's weights and config."""
        if not isinstance(model, PeriodWave):
            raise TypeError(f"from_periodwave needs a PeriodWave; got {type(model).__name__}.")
        config = {k: v for k, v in model.config.items() if not k.startswith("_")}
        config.update(num_steps=num_steps, temperature=temperature)
        turbo = cls(**config)
        turbo.load_state_dict(model.state_dict())
        turbo.to(model.device)
        if model.dtype != turbo.dtype:
            turbo.to(model.dtype)
        return turbo.train(model.training)

    def euler_times(self, num_steps: int | None = None) -> Tensor:
        """The fixed Euler times ``0, 1/n, ..., (n-1)/n`` (``n + 1`` values with the end point 1)."""
        num_steps = self.config.num_steps if num_steps is None else num_steps
        _check_steps(num_steps)
        return torch.linspace(0.0, 1.0, num_steps + 1, device=self.device)

    def generate_train(
        self,
        mel: Tensor,
        generator: torch.Generator | None = None,
        num_steps: int | None = None,
        temperature: float | None = None,
        estimator: torch.nn.Module | None = None,
    ) -> Tensor:
        """Differentiable unrolled Euler solve: mel ``(B, n_mels, F)`` -> waveform ``(B, 1, F * hop)``.

        ``estimator`` is the module whose ``forward(x, t, cond=...)`` gives the velocity (the
        accelerate-wrapped model in distributed training; ``self`` by default).
        """
        temperature = self.config.temperature if temperature is None else temperature
        estimator = self if estimator is None else estimator
        times = self.euler_times(num_steps)
        cond = self.encode_mel(mel)  # once, reused at every step
        x = self.sample_prior(mel, generator, temperature)  # (B, 1, T)
        ones = x.new_ones(x.shape[0])
        for t, t_next in zip(times[:-1], times[1:]):
            x = x + (t_next - t) * estimator(x, t * ones, cond=cond)
        return x

    @torch.no_grad()
    def synthesize(
        self,
        mel: Tensor,
        num_steps: int | None = None,
        generator: torch.Generator | None = None,
        *,
        progress: bool = False,
        method: str = "euler",
        temperature: float | None = None,
    ) -> Tensor:
        """Mel ``(B, n_mels, F)`` -> waveform ``(B, F * hop)`` with the fixed Euler steps (config's by default).

        ``progress`` is part of the mel-vocoder contract and ignored (2 or 4 steps); ``method`` can only be
        ``"euler"`` (the steps were trained for it).
        """
        if method != "euler":
            raise ValueError(f"PeriodWaveTurbo samples with its fixed Euler steps; got method={method!r}.")
        return self.generate_train(mel.to(self.device), generator, num_steps, temperature).squeeze(1)


def _check_steps(num_steps: int) -> None:
    if num_steps not in TURBO_STEPS:
        raise ValueError(
            f"PeriodWaveTurbo runs {' or '.join(map(str, TURBO_STEPS))} Euler steps; got {num_steps}."
        )
