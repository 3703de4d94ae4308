"""NEWT: neural waveshaping synthesis from f0 and loudness, and its lookup-table variant FastNEWT.

Hayes, Saitis & Fazekas, "Neural Waveshaping Synthesis", ISMIR 2021 (arXiv 2107.05050); reference code
ben-hayes/neural-waveshaping-synthesis. The paper defaults (``NEWT()``) have 266,945 parameters:

- controls ``[f0, loudness]`` at the control rate (hop 128 at 16 kHz) -> GRU(2 -> 128) -> 1x1 projection;
- an MLP (depth 4, LayerNorm + LeakyReLU) -> 4 x 64 FiLM parameters for the waveshaper bank, another
  -> 129 noise band gains;
- f0 -> 101-harmonic oscillator (anti-aliased) -> Conv1d(101 -> 64) exciter -> 64 waveshapers
  (:class:`~.layers.NEWTBank`) -> one channel; plus FIR-filtered noise; then a learnable 2 s reverb.

Differences from the reference code, all for causality and exact streaming:

- frame -> sample upsampling (f0 and FiLM parameters) ramps linearly from the previous frame to the
  current one (:func:`~.layers.causal_upsample`) instead of centred linear interpolation, so no sample
  looks ahead; the filtered noise is overlap-added per frame instead of an STFT with centred frames;
- randomness (the oscillator's initial phases and the noise) is a pure function of a ``seed`` and the
  sample index (:func:`~.layers.hash_uniform`): ``seed=None`` draws a seed from torch's global RNG (or
  ``generator``), so training sees fresh noise and phases while inference is reproducible;
- the noise is uniform in ``[-1, 1)`` (the reference draws ``[0, 1)``, which adds DC).

Example::

    import torch
    from accelerando.vocoders import NEWT

    model = NEWT().eval()
    f0 = torch.full((1, 250), 440.0)  # (B, frames) in Hz, 2 s at hop 128
    loudness = torch.full((1, 250), 0.6)  # (B, frames), normalize_loudness(dB) = (dB + 80) / 80
    audio = model.synthesize(f0, loudness, seed=0)  # (1, 32000)
    fast = model.to_fast()  # FastNEWT: shapers replaced by 4096-entry lookup tables
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch
from diffusers.configuration_utils import register_to_config
from torch import Tensor, nn

from ...modeling import AccelerandoModel
from .layers import (
    MLP,
    FilteredNoise,
    HarmonicOscillator,
    LearnableReverb,
    NEWTBank,
    causal_upsample,
    hash32,
    hash_uniform,
    lookup_table_copy,
    mlp_copy,
    seed_keys,
)

if TYPE_CHECKING:
    from .streaming import NEWTStream

__all__ = ["NEWT", "NEWTState"]


@dataclass
class NEWTState:
    """Everything a block of NEWT synthesis hands to the next block (all tensors lead with the batch).

    ``phase`` is the fundamental's phase in cycles (float64); ``initial_phase`` the per-harmonic offsets;
    ``keys`` the per-item noise keys; ``sample_index`` the absolute index of the next sample; the ``prev_*``
    fields are the last frame of the previous block (``None`` before the first block: the first frame is
    then held); the tails are the not-yet-emitted ends of the noise and reverb convolutions.
    """

    sample_index: int
    keys: Tensor  # (B,) int64
    initial_phase: Tensor  # (B, K) cycles
    phase: Tensor  # (B,) float64 cycles
    noise_tail: Tensor  # (B, noise_ir_length - 1)
    reverb_tail: Tensor  # (B, reverb_length - 1)
    gru_hidden: Tensor | None = None  # (1, B, control_hidden)
    prev_f0: Tensor | None = None  # (B, 1)
    prev_film: Tensor | None = None  # (B, 4 * n_waveshapers)


def _positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be positive; got {value!r}")


class NEWT(AccelerandoModel):
    """Neural waveshaping synthesiser: ``(f0_hz, loudness) (B, frames) -> audio (B, frames * control_hop)``.

    Args:
        sample_rate: output sample rate (16000 in the paper).
        control_hop: samples per control frame (128).
        n_harmonics: sines in the harmonic exciter (101).
        n_waveshapers: NEWTs in the bank (64).
        control_hidden: GRU width and control embedding size (128).
        mlp_depth: linear layers in the FiLM and noise MLPs (4).
        shaper_width, shaper_depth: hidden units per shaper and layers of each shaping MLP (8, 4).
        n_noise_bands: band gains predicted per frame for the noise filter (129).
        noise_ir_length: taps of each frame's noise FIR (256).
        reverb_length: impulse response length in samples (32000 = 2 s; ``reverb_length - 1`` learnable).
        f0_min, f0_max: the f0 control is ``log(f0 / f0_min) / log(f0_max / f0_min)``, f0 clamped below at
            ``f0_min`` (so unvoiced frames with f0 = 0 map to 0).
        use_lookup_table: FastNEWT: shapers are lookup tables (build one with :meth:`to_fast`).
        lut_size, lut_range: table entries and input range ``[-lut_range, lut_range]`` (4096, 3.0).
    """

    @register_to_config
    def __init__(
        self,
        sample_rate: int = 16000,
        control_hop: int = 128,
        n_harmonics: int = 101,
        n_waveshapers: int = 64,
        control_hidden: int = 128,
        mlp_depth: int = 4,
        shaper_width: int = 8,
        shaper_depth: int = 4,
        n_noise_bands: int = 129,
        noise_ir_length: int = 256,
        reverb_length: int = 32000,
        f0_min: float = 20.0,
        f0_max: float = 2000.0,
        use_lookup_table: bool = False,
        lut_size: int = 4096,
        lut_range: float = 3.0,
    ) -> None:
        super().__init__()
        _positive(
            sample_rate=sample_rate, control_hop=control_hop, n_harmonics=n_harmonics,
            n_waveshapers=n_waveshapers, control_hidden=control_hidden, shaper_width=shaper_width,
            n_noise_bands=n_noise_bands, f0_min=f0_min, lut_range=lut_range,
        )  # fmt: skip
        if mlp_depth < 2 or shaper_depth < 2:
            raise ValueError(
                f"mlp_depth and shaper_depth must be at least 2; got {mlp_depth}, {shaper_depth}"
            )
        if noise_ir_length < 2 or reverb_length < 2 or lut_size < 2:
            raise ValueError(
                f"noise_ir_length, reverb_length and lut_size must be at least 2; "
                f"got {noise_ir_length}, {reverb_length}, {lut_size}"
            )
        if not f0_max > f0_min:
            raise ValueError(f"f0_max must exceed f0_min; got f0_min={f0_min}, f0_max={f0_max}")
        self.gru = nn.GRU(2, control_hidden, batch_first=True)
        self.control_proj = nn.Linear(control_hidden, control_hidden)  # the reference's 1x1 conv
        self.film_mlp = MLP(control_hidden, control_hidden, 4 * n_waveshapers, mlp_depth)
        self.noise_mlp = MLP(control_hidden, control_hidden, n_noise_bands, mlp_depth)
        self.oscillator = HarmonicOscillator(n_harmonics, sample_rate)
        self.harmonic_mixer = nn.Conv1d(n_harmonics, n_waveshapers, 1)
        self.newt = NEWTBank(n_waveshapers, shaper_width, shaper_depth, use_lookup_table, lut_size, lut_range)
        self.noise = FilteredNoise(noise_ir_length, control_hop)
        self.reverb = LearnableReverb(reverb_length)

    # ----------------------------------------------------------------------------------------------
    # State and rendering
    # ----------------------------------------------------------------------------------------------

    def initial_state(
        self, batch_size: int, seed: int | None = None, generator: torch.Generator | None = None
    ) -> NEWTState:
        """The state before the first sample; ``seed`` fixes the noise and initial harmonic phases."""
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator).item())
        param = self.harmonic_mixer.weight
        device, dtype = param.device, param.dtype
        keys = seed_keys(seed, batch_size, device)  # (B,)
        harmonics = torch.arange(self.config.n_harmonics, dtype=torch.int64, device=device)
        phase_bits = hash32(hash32(keys.unsqueeze(1) ^ 0x5BD1E995) + harmonics)  # (B, K)
        return NEWTState(
            sample_index=0,
            keys=keys,
            initial_phase=(phase_bits.to(torch.float64) / 2**32).to(dtype),
            phase=torch.zeros(batch_size, dtype=torch.float64, device=device),
            noise_tail=torch.zeros(batch_size, self.config.noise_ir_length - 1, device=device, dtype=dtype),
            reverb_tail=torch.zeros(batch_size, self.config.reverb_length - 1, device=device, dtype=dtype),
        )

    def normalize_f0(self, f0_hz: Tensor) -> Tensor:
        """The f0 control: ``log(max(f0, f0_min) / f0_min) / log(f0_max / f0_min)``, same shape."""
        f0_min, f0_max = self.config.f0_min, self.config.f0_max
        return torch.log(f0_hz.clamp(min=f0_min) / f0_min) / math.log(f0_max / f0_min)

    def render(self, f0_hz: Tensor, loudness: Tensor, state: NEWTState) -> tuple[Tensor, NEWTState]:
        """Synthesise one block: ``(B, F)`` controls + state -> ``(audio (B, F * hop), next state)``."""
        hop = self.config.control_hop
        batch, frames = f0_hz.shape
        controls = torch.stack([self.normalize_f0(f0_hz), loudness], dim=-1)  # (B, F, 2)
        hidden, gru_hidden = self.gru(controls, state.gru_hidden)  # (B, F, H)
        embedding = self.control_proj(hidden)  # (B, F, H)
        film = self.film_mlp(embedding)  # (B, F, 4C)
        bands = self.noise_mlp(embedding)  # (B, F, n_noise_bands)

        f0 = f0_hz.unsqueeze(1)  # (B, 1, F)
        prev_f0 = f0[:, :, 0] if state.prev_f0 is None else state.prev_f0  # (B, 1)
        f0_samples = causal_upsample(f0, prev_f0, hop)[:, 0]  # (B, T)
        film = film.transpose(1, 2)  # (B, 4C, F)
        prev_film = film[:, :, 0] if state.prev_film is None else state.prev_film  # (B, 4C)
        film_samples = causal_upsample(film, prev_film, hop)  # (B, 4C, T)

        harmonics, phase = self.oscillator(f0_samples, state.phase, state.initial_phase)  # (B, K, T), (B,)
        exciter = self.harmonic_mixer(harmonics)  # (B, C, T)
        harmonic = self.newt(exciter, film_samples)  # (B, T)
        white = hash_uniform(state.keys, state.sample_index, frames * hop, dtype=harmonic.dtype)  # (B, T)
        noise, noise_tail = self.noise(bands, white, state.noise_tail)  # (B, T)
        audio, reverb_tail = self.reverb(harmonic + noise, state.reverb_tail)  # (B, T)
        next_state = replace(
            state,
            sample_index=state.sample_index + frames * hop,
            phase=phase,
            noise_tail=noise_tail,
            reverb_tail=reverb_tail,
            gru_hidden=gru_hidden,
            prev_f0=f0[:, :, -1],
            prev_film=film[:, :, -1],
        )
        return audio, next_state

    def forward(
        self,
        f0_hz: Tensor,
        loudness: Tensor,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """``f0_hz (B, F)`` in Hz, ``loudness (B, F)`` normalised -> ``audio (B, F * control_hop)``.

        Differentiable (use it for training); ``seed=None`` draws fresh noise and phases each call.
        """
        audio, _ = self.render(f0_hz, loudness, self.initial_state(f0_hz.shape[0], seed, generator))
        return audio

    # ----------------------------------------------------------------------------------------------
    # Inference API
    # ----------------------------------------------------------------------------------------------

    def check_controls(self, f0_hz: Tensor, loudness: Tensor) -> tuple[Tensor, Tensor, bool]:
        """Validate and batch user controls: ``(F,)`` or ``(B, F)`` each -> ``(B, F)`` on the model's device.

        Returns ``(f0_hz, loudness, unbatched)``; raises ``ValueError`` naming the bad value.
        """
        f0_hz, loudness = torch.as_tensor(f0_hz), torch.as_tensor(loudness)
        if f0_hz.shape != loudness.shape:
            raise ValueError(
                f"f0_hz and loudness must have the same shape (B, frames); "
                f"got {tuple(f0_hz.shape)} and {tuple(loudness.shape)}"
            )
        if f0_hz.dim() not in (1, 2) or f0_hz.shape[-1] == 0:
            raise ValueError(
                f"f0_hz and loudness must be (frames,) or (B, frames) with at least one frame; "
                f"got shape {tuple(f0_hz.shape)}"
            )
        for name, x in (("f0_hz", f0_hz), ("loudness", loudness)):
            if not torch.isfinite(x).all():
                raise ValueError(
                    f"{name} must be finite; got {int((~torch.isfinite(x)).sum())} NaN/inf values"
                )
        if (f0_hz < 0).any():
            raise ValueError(
                f"f0_hz must be >= 0 Hz (0 for unvoiced frames); got minimum {float(f0_hz.min())}"
            )
        unbatched = f0_hz.dim() == 1
        param = self.harmonic_mixer.weight
        f0_hz = f0_hz.to(param.device, param.dtype).reshape(-1, f0_hz.shape[-1])
        loudness = loudness.to(param.device, param.dtype).reshape(-1, loudness.shape[-1])
        return f0_hz, loudness, unbatched

    @torch.inference_mode()
    def synthesize(
        self,
        f0_hz: Tensor,
        loudness: Tensor,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Render audio from controls at the control rate (inference mode).

        Args:
            f0_hz: ``(B, frames)`` or ``(frames,)`` fundamental in Hz (0 where unvoiced).
            loudness: same shape, normalised loudness ``(dB + 80) / 80`` (:func:`accelerando.audio.normalize_loudness`).
            seed: fixes the noise and initial harmonic phases (``None``: drawn from ``generator`` or torch's RNG).
            generator: used to draw the seed when ``seed`` is ``None``.

        Returns:
            ``(B, frames * control_hop)`` (or ``(frames * control_hop,)``) float waveform at ``sample_rate``.
        """
        f0_hz, loudness, unbatched = self.check_controls(f0_hz, loudness)
        audio = self(f0_hz, loudness, seed=seed, generator=generator)
        return audio[0] if unbatched else audio

    def stream(
        self, batch_size: int = 1, seed: int | None = None, generator: torch.Generator | None = None
    ) -> NEWTStream:
        """A :class:`~.streaming.NEWTStream` synthesising block by block, equal to one :meth:`synthesize` call."""
        from .streaming import NEWTStream

        return NEWTStream(self, batch_size=batch_size, seed=seed, generator=generator)

    @torch.no_grad()
    def to_fast(self) -> NEWT:
        """FastNEWT: a copy whose waveshapers are lookup tables sampled from this model's trained shapers.

        Each shaper is evaluated on ``lut_size`` evenly spaced inputs over ``[-lut_range, lut_range]``
        (4096 over [-3, 3] in the paper) and read back with linear interpolation. The result is a ``NEWT``
        with ``use_lookup_table=True``; its tables are buffers, saved and loaded like any weights.
        """
        return lookup_table_copy(self)

    def to_trainable(self, steps: int = 4000) -> NEWT:
        """The inverse of :meth:`to_fast`: a copy with MLP waveshapers fitted to the lookup tables
        (:func:`~.layers.mlp_copy`), so that training can go on from a shipped FastNEWT checkpoint."""
        return mlp_copy(self, steps=steps)
