"""FreGrad: a lightweight, fast wavelet-domain diffusion vocoder.

Nguyen, Kang, Lee, Choi, Kim, Chung, "FreGrad: Lightweight and Fast Frequency-aware Diffusion
Vocoder", ICASSP 2024 (arXiv 2401.10032); reference code kaistmm/fregrad. Built on PriorGrad
(Lee et al., ICLR 2022) and DiffWave (Kong et al., ICLR 2021).

- The diffusion runs on a one-level Haar DWT of the waveform: ``x (B, T) -> (B, 2, T/2)`` with
  channels ``[low, high]``.
- DiffWave's residual stack, with the *frequency-aware dilated convolution* in each block:
  DWT of the features, a dilated conv over ``[L, H]``, inverse DWT.
- The mel is upsampled x128 (the sub-band rate: hop / 2) by two transposed convs (16 x 8).
- Zero-terminal-SNR training schedule (T = 50); fast 12/6/3/2-step sampling schedules.
- Frequency-wise prior: noise ``N(0, sigma_band^2)`` per sub-band from the mel's low / high
  energies (:mod:`.prior`), PriorGrad's prior-scaled loss per band + 0.1 x MR-STFT on the noise.

Example::

    import torch
    from accelerando.vocoders import FreGrad

    model = FreGrad.from_preset("small").eval()
    mel = torch.randn(1, 80, 40) - 5  # (B, n_mels, frames), natural-log mel
    wav = model.synthesize(mel, num_steps=6, generator=torch.Generator().manual_seed(0))  # (1, 40 * 256)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import torch
from diffusers.configuration_utils import register_to_config
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from accelerando.audio import MultiResolutionSTFTLoss, dwt_haar, idwt_haar
from accelerando.audio.filters import biquad
from accelerando.modeling import AccelerandoModel
from accelerando.vocoders.contract import ConfigRates

from .prior import (
    DEFAULT_ENERGY_MAX,
    DEFAULT_ENERGY_MIN,
    PRIORS,
    compute_band_std,
    compute_calibrated_band_std,
)
from .schedule import FAST_SCHEDULE_STEPS, default_training_betas, fast_betas, get_schedule

__all__ = ["PRESETS", "FreGrad", "remove_cutoff_alias"]

PRESETS: dict[str, dict[str, Any]] = {
    # The paper's model (Sec. 4.1): 1,782,548 parameters.
    "paper": {},
    # A CPU-sized model for tests and the default checkpoint trained on the small speech corpus.
    "small": {
        "residual_layers": 12,
        "residual_channels": 16,
        "dilation_cycle_length": 6,
        "diffusion_hidden_dim": 256,
    },
}
# The MR-STFT resolutions of the FreGrad loss, applied to each sub-band's noise.
STFT_LOSS_RESOLUTIONS = {
    "fft_sizes": (512, 1024, 256),
    "hop_sizes": (50, 120, 30),
    "win_lengths": (300, 600, 128),
}
# Bound of an orthonormal Haar sub-band of a waveform in [-1, 1]: |x0 +- x1| / sqrt(2) <= sqrt(2).
SUBBAND_LIMIT = math.sqrt(2.0)
# A sampling step whose alpha_bar is below this starts from pure noise (the zero-terminal-SNR schedule's last
# training step has alpha_bar ~ 4.5e-8): its noise is the sample itself, so the network is not asked.
PURE_NOISE_ALPHA_BAR = 1e-6


def _conv1d(*args: Any, **kwargs: Any) -> nn.Conv1d:
    layer = nn.Conv1d(*args, **kwargs)
    nn.init.kaiming_normal_(layer.weight)
    return layer


class DiffusionEmbedding(nn.Module):
    """Sinusoidal step embedding (``dim``) -> Linear -> SiLU -> Linear -> SiLU (``hidden``).

    Fractional steps (fast schedules) interpolate linearly between the table's rows.
    """

    def __init__(self, num_steps: int, dim: int = 128, hidden: int = 512) -> None:
        super().__init__()
        steps = torch.arange(num_steps, dtype=torch.float32).unsqueeze(1)  # (T, 1)
        freqs = 10.0 ** (torch.arange(dim // 2, dtype=torch.float32) * 4.0 / (dim // 2 - 1))  # (dim/2,)
        table = torch.cat([torch.sin(steps * freqs), torch.cos(steps * freqs)], dim=1)  # (T, dim)
        self.register_buffer("table", table, persistent=False)
        self.projection1 = nn.Linear(dim, hidden)
        self.projection2 = nn.Linear(hidden, hidden)

    def forward(self, step: Tensor) -> Tensor:  # (B,) -> (B, hidden)
        step = step.to(self.table.dtype).clamp(0, self.table.shape[0] - 1)
        low = step.floor().long()
        high = step.ceil().long()
        frac = (step - low.to(step.dtype)).unsqueeze(-1)  # (B, 1)
        x = self.table[low] + (self.table[high] - self.table[low]) * frac  # (B, dim)
        x = F.silu(self.projection1(x))
        return F.silu(self.projection2(x))


class MelUpsampler(nn.Module):
    """Transposed 2D convs over (mel bin, time): ``(B, n_mels, frames) -> (B, n_mels, frames * prod(factors))``."""

    def __init__(self, factors: Sequence[int]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.ConvTranspose2d(1, 1, (3, 2 * f), stride=(1, f), padding=(1, f // 2)) for f in factors
        )

    def forward(self, mel: Tensor) -> Tensor:
        x = mel.unsqueeze(1)  # (B, 1, n_mels, frames)
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.4)  # (B, 1, n_mels, frames * f...)
        return x.squeeze(1)


class FrequencyAwareDilatedConv(nn.Conv1d):
    """FreGrad's freq-aware dilated conv: DWT -> dilated conv over ``[L, H]`` -> inverse DWT.

    ``(B, C_in, L) -> (B, C_out, L)`` for even ``L``; the conv runs at half rate on ``2 C_in`` channels.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int) -> None:
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(2 * in_channels, 2 * out_channels, kernel_size, padding=padding, dilation=dilation)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] % 2:
            return self.forward_dwt(x)
        # The Haar analysis and synthesis are per-position 2x2 mixes of the even and odd samples, so
        # DWT -> conv -> IDWT equals one conv on the polyphase components [even; odd] with the weights mixed
        # by the Haar matrix on both sides: the same result (1e-6) without the DWT's and IDWT's passes.
        b, c, length = x.shape
        weight, bias = _haar_mixed(self.weight, self.bias)
        polyphase = x.view(b, c, length // 2, 2).permute(0, 3, 1, 2).reshape(b, 2 * c, length // 2)
        y = F.conv1d(polyphase, weight, bias, self.stride, self.padding, self.dilation)  # (B, 2 C_out, L/2)
        c_out = y.shape[1] // 2
        return y.view(b, 2, c_out, length // 2).permute(0, 2, 3, 1).reshape(b, c_out, length)

    def forward_dwt(self, x: Tensor) -> Tensor:
        """The paper's formulation, step by step (reference for the polyphase path; odd lengths)."""
        y = dwt_haar(x)  # (B, 2 C_in, L/2)
        y = super().forward(y)  # (B, 2 C_out, L/2)
        return idwt_haar(y, length=x.shape[-1])  # (B, C_out, L)


def _haar_mixed(weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """``M_out W M_in`` for the orthonormal Haar mix ``M = [[I, I], [I, -I]] / sqrt(2)`` on both channel halves."""
    s = 1.0 / math.sqrt(2.0)
    low, high = weight.chunk(2, dim=0)  # output halves: (C_out, 2 C_in, k) each
    rows = torch.cat([low + high, low - high], dim=0) * s
    left, right = rows.chunk(2, dim=1)  # input halves
    mixed = torch.cat([left + right, left - right], dim=1) * s
    if bias is None:
        return mixed, None
    b_low, b_high = bias.chunk(2)
    return mixed, torch.cat([b_low + b_high, b_low - b_high]) * s


class ResidualBlock(nn.Module):
    """DiffWave's gated residual block with the frequency-aware dilated conv."""

    def __init__(self, n_mels: int, channels: int, dilation: int, hidden: int) -> None:
        super().__init__()
        self.dilated_conv = FrequencyAwareDilatedConv(channels, 2 * channels, 3, dilation)
        self.diffusion_projection = nn.Linear(hidden, channels)
        self.conditioner_projection = _conv1d(n_mels, 2 * channels, 1)
        self.output_projection = _conv1d(channels, 2 * channels, 1)

    def forward(
        self, x: Tensor, cond: Tensor, step_emb: Tensor, cond_projected: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``cond_projected`` is ``conditioner_projection(cond)`` when the caller computed it already."""
        y = x + self.diffusion_projection(step_emb).unsqueeze(-1)  # (B, C, L)
        if cond_projected is None:
            cond_projected = self.conditioner_projection(cond)
        y = self.dilated_conv(y) + cond_projected  # (B, 2C, L)
        gate, filt = y.chunk(2, dim=1)
        y = self.output_projection(torch.sigmoid(gate) * torch.tanh(filt))  # (B, 2C, L)
        residual, skip = y.chunk(2, dim=1)
        return (x + residual) / math.sqrt(2.0), skip


def remove_cutoff_alias(subbands: Tensor, sample_rate: int) -> Tensor:
    """High-pass 5 Hz then low-pass 5.5 kHz each Haar sub-band ``(B, 2, L)`` at the sub-band rate ``sample_rate / 2``.

    The reference code's post-filter (kaistmm/fregrad ``inference.py``): the biquads' double zeros at DC
    and at the sub-band Nyquist remove the lines that land at fs/2 and fs/4 after the inverse DWT.
    The low-pass's poles sit near the Nyquist (radius 0.995), so a line present from the first sample would
    ring for ~1000 samples: the filters run over a reflected lead-in of up to 2048 samples that is dropped.
    """
    rate = sample_rate / 2
    lead = min(2048, subbands.shape[-1] - 1)
    x = F.pad(subbands, (lead, 0), mode="reflect") if lead > 0 else subbands  # (B, 2, lead + L)
    x = biquad(biquad(x, "highpass", 5.0, rate), "lowpass", 5500.0 * rate / 11025.0, rate)
    return x[..., lead:]


@functools.lru_cache(maxsize=8)
def _stft_loss(device: torch.device) -> MultiResolutionSTFTLoss:
    return MultiResolutionSTFTLoss(**STFT_LOSS_RESOLUTIONS).to(device)


class FreGrad(ConfigRates, AccelerandoModel):
    """FreGrad vocoder (ICASSP 2024). ``FreGrad()`` is the paper's model (1,782,548 parameters).

    Args:
        residual_layers, residual_channels, dilation_cycle_length: the stack; layer i dilates by
            ``2 ** (i % dilation_cycle_length)``.
        n_mels, hop_length, sample_rate: the mel front end the model is conditioned on.
        upsample_factors: transposed-conv strides; their product is ``hop_length / 2``.
        diffusion_embedding_dim, diffusion_hidden_dim: step embedding 128 -> 512 -> 512.
        noise_schedule: training betas; ``None`` is FreGrad's zero-SNR rescaled linspace(1e-4, 0.05, 50).
        inference_noise_schedule: default sampling betas; ``None`` is the 6-step schedule.
        energy_min, energy_max: training-set frame-energy statistics of the prior (the train script
            overwrites ``energy_min`` with the corpus's value; ``energy_max`` is PriorGrad's 4.0 override).
        std_min: floor of the prior's standard deviation.
        filter_prior: filter the sigma tracks as the reference code does (off: it makes the prior
            depend on the position in the utterance; see :mod:`.prior`).
        remove_cutoff_alias: after sampling, high-pass (5 Hz) and low-pass (5.5 kHz) each sub-band at the
            sub-band rate, as the reference's ``remove_cutoff_alias``: the band-split convolutions put
            lines at each sub-band's DC and Nyquist, which the inverse DWT maps to fs/2 and fs/4.
        prior: ``"energy"`` (the paper's tracks from mel halves) or ``"calibrated"`` (each band's level from
            the mel bins inside it, scaled by ``prior_scales`` fitted on the training set; see :mod:`.prior`).
        prior_scales, prior_split_bin: the calibrated prior's factors ``[low, high]`` and first high-band bin.
        precondition: the network sees ``x_t / sigma`` and its output is multiplied by ``sigma``, so it works on
            unit-scale signals whatever the frame's level (the paper feeds ``x_t`` as it is).
    """

    @register_to_config
    def __init__(
        self,
        residual_layers: int = 30,
        residual_channels: int = 32,
        dilation_cycle_length: int = 7,
        n_mels: int = 80,
        hop_length: int = 256,
        sample_rate: int = 22050,
        upsample_factors: Sequence[int] = (16, 8),
        diffusion_embedding_dim: int = 128,
        diffusion_hidden_dim: int = 512,
        noise_schedule: Sequence[float] | None = None,
        inference_noise_schedule: Sequence[float] | None = None,
        energy_min: float = DEFAULT_ENERGY_MIN,
        energy_max: float = DEFAULT_ENERGY_MAX,
        std_min: float = 0.1,
        filter_prior: bool = False,
        remove_cutoff_alias: bool = True,
        prior: str = "energy",
        prior_scales: Sequence[float] | None = None,
        prior_split_bin: int | None = None,
        precondition: bool = False,
    ) -> None:
        super().__init__()
        if math.prod(upsample_factors) * 2 != hop_length:
            raise ValueError(
                f"upsample_factors {list(upsample_factors)} must multiply to hop_length / 2 = {hop_length / 2}"
            )
        if n_mels % 2:
            raise ValueError(f"n_mels must be even (low and high halves for the prior); got {n_mels}")
        if prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}; got {prior!r}")
        if prior == "calibrated" and (
            prior_scales is None or len(prior_scales) != 2 or prior_split_bin is None
            or not 0 < prior_split_bin < n_mels
        ):  # fmt: skip
            raise ValueError(
                "prior='calibrated' needs prior_scales=[low, high] (fregrad.prior.fit_band_scales) and "
                f"prior_split_bin in (0, n_mels); got {prior_scales!r}, {prior_split_bin!r}"
            )
        betas = list(noise_schedule) if noise_schedule is not None else default_training_betas()
        infer = (
            list(inference_noise_schedule) if inference_noise_schedule is not None else fast_betas(6, betas)
        )
        get_schedule(betas, betas=infer)  # validates both lists
        self.register_to_config(noise_schedule=betas, inference_noise_schedule=infer)
        alpha_bars = torch.cumprod(1.0 - torch.tensor(betas, dtype=torch.float64), 0)
        self.register_buffer("alpha_bars", alpha_bars.float(), persistent=False)  # (T,)

        self.input_projection = _conv1d(2, residual_channels, 1)
        self.diffusion_embedding = DiffusionEmbedding(
            len(betas), diffusion_embedding_dim, diffusion_hidden_dim
        )
        self.mel_upsampler = MelUpsampler(upsample_factors)
        self.blocks = nn.ModuleList(
            ResidualBlock(n_mels, residual_channels, 2 ** (i % dilation_cycle_length), diffusion_hidden_dim)
            for i in range(residual_layers)
        )
        self.skip_projection = _conv1d(residual_channels, residual_channels, 1)
        self.output_projection = _conv1d(residual_channels, 2, 1)
        nn.init.zeros_(self.output_projection.weight)

    @classmethod
    def from_preset(cls, name: str = "paper", **overrides: Any) -> FreGrad:
        """Build a named configuration: ``"paper"`` (1.78M) or ``"small"`` (12 x 16, 0.26M, for CPUs)."""
        if name not in PRESETS:
            raise ValueError(f"Unknown FreGrad preset {name!r}; available: {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def forward(self, noisy_subbands: Tensor, diffusion_step: Tensor, mel: Tensor) -> Tensor:
        """Predict the (prior-scaled) noise.

        Args:
            noisy_subbands: ``(B, 2, frames * hop / 2)`` noisy ``[low, high]`` sub-bands.
            diffusion_step: ``(B,)`` training-step indices in ``[0, T - 1]``, integer or fractional.
            mel: ``(B, n_mels, frames)`` natural-log mel.

        Returns:
            ``(B, 2, frames * hop / 2)`` predicted noise.
        """
        half_hop = self.config.hop_length // 2
        if noisy_subbands.shape[-1] != mel.shape[-1] * half_hop:
            raise ValueError(
                f"noisy_subbands has {noisy_subbands.shape[-1]} samples but the mel's {mel.shape[-1]} frames "
                f"need {mel.shape[-1] * half_hop} (frames * hop_length / 2)"
            )
        x = F.relu(self.input_projection(noisy_subbands))  # (B, C, L)
        step_emb = self.diffusion_embedding(diffusion_step)  # (B, hidden)
        cond = self.mel_upsampler(mel)  # (B, n_mels, L)
        # Every block's 1x1 conditioner projection in one conv (the same weights, concatenated): one large
        # matmul over the upsampled mel instead of one small one per block.
        projections = [block.conditioner_projection for block in self.blocks]
        weight = torch.cat([p.weight for p in projections])  # (layers * 2C, n_mels, 1)
        bias = torch.cat([p.bias for p in projections])
        conds = F.conv1d(cond, weight, bias).chunk(len(self.blocks), dim=1)  # layers x (B, 2C, L)
        skip = torch.zeros_like(x)
        for block, cond_projected in zip(self.blocks, conds):
            x, skip_connection = block(x, cond, step_emb, cond_projected)
            skip = skip + skip_connection
        x = skip / math.sqrt(len(self.blocks))  # (B, C, L)
        x = F.relu(self.skip_projection(x))
        return self.output_projection(x)  # (B, 2, L)

    # ----------------------------------------------------------------- prior, checks, loss, sampling

    def band_std(self, mel: Tensor) -> Tensor:
        """Frequency-wise prior at the sub-band rate: ``(B, n_mels, frames) -> (B, 2, frames * hop / 2)``."""
        cfg = self.config
        if cfg.prior == "calibrated":
            std = compute_calibrated_band_std(mel, cfg.prior_scales, cfg.prior_split_bin, cfg.std_min)
        else:
            std = compute_band_std(
                mel, cfg.energy_min, cfg.energy_max, cfg.std_min, cfg.filter_prior
            )  # (B, 2, frames)
        return std.repeat_interleave(cfg.hop_length // 2, dim=-1)

    def _check_mel(self, mel: Tensor, what: str = "mel") -> Tensor:
        if not isinstance(mel, Tensor):
            raise TypeError(f"{what} must be a torch.Tensor; got {type(mel).__name__}")
        if mel.dim() not in (2, 3):
            raise ValueError(
                f"{what} must have shape (n_mels, frames) or (B, n_mels, frames); got shape {tuple(mel.shape)}"
            )
        mel = mel.unsqueeze(0) if mel.dim() == 2 else mel
        if mel.shape[1] != self.config.n_mels:
            raise ValueError(
                f"{what} has {mel.shape[1]} mel bins but this FreGrad expects n_mels={self.config.n_mels} "
                f"(shape (B, n_mels, frames)); got shape {tuple(mel.shape)}"
            )
        if mel.shape[-1] < 1:
            raise ValueError(f"{what} has no frames; got shape {tuple(mel.shape)}")
        if not mel.is_floating_point():
            raise ValueError(f"{what} must be a floating-point natural-log mel; got dtype {mel.dtype}")
        if not bool(torch.isfinite(mel).all()):
            raise ValueError(f"{what} contains NaN or Inf values; FreGrad needs a finite natural-log mel")
        return mel

    def training_loss(
        self,
        audio: Tensor,
        mel: Tensor,
        generator: torch.Generator | None = None,
        stft_weight: float = 0.1,
        denoiser: nn.Module | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """FreGrad's loss on a batch: prior-scaled MSE on the noise per band + ``stft_weight`` x MR-STFT.

        Args:
            audio: ``(B, T)`` waveforms with ``T == frames * hop_length``.
            mel: ``(B, n_mels, frames)`` their natural-log mels.
            generator: optional generator for the diffusion steps and noise.
            stft_weight: weight of the MR-STFT term (spectral convergence + log-magnitude L1 of
                ``accelerando.audio.MultiResolutionSTFTLoss``, on each band's predicted noise; the
                reference code keeps only the log-magnitude part).
            denoiser: the module called for the prediction, ``self`` by default; a training script
                passes its accelerate-prepared (DDP-wrapped) model so gradients are synchronised.

        Returns:
            ``(loss, parts)`` with parts ``mse_low``, ``mse_high``, ``stft_low``, ``stft_high`` (detached).
        """
        mel = self._check_mel(mel)
        if audio.dim() != 2 or audio.shape[0] != mel.shape[0]:
            raise ValueError(
                f"audio must have shape (B, T) with B = {mel.shape[0]}; got {tuple(audio.shape)}"
            )
        hop = self.config.hop_length
        if audio.shape[-1] != mel.shape[-1] * hop:
            raise ValueError(
                f"audio has {audio.shape[-1]} samples; {mel.shape[-1]} mel frames need {mel.shape[-1] * hop}"
            )
        min_frames = math.ceil((max(STFT_LOSS_RESOLUTIONS["fft_sizes"]) // 2 + 1) / (hop // 2))
        if stft_weight and mel.shape[-1] < min_frames:
            raise ValueError(
                f"training_loss needs segments of at least {min_frames} frames for the MR-STFT term"
            )
        if not bool(torch.isfinite(audio).all()):
            raise ValueError("audio contains NaN or Inf values")
        device = audio.device
        x0 = dwt_haar(audio.unsqueeze(1))  # (B, 2, T/2)
        std = self.band_std(mel)  # (B, 2, T/2)
        t = torch.randint(
            0, len(self.config.noise_schedule), (audio.shape[0],), device=device, generator=generator
        )
        alpha_bar = self.alpha_bars[t].view(-1, 1, 1)  # (B, 1, 1)
        noise = torch.randn(x0.shape, device=device, dtype=x0.dtype, generator=generator) * std  # (B, 2, T/2)
        noisy = alpha_bar.sqrt() * x0 + (1.0 - alpha_bar).sqrt() * noise
        pred = self._predict_noise(self if denoiser is None else denoiser, noisy, t, mel, std)  # (B, 2, T/2)
        mse = (((pred - noise) / std) ** 2).mean(dim=(0, 2))  # (2,): PriorGrad's scaled MSE per band
        parts = {"mse_low": mse[0], "mse_high": mse[1]}
        loss = mse.sum()
        if stft_weight:
            stft = _stft_loss(device)
            parts["stft_low"] = stft(pred[:, 0], noise[:, 0])
            parts["stft_high"] = stft(pred[:, 1], noise[:, 1])
            loss = loss + stft_weight * (parts["stft_low"] + parts["stft_high"])
        return loss, {k: v.detach() for k, v in parts.items()}

    def _predict_noise(self, net: nn.Module, noisy: Tensor, step: Tensor, mel: Tensor, std: Tensor) -> Tensor:
        """The network's noise prediction; with ``precondition`` it works in units of the prior's sigma."""
        if not self.config.precondition:
            return net(noisy, step, mel)
        return std * net(noisy / std, step, mel)

    def available_num_steps(self) -> list[int]:
        """Step counts with a named schedule (the training schedule's length among them)."""
        return sorted({*FAST_SCHEDULE_STEPS[1:], len(self.config.noise_schedule)}, reverse=True)

    @torch.inference_mode()
    def synthesize(
        self,
        mel: Tensor,
        num_steps: int | None = None,
        generator: torch.Generator | None = None,
        *,
        betas: Sequence[float] | None = None,
        progress: bool = False,
    ) -> Tensor:
        """Mel -> waveform by ancestral (DDPM) sampling from FreGrad's frequency-wise prior.

        Args:
            mel: ``(B, n_mels, frames)`` or ``(n_mels, frames)`` natural-log mel.
            num_steps: a named schedule (:meth:`available_num_steps`: 50, 12, 6, 3, 2);
                ``None`` uses ``config.inference_noise_schedule`` (6 steps by default).
            generator: makes the output deterministic (on the model's device).
            betas: a sampling schedule of your own (each beta in (0, 1)); overrides ``num_steps``.
            progress: show a progress bar over the steps.

        Returns:
            ``(B, frames * hop_length)`` float waveform in ``[-1, 1]``.
        """
        mel = self._check_mel(mel)
        param = next(self.parameters())
        mel = mel.to(device=param.device, dtype=param.dtype)
        if betas is None and num_steps is None:
            betas = self.config.inference_noise_schedule
        if betas is None and num_steps not in self.available_num_steps():
            raise ValueError(
                f"There is no named FreGrad schedule with num_steps={num_steps!r}; available: "
                f"{self.available_num_steps()}. Pass betas=[...] to sample with a schedule of your own."
            )
        sched = get_schedule(self.config.noise_schedule, num_steps=num_steps, betas=betas)
        std = self.band_std(mel)  # (B, 2, L)
        x = torch.randn(std.shape, device=std.device, dtype=std.dtype, generator=generator) * std  # (B, 2, L)
        for n in tqdm(range(len(sched) - 1, -1, -1), disable=not progress, desc="FreGrad"):
            alpha, alpha_bar, beta = sched.alphas[n].item(), sched.alpha_bars[n].item(), sched.betas[n].item()
            step = torch.full((x.shape[0],), sched.timesteps[n].item(), device=x.device, dtype=x.dtype)
            if alpha_bar < PURE_NOISE_ALPHA_BAR:
                # The terminal step of the zero-terminal-SNR training schedule: x is pure noise, so its noise
                # is x itself (up to sqrt(alpha_bar) ~ 2e-4), while the network's small error would be
                # amplified by 1 / sqrt(alpha) (~140x): 50 steps then sounded worse than 6.
                eps = x / math.sqrt(1.0 - alpha_bar)
            else:
                eps = self._predict_noise(self, x, step, mel, std)  # (B, 2, L)
            x = (x - beta / math.sqrt(1.0 - alpha_bar) * eps) / math.sqrt(alpha)
            if n > 0:
                sigma = math.sqrt((1.0 - sched.alpha_bars[n - 1].item()) / (1.0 - alpha_bar) * beta)
                x = x + sigma * std * torch.randn(
                    x.shape, device=x.device, dtype=x.dtype, generator=generator
                )
            x = x.clamp(-SUBBAND_LIMIT, SUBBAND_LIMIT)
        if self.config.remove_cutoff_alias:
            x = remove_cutoff_alias(x, self.config.sample_rate)
        wav = idwt_haar(x, length=mel.shape[-1] * self.config.hop_length)  # (B, 1, T)
        return wav.squeeze(1).clamp(-1.0, 1.0)
