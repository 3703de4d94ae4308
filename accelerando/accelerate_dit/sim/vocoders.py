"""SIM for the diffusion / flow vocoders: ``ScoreModel`` views of PeriodWave(-Turbo) and FreGrad, a one-step student.

Each adapter sees its vocoder through the standard Gaussian path of :mod:`.score`, ``x_t = alpha_t x0 + sigma_t eps``
with ``t`` in [0, 1] (1 = noise), in **whitened** units: the sample is divided by the vocoder's own prior std, so
the noise is ``N(0, 1)`` everywhere and SIM's per-element distance means the same in loud and quiet frames.
Conditioning is ``cond = {"mel": mel}`` with ``mel`` ``(B, n_mels, frames)``.

- :class:`PeriodWaveScore` (PeriodWave and PeriodWave-Turbo; OT-CFM flow, arXiv 2408.07547): PeriodWave's time
  runs the other way (``s = 1 - t``, 0 = prior, 1 = data) and keeps ``sigma_min``:
  ``x_s = (1 - (1 - sigma_min) s) x0 + s x1`` with ``x0 ~ N(0, S^2)``, ``S = noise_scale * prior_std``. In units
  of ``S``: ``alpha_t = 1 - t``, ``sigma_t = t + sigma_min (1 - t)``, and the network's velocity ``v = y -
  (1 - sigma_min) eps`` (``y = x1 / S``) gives ``D(x_t) = (1 - sigma_min) x_t + sigma_t v``. The mel encoding
  of a frozen network in eval mode (the teacher) is computed once per mel tensor and reused.
- :class:`FreGradScore` (FreGrad; epsilon prediction on the Haar sub-bands, arXiv 2401.10032): the VP path of its
  training schedule (``alphas_cumprod`` from ``config.noise_schedule``, discrete steps ``round(t (N - 1))``) in
  units of the per-band prior std ``band_std(mel)`` ``(B, 2, L)``; ``precondition`` models already work in
  those units.

:class:`SIMVocoder` is the one-step student: a backbone of the teacher's family (the teacher's architecture and
weights, or a smaller preset, fresh or initialised from the teacher where shapes match) sampled with one network
evaluation ``x0 = D_theta(sigma_{init_t} z, init_t)``, ``z ~ N(0, temperature^2)`` (``SIMDistiller.generate``),
then back to a waveform. It implements the ``MelVocoder`` contract and saves / loads with ``save_pretrained`` /
``from_pretrained`` (config.json + safetensors).

Example::

    import torch
    from accelerando.accelerate_dit.sim import SIMConfig, SIMDistiller
    from accelerando.accelerate_dit.sim.vocoders import SIMVocoder, vocoder_score_model
    from accelerando.vocoders import PeriodWave

    teacher = PeriodWave.from_preset("tiny").eval()
    student = SIMVocoder.from_teacher(teacher)              # same architecture, the teacher's weights
    sim = SIMDistiller(vocoder_score_model(teacher), SIMConfig(init_t=student.config.init_t),
                       generator=student.score_model())
    mel = torch.randn(2, 80, 16) - 5
    sim.train_step(torch.randn(student.sample_shape(mel)), {"mel": mel})
    wav = student.synthesize(mel[:1], generator=torch.Generator().manual_seed(0))  # (1, 16 * 256), one pass
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from diffusers.configuration_utils import register_to_config
from torch import Tensor, nn

from accelerando.accelerate_dit.sim.score import Cond, ScoreModel, _expand
from accelerando.audio import idwt_haar
from accelerando.modeling import AccelerandoModel
from accelerando.vocoders import FreGrad, PeriodWave
from accelerando.vocoders.fregrad import model as fregrad_model
from accelerando.vocoders.fregrad.schedule import get_schedule
from accelerando.vocoders.periodwave import model as periodwave_model

__all__ = [
    "BACKBONES",
    "FreGradScore",
    "PeriodWaveScore",
    "SIMVocoder",
    "default_init_t",
    "vocoder_score_model",
]

# Student backbone families -> (class, presets, architecture keys a preset decides).
BACKBONES: dict[str, tuple[type, dict[str, dict[str, Any]], tuple[str, ...]]] = {
    "PeriodWave": (
        PeriodWave,
        periodwave_model.PRESETS,
        (
            "periods", "hidden_dim", "kernel_size", "stride", "mid_dilations", "final_dilations",
            "encoder_blocks", "encoder_up_blocks", "drop_path", "upsample_mode",
        ),
    ),
    "FreGrad": (
        FreGrad,
        fregrad_model.PRESETS,
        (
            "residual_layers", "residual_channels", "dilation_cycle_length", "upsample_factors",
            "diffusion_embedding_dim", "diffusion_hidden_dim",
        ),
    ),
}  # fmt: skip
_TURBO_ONLY_KEYS = ("num_steps", "temperature")


def _inner(net: nn.Module) -> nn.Module:
    """The model under a DDP-style wrapper (for its config and prior helpers)."""
    return getattr(net, "module", net)


def _mel_from(cond: Cond | None) -> Tensor:
    mel = (cond or {}).get("mel")
    if not isinstance(mel, Tensor) or mel.dim() != 3:
        got = tuple(mel.shape) if isinstance(mel, Tensor) else type(mel).__name__
        raise ValueError(
            f'A vocoder score model needs cond={{"mel": (batch, n_mels, frames) tensor}}; got mel {got}.'
        )
    return mel


def _frozen(net: nn.Module) -> bool:
    return not net.training and not any(p.requires_grad for p in net.parameters())


class PeriodWaveScore(ScoreModel):
    """PeriodWave / PeriodWave-Turbo as a denoiser and score in units of its energy prior (module docstring).

    Shapes: ``x_t`` ``(B, 1, frames * hop)`` (whitened), ``t`` ``(B,)``, ``cond["mel"]`` ``(B, n_mels, frames)``.
    """

    def __init__(self, net: nn.Module) -> None:
        if not isinstance(_inner(net), PeriodWave):
            raise TypeError(
                f"PeriodWaveScore wraps a PeriodWave or PeriodWaveTurbo; got {type(net).__name__}."
            )
        super().__init__(net, "flow")
        self.sigma_min = float(_inner(net).config.sigma_min)
        self._memo: tuple[Tensor, int, bool, list[Tensor]] | None = None

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        return 1 - t, t + self.sigma_min * (1 - t)

    def timestep(self, t: Tensor) -> Tensor:
        """PeriodWave's own time ``s = 1 - t`` (0 = prior, 1 = data)."""
        return 1 - t

    def check_mel(self, mel: Tensor) -> Tensor:
        _inner(self.net)._check_mel(mel)
        return mel

    def prior_scale(self, mel: Tensor) -> Tensor:
        """``S = noise_scale * prior_std`` at the sample rate: ``(B, 1, frames * hop)``."""
        model = _inner(self.net)
        return model.config.noise_scale * model.prior_std_samples(mel)

    def sample_shape(self, mel: Tensor) -> tuple[int, ...]:
        return (mel.shape[0], 1, mel.shape[-1] * _inner(self.net).config.hop_length)

    def encode(self, mel: Tensor) -> list[Tensor] | None:
        """The mel encoding, memoised for a frozen eval-mode network (the teacher); ``None``: let forward encode."""
        if not _frozen(self.net):
            self._memo = None
            return None
        inference = torch.is_inference_mode_enabled()
        memo = self._memo
        if memo is not None and memo[0] is mel and memo[1] == mel._version and memo[2] == inference:
            return memo[3]
        encoding = _inner(self.net).encode_mel(mel)
        self._memo = (mel, mel._version, inference, encoding)
        return encoding

    def predict(self, x_t: Tensor, t: Tensor, cond: Cond | None = None) -> Tensor:
        """The velocity ``v = y - (1 - sigma_min) eps`` in units of ``S``: ``(B, 1, T)``."""
        mel = _mel_from(cond)
        scale = self.prior_scale(mel)  # (B, 1, T)
        if x_t.shape != scale.shape:
            raise ValueError(
                f"x_t must be (batch, 1, frames * hop) = {tuple(scale.shape)} for this mel; got {tuple(x_t.shape)}."
            )
        encoding = self.encode(mel)
        s = self.timestep(t).to(x_t.dtype)
        if encoding is None:
            velocity = self.net(x_t * scale, s, mel=mel)
        else:
            velocity = self.net(x_t * scale, s, cond=encoding)
        return velocity / scale

    def denoise(self, x_t: Tensor, t: Tensor, cond: Cond | None = None) -> Tensor:
        """``D(x_t, t) = (1 - sigma_min) x_t + sigma_t v``."""
        _, sigma = self.alpha_sigma(t)
        return (1 - self.sigma_min) * x_t + _expand(sigma, x_t) * self.predict(x_t, t, cond)

    def ode_velocity(self, x_t: Tensor, t: Tensor, cond: Cond | None = None) -> Tensor:
        """``dx_t / dt`` of the probability-flow ODE along this path (``-D + (1 - sigma_min) eps_hat``)."""
        alpha, sigma = (_expand(v, x_t) for v in self.alpha_sigma(t))
        x0 = self.denoise(x_t, t, cond)
        return -x0 + (1 - self.sigma_min) * (x_t - alpha * x0) / sigma

    def training_loss(self, x0: Tensor, t: Tensor, noise: Tensor, cond: Cond | None = None) -> Tensor:
        """Flow matching in units of ``S`` (PeriodWave's loss divided by ``noise_scale^2``), a scalar."""
        x_t = self.add_noise(x0, noise, t)
        target = x0 - (1 - self.sigma_min) * noise
        return nn.functional.mse_loss(self.predict(x_t, t, cond).float(), target.float())

    def to_waveform(self, x0: Tensor, mel: Tensor) -> Tensor:
        """Whitened samples ``(B, 1, T)`` -> waveform ``(B, T)``."""
        return (x0 * self.prior_scale(mel)).squeeze(1)

    def copy(self) -> PeriodWaveScore:
        self._memo = None
        return super().copy()  # type: ignore[return-value]


class FreGradScore(ScoreModel):
    """FreGrad as an epsilon-prediction ``ScoreModel`` on whitened Haar sub-bands (module docstring).

    Shapes: ``x_t`` ``(B, 2, frames * hop / 2)`` (sub-bands divided by ``band_std``), ``t`` ``(B,)``,
    ``cond["mel"]`` ``(B, n_mels, frames)``.
    """

    def __init__(self, net: nn.Module) -> None:
        model = _inner(net)
        if not isinstance(model, FreGrad):
            raise TypeError(f"FreGradScore wraps a FreGrad; got {type(net).__name__}.")
        betas = torch.tensor(model.config.noise_schedule, dtype=torch.float64)
        super().__init__(net, "epsilon", alphas_cumprod=torch.cumprod(1 - betas, 0))

    def check_mel(self, mel: Tensor) -> Tensor:
        return _inner(self.net)._check_mel(mel)

    def prior_scale(self, mel: Tensor) -> Tensor:
        """The frequency-wise prior std ``band_std(mel)``: ``(B, 2, frames * hop / 2)``."""
        return _inner(self.net).band_std(mel)

    def sample_shape(self, mel: Tensor) -> tuple[int, ...]:
        return (mel.shape[0], 2, mel.shape[-1] * _inner(self.net).config.hop_length // 2)

    def predict(self, x_t: Tensor, t: Tensor, cond: Cond | None = None) -> Tensor:
        """``eps_hat`` of the whitened sample: ``(B, 2, L)``."""
        mel = _mel_from(cond)
        std = self.prior_scale(mel)  # (B, 2, L)
        if x_t.shape != std.shape:
            raise ValueError(
                f"x_t must be (batch, 2, frames * hop / 2) = {tuple(std.shape)} for this mel; got {tuple(x_t.shape)}."
            )
        step = self.timestep(t).to(x_t.dtype)
        if _inner(self.net).config.precondition:  # the network already works in units of sigma
            return self.net(x_t, step, mel)
        return self.net(x_t * std, step, mel) / std

    def to_waveform(self, x0: Tensor, mel: Tensor) -> Tensor:
        """Whitened sub-bands ``(B, 2, L)`` -> waveform ``(B, 2 L)``, finished as ``FreGrad.synthesize`` does."""
        model = _inner(self.net)
        bands = (x0 * self.prior_scale(mel)).clamp(-fregrad_model.SUBBAND_LIMIT, fregrad_model.SUBBAND_LIMIT)
        if model.config.remove_cutoff_alias:
            bands = fregrad_model.remove_cutoff_alias(bands, model.config.sample_rate)
        wav = idwt_haar(bands, length=mel.shape[-1] * model.config.hop_length)  # (B, 1, T)
        return wav.squeeze(1).clamp(-1.0, 1.0)


def vocoder_score_model(model: Any) -> ScoreModel:
    """The ``ScoreModel`` view of a PeriodWave, PeriodWaveTurbo, FreGrad or ``SIMVocoder`` (its backbone).

    Raises:
        TypeError: for any other class, naming it and the accepted ones.
    """
    if isinstance(model, (PeriodWaveScore, FreGradScore)):
        return model
    if isinstance(model, SIMVocoder):
        return model.score_model()
    if isinstance(_inner(model), PeriodWave):
        return PeriodWaveScore(model)
    if isinstance(_inner(model), FreGrad):
        return FreGradScore(model)
    raise TypeError(
        f"No vocoder score adapter for {type(model).__name__}; accepted: PeriodWave, PeriodWaveTurbo, FreGrad, "
        "SIMVocoder."
    )


def default_init_t(model: Any) -> float:
    """The student's noise level: 1 (pure prior noise) for PeriodWave; for FreGrad the training step where its own
    default sampler (``config.inference_noise_schedule``, 6 steps: ``sqrt(alpha_bar)`` about 0.6) starts from pure
    prior noise. Not 1: the zero-terminal-SNR end makes an epsilon denoiser divide by ``sqrt(alpha_bar) ~ 2e-4``."""
    model = _inner(model.backbone if isinstance(model, SIMVocoder) else model)
    if isinstance(model, PeriodWave):
        return 1.0
    if isinstance(model, FreGrad):
        betas = model.config.noise_schedule
        start = float(get_schedule(betas, betas=model.config.inference_noise_schedule).timesteps[-1])
        return round(start) / (len(betas) - 1)
    raise TypeError(f"default_init_t: expected a PeriodWave or FreGrad; got {type(model).__name__}.")


def _family(model: nn.Module) -> str:
    if isinstance(model, PeriodWave):
        return "PeriodWave"
    if isinstance(model, FreGrad):
        return "FreGrad"
    raise TypeError(
        f"SIMVocoder students come from PeriodWave, PeriodWaveTurbo or FreGrad teachers; got {type(model).__name__}."
    )


def _preset_architecture(family: str, preset: str) -> dict[str, Any]:
    cls, presets, keys = BACKBONES[family]
    if preset not in presets:
        raise ValueError(f"Unknown {family} preset {preset!r}; available: {sorted(presets)}.")
    defaults = {
        name: p.default for name, p in inspect.signature(cls.__init__).parameters.items() if name in keys
    }
    return {**defaults, **{k: v for k, v in presets[preset].items() if k in keys}}


class SIMVocoder(AccelerandoModel):
    """A one-step vocoder distilled with SIM: ``synthesize(mel) -> (B, frames * hop)`` with one network evaluation.

    Args:
        family: the backbone's class, ``"PeriodWave"`` or ``"FreGrad"`` (the teacher's family; a Turbo teacher
            gives a PeriodWave).
        backbone_config: the backbone's config (architecture and prior).
        init_t: the generator's noise level (``default_init_t``); the sample is ``D(sigma_{init_t} z, init_t)``.
        temperature: scale of the generator noise ``z`` (1: the distribution SIM matched).
    """

    @register_to_config
    def __init__(
        self,
        family: str = "PeriodWave",
        backbone_config: dict[str, Any] | None = None,
        init_t: float = 1.0,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        if family not in BACKBONES:
            raise ValueError(f"family must be one of {sorted(BACKBONES)}; got {family!r}.")
        if not 0.0 < init_t <= 1.0:
            raise ValueError(f"init_t must be in (0, 1]; got {init_t}.")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive; got {temperature}.")
        self.backbone = BACKBONES[family][0](**(backbone_config or {}))

    @property
    def sample_rate(self) -> int:
        return int(self.backbone.config.sample_rate)

    @property
    def hop_length(self) -> int:
        return int(self.backbone.config.hop_length)

    @classmethod
    def from_teacher(
        cls,
        teacher: nn.Module,
        preset: str | None = None,
        init: str = "teacher",
        init_t: float | None = None,
        temperature: float = 1.0,
        **overrides: Any,
    ) -> SIMVocoder:
        """A student for ``teacher`` (PeriodWave, PeriodWaveTurbo or FreGrad).

        ``preset=None`` keeps the teacher's architecture; a preset name of the family (``"tiny"``, ``"S"``,
        ``"small"``, ...) takes that preset's architecture and the teacher's prior and rates. ``init="teacher"``
        copies every teacher tensor whose name and shape match (all of them when the architecture is the
        teacher's); ``"fresh"`` keeps the new initialisation. ``overrides`` go to the backbone config
        (PeriodWave students default to ``drop_path=0``: the generator must be deterministic).
        """
        if init not in ("teacher", "fresh"):
            raise ValueError(f"init must be 'teacher' or 'fresh'; got {init!r}.")
        teacher = _inner(teacher)
        family = _family(teacher)
        config = {
            k: v for k, v in teacher.config.items() if not k.startswith("_") and k not in _TURBO_ONLY_KEYS
        }
        if preset is not None:
            config.update(_preset_architecture(family, preset))
        if family == "PeriodWave":
            config["drop_path"] = 0.0
        config.update(overrides)
        config = {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}
        student = cls(
            family=family,
            backbone_config=config,
            init_t=default_init_t(teacher) if init_t is None else init_t,
            temperature=temperature,
        )
        if init == "teacher":
            source = teacher.state_dict()
            own = student.backbone.state_dict()
            matched = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
            student.backbone.load_state_dict(matched, strict=False)
            student.loaded_from_teacher = (len(matched), len(own))
        param = next(teacher.parameters())
        student.to(param.device)
        return student if param.dtype == torch.float32 else student.to(param.dtype)

    def score_model(self) -> ScoreModel:
        """The backbone's ``ScoreModel`` view (shares its parameters): the SIM generator."""
        return vocoder_score_model(self.backbone)

    def sample_shape(self, mel: Tensor) -> tuple[int, ...]:
        """Shape of the generator noise for ``mel`` ``(B, n_mels, frames)``."""
        return self.score_model().sample_shape(mel)  # type: ignore[attr-defined]

    def generate(self, z: Tensor, mel: Tensor) -> Tensor:
        """Whitened one-step sample ``D(sigma_{init_t} z, init_t)`` (with grad unless under no_grad)."""
        score = self.score_model()
        t = torch.full((z.shape[0],), self.config.init_t, device=z.device, dtype=z.dtype)
        _, sigma = score.alpha_sigma(t)
        return score.denoise(_expand(sigma, z) * z, t, {"mel": mel})

    def forward(self, z: Tensor, mel: Tensor) -> Tensor:
        """Generator noise ``z`` and mel -> waveform ``(B, frames * hop)``."""
        return self.score_model().to_waveform(self.generate(z, mel), mel)  # type: ignore[attr-defined]

    @torch.no_grad()
    def synthesize(
        self,
        mel: Tensor,
        num_steps: int | None = None,
        generator: torch.Generator | None = None,
        *,
        progress: bool = False,
    ) -> Tensor:
        """Mel ``(B, n_mels, frames)`` -> waveform ``(B, frames * hop)`` with one network evaluation.

        ``num_steps`` may only be ``None`` or 1; ``progress`` is part of the contract and ignored.
        """
        if num_steps not in (None, 1):
            raise ValueError(
                f"SIMVocoder is a one-step generator; num_steps must be None or 1, got {num_steps!r}."
            )
        score = self.score_model()
        param = next(self.parameters())
        mel = score.check_mel(mel).to(device=param.device, dtype=param.dtype)  # type: ignore[attr-defined]
        shape = score.sample_shape(mel)  # type: ignore[attr-defined]
        z = torch.randn(shape, generator=generator, device=param.device, dtype=param.dtype)
        return self(z * self.config.temperature, mel)
