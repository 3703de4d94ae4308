"""PeriodWave: multi-period flow matching for waveform generation.

Lee, Choi, Lee, "PeriodWave: Multi-Period Flow Matching for High-Fidelity Waveform Generation"
(arXiv 2408.07547, ICLR 2025); reference code sh-lee-prml/PeriodWave.

- Conditional flow matching (OT-CFM, Lipman et al. 2023) on the waveform, ``t`` from 0 (prior) to 1 (data):
  ``x_t = (1 - (1 - sigma_min) t) x0 + t x1`` with target velocity ``u = x1 - (1 - sigma_min) x0``.
- Energy-based prior (after PriorGrad): ``x0 ~ N(0, (noise_scale * std)^2)`` with a per-frame ``std`` from the
  mel's energy, min-max normalised with corpus statistics and floored at ``std_min``; the same track joins the
  mel as one extra channel, and the loss is the std-scaled MSE on the velocity.
- The period-aware estimator: one 2D U-Net shared by the periods [1, 2, 3, 5, 7] (:mod:`.modules`), a mel
  encoder run once per utterance (``encode_mel``) and reused at every ODE step, period outputs summed and
  divided by ``sqrt(len(periods))``, then a final 1D block.
- Sampling with :mod:`accelerando.samplers` (midpoint, 16 steps, temperature 0.667 by default).

Example::

    import torch
    from accelerando.vocoders import PeriodWave

    model = PeriodWave.from_preset("tiny").eval()
    mel = torch.randn(1, 80, 20) - 5  # (B, n_mels, frames), natural-log mel
    wav = model.synthesize(mel, num_steps=4, generator=torch.Generator().manual_seed(0))  # (1, 20 * 256)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from diffusers.configuration_utils import register_to_config
from torch import Tensor

from accelerando import fasterdit
from accelerando.modeling import AccelerandoModel
from accelerando.vocoders.contract import ConfigRates
from accelerando.vocoders.energy import DEFAULT_ENERGY_MAX, DEFAULT_ENERGY_MIN, frame_energy

from .modules import FinalBlock, MelEncoder, PeriodUNet, TimePeriodEmbedding

__all__ = ["PRESETS", "SAMPLERS", "PeriodWave"]

PRESETS: dict[str, dict[str, Any]] = {
    # The paper's sizes (PeriodWave-S / -B / -L: 7.57M / 29.80M / 70.24M parameters).
    "S": {"hidden_dim": 256},
    "B": {"hidden_dim": 512},
    "L": {"hidden_dim": 768, "mid_dilations": (1, 2, 1, 4), "final_dilations": (1, 2, 1, 4)},
    # A CPU-sized model for tests and quick experiments.
    "tiny": {"hidden_dim": 32, "encoder_blocks": 2, "encoder_up_blocks": 1, "drop_path": 0.0},
}
# method -> network evaluations per step (FireFlow: one per step plus one at the start)
SAMPLERS = {"euler": 1, "heun": 2, "midpoint": 2, "rf_solver": 2, "rf_solver3": 3, "fireflow": 1}
MEL_UPSAMPLING = 4  # the mel encoder's transposed conv


def _sampler(method: str) -> Callable[..., Tensor]:
    from accelerando import samplers

    if method not in SAMPLERS:
        raise ValueError(f"Unknown sampling method {method!r}; choose one of {list(SAMPLERS)}.")
    if method == "rf_solver3":
        return functools.partial(samplers.sample_rf_solver, order=3)
    return getattr(samplers, f"sample_{method}")


class PeriodWave(ConfigRates, AccelerandoModel):
    """The PeriodWave vocoder: ``forward(x_t, t, mel) -> velocity``; ``synthesize(mel) -> waveform``.

    Args:
        n_mels, sample_rate, hop_length: the mel front end (``hop_length`` must be ``4 * stride**3``).
        periods: the periods the shared U-Net sees the waveform at.
        hidden_dim: width of the mel encoder, the time MLP and the U-Net's mid block (U-Net channels are
            ``hidden / 16, / 8, / 4``; the final block has ``hidden / 16``).
        kernel_size, stride: the U-Net's strided convs ``(kernel_size, 1)``.
        mid_dilations, final_dilations: residual blocks of the mid block and of the final 1D block.
        encoder_blocks, encoder_up_blocks, drop_path: ConvNeXt-V2 blocks before / after the x4 upsampling.
        noise_scale, std_min, energy_min, energy_max: the energy prior (see the module docstring).
        sigma_min: OT-CFM's minimum noise.
        upsample_mode: ``"transposed"`` (the paper's layers) or ``"resize"`` (repeat + conv, no checkerboard
            lines at multiples of fs/4; see :mod:`.modules`).
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
    ) -> None:
        super().__init__()
        if hop_length != MEL_UPSAMPLING * stride**3:
            raise ValueError(
                f"hop_length must equal {MEL_UPSAMPLING} * stride**3 = {MEL_UPSAMPLING * stride**3} so the mel "
                f"map meets the U-Net's mid block; got hop_length={hop_length}, stride={stride}."
            )
        if hidden_dim % 16 != 0 or hidden_dim < 32:
            raise ValueError(f"hidden_dim must be a multiple of 16 and at least 32; got {hidden_dim}.")
        if not periods or min(periods) < 1:
            raise ValueError(f"periods must be a non-empty list of positive integers; got {list(periods)}.")
        if not energy_max > energy_min:
            raise ValueError(f"energy_max ({energy_max}) must be larger than energy_min ({energy_min}).")
        self.periods = tuple(int(p) for p in periods)
        self.mel_encoder = MelEncoder(
            n_mels + 1, hidden_dim, self.periods, encoder_blocks, encoder_up_blocks, drop_path, upsample_mode
        )
        self.embedding = TimePeriodEmbedding(hidden_dim, len(self.periods))
        self.unet = PeriodUNet(hidden_dim, kernel_size, stride, mid_dilations, upsample_mode)
        self.final = FinalBlock(hidden_dim // 16, final_dilations)
        self.min_frames = self._min_frames()

    @classmethod
    def from_preset(cls, name: str = "B", **overrides: Any) -> PeriodWave:
        """Build a preset: ``"S"``, ``"B"``, ``"L"`` (the paper's sizes) or ``"tiny"``; ``overrides`` win."""
        if name not in PRESETS:
            raise ValueError(f"Unknown PeriodWave preset {name!r}; available: {sorted(PRESETS)}.")
        return cls(**{**PRESETS[name], **overrides})

    def _min_frames(self) -> int:
        """Fewest mel frames for which every reflect padding (waveform and mel map) is shorter than its input."""
        multiple, hop = self.unet.multiple, self.config.hop_length
        frames = 1
        while any(
            -(hop * frames) % (multiple * p) >= hop * frames
            or p - (MEL_UPSAMPLING * frames) % p >= MEL_UPSAMPLING * frames
            for p in self.periods
        ):
            frames += 1
        return frames

    # ------------------------------------------------------------------------------------------ checks

    def _check_mel(self, mel: Tensor) -> None:
        n_mels = self.config.n_mels
        if not isinstance(mel, Tensor) or mel.dim() != 3:
            shape = tuple(mel.shape) if isinstance(mel, Tensor) else type(mel).__name__
            raise ValueError(f"mel must be a (batch, {n_mels}, frames) tensor; got {shape}.")
        if mel.shape[1] != n_mels:
            raise ValueError(f"mel must have {n_mels} mel bins (dim 1); got shape {tuple(mel.shape)}.")
        if mel.shape[2] < self.min_frames:
            raise ValueError(
                f"mel is too short: {mel.shape[2]} frames; PeriodWave needs at least {self.min_frames}."
            )
        if not mel.is_floating_point():
            raise ValueError(f"mel must be a floating-point natural-log mel; got dtype {mel.dtype}.")
        if not torch.isfinite(mel).all():
            raise ValueError("mel contains NaN or Inf values; PeriodWave needs a finite natural-log mel.")

    def _check_audio(self, audio: Tensor, mel: Tensor) -> Tensor:
        audio = audio.squeeze(1) if audio.dim() == 3 and audio.shape[1] == 1 else audio
        expected = mel.shape[2] * self.config.hop_length
        if audio.dim() != 2 or audio.shape[0] != mel.shape[0] or audio.shape[1] != expected:
            raise ValueError(
                f"audio must be (batch, frames * hop) = ({mel.shape[0]}, {expected}) for this mel; "
                f"got {tuple(audio.shape)}."
            )
        if not torch.isfinite(audio).all():
            raise ValueError("audio contains NaN or Inf values.")
        return audio

    # ------------------------------------------------------------------------------------------ prior

    def prior_std(self, mel: Tensor) -> Tensor:
        """Per-frame prior std ``(B, F)``: ``clamp((sqrt(sum exp(mel)) - e_min) / (e_max - e_min), std_min)``."""
        cfg = self.config
        energy = frame_energy(mel.float())  # (B, F)
        std = (energy - cfg.energy_min) / (cfg.energy_max - cfg.energy_min)
        return std.clamp(min=cfg.std_min).to(mel.dtype)

    def prior_std_samples(self, mel: Tensor) -> Tensor:
        """The prior std repeated to the sample rate: ``(B, 1, F * hop)``."""
        return self.prior_std(mel).repeat_interleave(self.config.hop_length, dim=-1).unsqueeze(1)

    def sample_prior(
        self, mel: Tensor, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> Tensor:
        """``x0 = N(0, 1) * noise_scale * std * temperature``: ``(B, 1, F * hop)``."""
        std = self.prior_std_samples(mel)
        noise = torch.randn(std.shape, generator=generator, device=std.device, dtype=std.dtype)
        return noise * self.config.noise_scale * std * temperature

    # ------------------------------------------------------------------------------------------ network

    def encode_mel(self, mel: Tensor) -> list[Tensor]:
        """The mel encoder, run once per utterance: ``(B, n_mels, F)`` -> one ``(B, hidden, rows_p, 1)`` per period."""
        self._check_mel(mel)
        mel_in = torch.cat([mel, self.prior_std(mel).unsqueeze(1)], dim=1)  # (B, n_mels + 1, F)
        return self.mel_encoder(mel_in.to(self.dtype))

    def forward(
        self, x_t: Tensor, t: Tensor, mel: Tensor | None = None, cond: list[Tensor] | None = None
    ) -> Tensor:
        """The velocity ``(B, 1, T)`` at ``x_t (B, 1, T)`` and ``t (B,)`` (or a scalar) in [0, 1].

        Pass ``mel (B, n_mels, F)`` with ``T = F * hop``, or ``cond = encode_mel(mel)`` to reuse the encoding.
        """
        if cond is None:
            if mel is None:
                raise ValueError("PeriodWave.forward needs mel or cond (from encode_mel).")
            cond = self.encode_mel(mel)
            if x_t.shape[-1] != mel.shape[-1] * self.config.hop_length:
                raise ValueError(
                    f"x_t has {x_t.shape[-1]} samples but the mel has {mel.shape[-1]} frames; "
                    f"expected {mel.shape[-1] * self.config.hop_length}."
                )
        if x_t.dim() != 3 or x_t.shape[1] != 1:
            raise ValueError(f"x_t must be (batch, 1, samples); got {tuple(x_t.shape)}.")
        t = torch.as_tensor(t, device=x_t.device).reshape(-1).expand(x_t.shape[0])
        emb = self.embedding(t)  # (B, P, hidden)
        x = x_t.to(self.dtype)
        out = 0
        for i, p in enumerate(self.periods):
            out = out + self.unet(x, p, emb[:, i], cond[i])  # (B, hidden / 16, T)
        return self.final(out / math.sqrt(len(self.periods))).to(x_t.dtype)  # (B, 1, T)

    # ------------------------------------------------------------------------------------------ training

    def flow_matching_loss(
        self,
        audio: Tensor,
        mel: Tensor,
        generator: torch.Generator | None = None,
        estimator: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None,
        *,
        timestep_sampling: str = "uniform",
        logit_mean: float = 0.0,
        logit_std: float = 1.0,
        direction_weight: float = 0.0,
    ) -> Tensor:
        """OT-CFM loss with the energy prior: ``mean(((v(x_t, t) - u) / std)^2)``, optionally FasterDiT's recipe.

        Args:
            audio: ``(B, T)`` or ``(B, 1, T)`` waveform crops with ``T = F * hop``.
            mel: ``(B, n_mels, F)`` their natural-log mels.
            generator: draws ``t`` and the prior noise.
            estimator: ``estimator(x_t, t, mel) -> velocity``; defaults to ``self`` (pass the
                accelerate-wrapped model for distributed training).
            timestep_sampling: ``"uniform"`` (``t ~ U(0, 1)``, the paper's) or ``"logit_normal"`` (FasterDiT /
                SD3, :mod:`accelerando.fasterdit`); ``logit_mean`` / ``logit_std`` are in FasterDiT's convention
                (its ``t`` is the noise level, PeriodWave's is ``1 - t``; a positive mean favours noisy times).
            direction_weight: weight of FasterDiT's direction loss ``1 - cos`` between the std-scaled predicted and
                target velocities, each item's whole waveform one vector (0: off, exactly the plain loss).
        """
        self._check_mel(mel)
        x1 = self._check_audio(audio, mel).unsqueeze(1)  # (B, 1, T)
        sigma_min = self.config.sigma_min
        if timestep_sampling == "uniform":  # the plain draw, so default runs reproduce bit for bit
            t = torch.rand(x1.shape[0], generator=generator, device=x1.device, dtype=x1.dtype)  # (B,)
        elif timestep_sampling == "logit_normal":
            noise_level = fasterdit.logit_normal_timesteps(
                x1.shape[0], logit_mean, logit_std, generator=generator, device=x1.device
            )
            t = (1 - noise_level).to(x1.dtype)  # (B,)
        else:
            raise ValueError(
                f"timestep_sampling must be 'uniform' or 'logit_normal'; got {timestep_sampling!r}."
            )
        if direction_weight < 0:
            raise ValueError(f"direction_weight must be >= 0; got {direction_weight}.")
        std = self.prior_std_samples(mel)  # (B, 1, T)
        x0 = self.sample_prior(mel, generator)
        tt = t[:, None, None]
        x_t = (1 - (1 - sigma_min) * tt) * x0 + tt * x1
        target = x1 - (1 - sigma_min) * x0
        pred = (estimator or self)(x_t, t, mel)
        loss = (((pred - target) / std) ** 2).mean()
        if direction_weight == 0:
            return loss
        direction = fasterdit.velocity_direction_loss((pred / std).flatten(1), (target / std).flatten(1))
        return loss + direction_weight * direction

    # ------------------------------------------------------------------------------------------ sampling

    def velocity_fn(self, mel: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
        """``fn(x, sigma) -> dx/dsigma`` in the toolkit samplers' convention (``sigma = 1 - t``), mel encoded once."""
        cond = self.encode_mel(mel)

        def fn(x: Tensor, sigma: Tensor) -> Tensor:
            return -self(x, 1.0 - sigma, cond=cond)

        return fn

    @torch.no_grad()
    def synthesize(
        self,
        mel: Tensor,
        num_steps: int | None = None,
        generator: torch.Generator | None = None,
        *,
        progress: bool = False,
        method: str = "midpoint",
        temperature: float = 0.667,
    ) -> Tensor:
        """Mel ``(B, n_mels, F)`` -> waveform ``(B, F * hop)`` by solving the flow ODE from ``t = 0`` to 1.

        ``method`` is one of ``"euler"``, ``"heun"``, ``"midpoint"`` (default, as in the paper),
        ``"rf_solver"`` (RF-Solver, 2nd order), ``"rf_solver3"`` (3rd order) or ``"fireflow"`` (midpoint with
        velocity reuse: one evaluation per step); :data:`SAMPLERS` gives each one's evaluations per step.
        ``num_steps=None`` means 16. ``temperature`` scales the prior noise.
        """
        from accelerando.samplers import get_sigmas_uniform

        num_steps = 16 if num_steps is None else num_steps
        sampler = _sampler(method)
        mel = mel.to(self.device)
        x = self.sample_prior(mel, generator, temperature)  # (B, 1, T)
        sigmas = get_sigmas_uniform(num_steps, device=mel.device)  # 1 -> 0, i.e. t = 0 -> 1
        x = sampler(self.velocity_fn(mel), x, sigmas, disable=not progress)
        return x.squeeze(1)
