"""A PriorGrad / DiffWave-style vocoder on the raw waveform: FreGrad's speed and size baseline.

FreGrad (Nguyen et al., ICASSP 2024) reports 2.2x faster inference and 0.6x the size of PriorGrad
(Lee et al., ICLR 2022) with 64 residual channels (2,619,923 parameters). This module builds that
comparison model so the claim can be measured side by side (``benchmarks/fregrad_speed.py``):

- DiffWave's gated residual stack on the *raw* waveform ``(B, 1, T)``: 30 layers, 64 residual
  channels, dilation ``2 ** (i % 10)``, plain dilated conv (k = 3) in every block;
- the mel upsampled x256 (the full sample rate) by two transposed convs (16 x 16);
- the same diffusion-step embedding (128 -> 512 -> 512) and the same fast sampling schedules as
  :class:`~accelerando.vocoders.fregrad.FreGrad` (:func:`~.schedule.get_schedule` is reused), with
  PriorGrad's full-band energy prior (one sigma track from the whole mel).

It is meant for speed and size comparisons; it has no training loop of its own here.

Example::

    import torch
    from accelerando.vocoders.fregrad.baseline import PriorGradBaseline

    model = PriorGradBaseline().eval()  # 2,619,971 parameters (PriorGrad-64: 2,619,923), random weights
    mel = torch.randn(1, 80, 40) - 5
    wav = model.synthesize(mel, num_steps=6, generator=torch.Generator().manual_seed(0))  # (1, 40 * 256)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from diffusers.configuration_utils import register_to_config
from torch import Tensor, nn
from torch.nn import functional as F

from accelerando.modeling import AccelerandoModel
from accelerando.vocoders.contract import ConfigRates
from accelerando.vocoders.energy import DEFAULT_ENERGY_MAX, DEFAULT_ENERGY_MIN, frame_energy

from .model import DiffusionEmbedding, MelUpsampler, _conv1d
from .schedule import default_training_betas, fast_betas, get_schedule

__all__ = ["PriorGradBaseline"]


class _ResidualBlock(nn.Module):
    """DiffWave's gated residual block with a plain dilated conv on the waveform-rate features."""

    def __init__(self, n_mels: int, channels: int, dilation: int, hidden: int) -> None:
        super().__init__()
        self.dilated_conv = _conv1d(channels, 2 * channels, 3, padding=dilation, dilation=dilation)
        self.diffusion_projection = nn.Linear(hidden, channels)
        self.conditioner_projection = _conv1d(n_mels, 2 * channels, 1)
        self.output_projection = _conv1d(channels, 2 * channels, 1)

    def forward(self, x: Tensor, cond: Tensor, step_emb: Tensor) -> tuple[Tensor, Tensor]:
        y = x + self.diffusion_projection(step_emb).unsqueeze(-1)  # (B, C, T)
        y = self.dilated_conv(y) + self.conditioner_projection(cond)  # (B, 2C, T)
        gate, filt = y.chunk(2, dim=1)
        y = self.output_projection(torch.sigmoid(gate) * torch.tanh(filt))  # (B, 2C, T)
        residual, skip = y.chunk(2, dim=1)
        return (x + residual) / math.sqrt(2.0), skip


class PriorGradBaseline(ConfigRates, AccelerandoModel):
    """PriorGrad / DiffWave vocoder on the raw waveform (64 channels: about 2.62M parameters).

    Args:
        residual_layers, residual_channels, dilation_cycle_length: the stack; layer i dilates by
            ``2 ** (i % dilation_cycle_length)``.
        n_mels, hop_length, sample_rate: the mel front end.
        upsample_factors: transposed-conv strides, multiplying to ``hop_length``.
        diffusion_embedding_dim, diffusion_hidden_dim: step embedding 128 -> 512 -> 512.
        noise_schedule: training betas; ``None`` is FreGrad's (so both models share one schedule).
        energy_min, energy_max, std_min: PriorGrad's energy prior (full-band frame energy,
            min-max normalised, clamped at ``energy_max``, floored at ``std_min``).
    """

    @register_to_config
    def __init__(
        self,
        residual_layers: int = 30,
        residual_channels: int = 64,
        dilation_cycle_length: int = 10,
        n_mels: int = 80,
        hop_length: int = 256,
        sample_rate: int = 22050,
        upsample_factors: Sequence[int] = (16, 16),
        diffusion_embedding_dim: int = 128,
        diffusion_hidden_dim: int = 512,
        noise_schedule: Sequence[float] | None = None,
        energy_min: float = DEFAULT_ENERGY_MIN,
        energy_max: float = DEFAULT_ENERGY_MAX,
        std_min: float = 0.1,
    ) -> None:
        super().__init__()
        if math.prod(upsample_factors) != hop_length:
            raise ValueError(
                f"upsample_factors {list(upsample_factors)} must multiply to hop_length = {hop_length}"
            )
        betas = list(noise_schedule) if noise_schedule is not None else default_training_betas()
        get_schedule(betas, betas=fast_betas(6, betas))  # validates the list
        self.register_to_config(noise_schedule=betas)

        self.input_projection = _conv1d(1, residual_channels, 1)
        self.diffusion_embedding = DiffusionEmbedding(
            len(betas), diffusion_embedding_dim, diffusion_hidden_dim
        )
        self.mel_upsampler = MelUpsampler(upsample_factors)
        self.blocks = nn.ModuleList(
            _ResidualBlock(n_mels, residual_channels, 2 ** (i % dilation_cycle_length), diffusion_hidden_dim)
            for i in range(residual_layers)
        )
        self.skip_projection = _conv1d(residual_channels, residual_channels, 1)
        self.output_projection = _conv1d(residual_channels, 1, 1)
        nn.init.zeros_(self.output_projection.weight)

    def forward(self, noisy_audio: Tensor, diffusion_step: Tensor, mel: Tensor) -> Tensor:
        """Predict the (prior-scaled) noise: ``(B, 1, frames * hop)``, ``(B,)``, ``(B, n_mels, frames)`` -> ``(B, 1, T)``."""
        if noisy_audio.shape[-1] != mel.shape[-1] * self.config.hop_length:
            raise ValueError(
                f"noisy_audio has {noisy_audio.shape[-1]} samples but the mel's {mel.shape[-1]} frames "
                f"need {mel.shape[-1] * self.config.hop_length} (frames * hop_length)"
            )
        x = F.relu(self.input_projection(noisy_audio))  # (B, C, T)
        step_emb = self.diffusion_embedding(diffusion_step)  # (B, hidden)
        cond = self.mel_upsampler(mel)  # (B, n_mels, T)
        skip = torch.zeros_like(x)
        for block in self.blocks:
            x, skip_connection = block(x, cond, step_emb)
            skip = skip + skip_connection
        x = skip / math.sqrt(len(self.blocks))
        x = F.relu(self.skip_projection(x))
        return self.output_projection(x)  # (B, 1, T)

    def prior_std(self, mel: Tensor) -> Tensor:
        """PriorGrad's full-band prior at the sample rate: ``(B, n_mels, frames) -> (B, 1, frames * hop)``."""
        cfg = self.config
        energy = frame_energy(mel).clamp(max=cfg.energy_max)  # (B, frames)
        std = ((energy - cfg.energy_min) / (cfg.energy_max - cfg.energy_min)).clamp_min(cfg.std_min)
        return std.unsqueeze(1).repeat_interleave(cfg.hop_length, dim=-1)

    @torch.inference_mode()
    def synthesize(
        self,
        mel: Tensor,
        num_steps: int | None = None,
        generator: torch.Generator | None = None,
        *,
        progress: bool = False,
    ) -> Tensor:
        """Mel -> waveform by ancestral (DDPM) sampling with FreGrad's named schedules.

        Args:
            mel: ``(B, n_mels, frames)`` or ``(n_mels, frames)`` natural-log mel.
            num_steps: a named schedule (50, 12, 6, 3, 2; ``None``: 6), the same betas FreGrad samples with.
            generator: makes the output deterministic.

        Returns:
            ``(B, frames * hop_length)`` float waveform in ``[-1, 1]``.
        """
        if not isinstance(mel, Tensor) or mel.dim() not in (2, 3) or not mel.is_floating_point():
            raise ValueError(
                "mel must be a floating-point tensor of shape (n_mels, frames) or (B, n_mels, frames)"
            )
        mel = mel.unsqueeze(0) if mel.dim() == 2 else mel
        if mel.shape[1] != self.config.n_mels or mel.shape[-1] < 1:
            raise ValueError(
                f"mel must have shape (B, {self.config.n_mels}, frames >= 1); got shape {tuple(mel.shape)}"
            )
        param = next(self.parameters())
        mel = mel.to(device=param.device, dtype=param.dtype)
        sched = get_schedule(self.config.noise_schedule, num_steps=6 if num_steps is None else num_steps)
        std = self.prior_std(mel)  # (B, 1, T)
        x = torch.randn(std.shape, device=std.device, dtype=std.dtype, generator=generator) * std
        for n in range(len(sched) - 1, -1, -1):
            alpha, alpha_bar, beta = sched.alphas[n].item(), sched.alpha_bars[n].item(), sched.betas[n].item()
            step = torch.full((x.shape[0],), sched.timesteps[n].item(), device=x.device, dtype=x.dtype)
            eps = self(x, step, mel)  # (B, 1, T)
            x = (x - beta / math.sqrt(1.0 - alpha_bar) * eps) / math.sqrt(alpha)
            if n > 0:
                sigma = math.sqrt((1.0 - sched.alpha_bars[n - 1].item()) / (1.0 - alpha_bar) * beta)
                x = x + sigma * std * torch.randn(
                    x.shape, device=x.device, dtype=x.dtype, generator=generator
                )
            x = x.clamp(-1.0, 1.0)
        return x.squeeze(1)
