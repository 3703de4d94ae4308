"""MelNEWT: a mel-conditioned neural-waveshaping speech vocoder (harmonic-plus-noise, causal, streaming).

NEWT (Hayes, Saitis & Fazekas, ISMIR 2021) synthesises a monophonic instrument from f0 and loudness: a
harmonic exciter at f0, a bank of FiLM-modulated neural waveshapers, and FIR-filtered noise. MelNEWT is our
speech vocoder in that family, for the shared 80-bin log-mel (22.05 kHz, hop 256). What it adds:

- **controls from the mel**: a causal conv over the last ``context_frames`` mel frames, then a GRU (NEWT's
  control model), gives one embedding per frame; nothing looks ahead;
- **f0 and voicing from the mel**: a pitch head classifies each frame into ``n_pitch_bins`` log-spaced
  bins from ``f0_min`` to ``f0_max`` (CREPE-style: trained with cross-entropy on Gaussian-blurred pYIN
  targets, decoded as the probability-weighted mean around the arg-max) and a voicing head gives
  ``p(voiced)``. Training feeds pYIN's f0 to the oscillator (teacher forcing); inference feeds the decoded
  prediction;
- **a spectral envelope on the exciter**: as in DDSP's harmonic synthesiser, an MLP predicts an overall
  amplitude and a distribution over the ``n_harmonics`` harmonics (renormalised below Nyquist), scaled by
  ``p(voiced)``. The weighted harmonics are the additive part of the output *and* NEWT's exciter: mixed
  to ``n_waveshapers`` channels and shaped by the FiLM-modulated bank (FastNEWT lookup tables via
  :meth:`MelNEWT.to_fast`);
- **noise**: NEWT's FIR-filtered noise (``n_noise_bands`` band gains per frame); no reverb (speech is dry);
- **alignment**: mel frame ``i`` is centred on sample ``i * hop + hop // 2``, while a causal layer reaches
  frame ``i``'s value at the end of its hop. The synthesiser therefore renders one extra frame (the last
  one repeated) and drops its first ``hop // 2`` samples, so every control is at its frame's centre and
  ``synthesize`` returns exactly ``frames * hop`` samples (latency: half a hop).

The harmonics start in phase (a pulse-like source, deterministic); only the noise depends on the seed,
through counter-based noise (:func:`~.layers.hash_uniform`), so :meth:`MelNEWT.stream` reproduces a whole
call block by block (see :class:`MelNEWTStream`).

Example::

    import torch
    from accelerando.audio import mel_spectrogram
    from accelerando.vocoders import MelNEWT

    model = MelNEWT().eval()
    mel = mel_spectrogram(torch.randn(22050) * 0.1)  # (1, 80, 86)
    audio = model.synthesize(mel, generator=torch.Generator().manual_seed(0))  # (1, 86 * 256)
    stream = model.stream(seed=0)
    parts = [stream.push(mel[..., i : i + 10]) for i in range(0, 86, 10)] + [stream.finish()]
    fast = model.to_fast()  # FastNEWT: the waveshapers become lookup tables
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from torch import Tensor, nn

from ...audio.envelope import MelEnvelopeMatch, match_mel_envelope
from ...audio.mel import MelConfig
from ...modeling import AccelerandoModel
from ..contract import ConfigRates
from .layers import (
    MLP,
    FilteredNoise,
    NEWTBank,
    causal_upsample,
    hash_uniform,
    lookup_table_copy,
    mlp_copy,
    seed_keys,
)

__all__ = [
    "MelNEWT",
    "MelNEWTOutput",
    "MelNEWTState",
    "MelNEWTStream",
    "batch_states",
    "scaled_sigmoid",
    "split_state",
    "state_signature",
]


def scaled_sigmoid(x: Tensor) -> Tensor:
    """DDSP's amplitude nonlinearity ``2 * sigmoid(x) ** ln(10) + 1e-7`` (range ``(1e-7, 2]``)."""
    return 2.0 * torch.sigmoid(x) ** math.log(10.0) + 1e-7


@dataclass
class MelNEWTState:
    """What one block of synthesis hands to the next (tensors lead with the batch).

    ``mel_context`` holds the last ``context_frames - 1`` normalised mel frames (``None`` before the first
    block: the first frame is then repeated); ``prev_*`` are the previous frame's controls for the upsampling
    ramps (``None`` before the first block: the first frame is held); ``phase`` is the fundamental's phase
    in cycles (float64); ``noise_tail`` the noise filter's overlap-add tail; ``keys`` the noise keys;
    ``sample_index`` the index of the next rendered sample.
    """

    sample_index: int
    keys: Tensor  # (B,) int64
    phase: Tensor  # (B,) float64 cycles
    noise_tail: Tensor  # (B, noise_ir_length - 1)
    mel_context: Tensor | None = None  # (B, n_mels, context_frames - 1)
    gru_hidden: Tensor | None = None  # (1, B, hidden)
    prev_f0: Tensor | None = None  # (B, 1)
    prev_amps: Tensor | None = None  # (B, n_harmonics)
    prev_film: Tensor | None = None  # (B, 4 * n_waveshapers)


Renderer = Callable[[Tensor, MelNEWTState], tuple[Tensor, MelNEWTState]]


_OPTIONAL_STATE = ("mel_context", "gru_hidden", "prev_f0", "prev_amps", "prev_film")


def state_signature(state: MelNEWTState) -> tuple[bool, ...]:
    """Which optional fields are set: states with the same signature can be rendered as one batch."""
    return tuple(getattr(state, name) is not None for name in _OPTIONAL_STATE)


def batch_states(states: Sequence[MelNEWTState]) -> MelNEWTState:
    """One state for several streams' states (same :func:`state_signature`), at sample index 0.

    Each item's own sample index is folded into its noise keys (sample ``n`` of an item draws
    ``hash(n + key)``), so rendering the batch gives every stream exactly what its own render gives; undo it
    with :func:`split_state`.
    """
    if len({state_signature(s) for s in states}) != 1:
        raise ValueError("batch_states needs states at the same stage (the same optional fields set)")
    fields = {"sample_index": 0}
    fields["keys"] = torch.cat([s.keys + s.sample_index for s in states])
    for name in ("phase", "noise_tail", "mel_context", "prev_f0", "prev_amps", "prev_film"):
        parts = [getattr(s, name) for s in states]
        fields[name] = None if parts[0] is None else torch.cat(parts)
    hidden = [s.gru_hidden for s in states]
    fields["gru_hidden"] = None if hidden[0] is None else torch.cat(hidden, dim=1)
    return MelNEWTState(**fields)


def split_state(state: MelNEWTState, like: Sequence[MelNEWTState]) -> list[MelNEWTState]:
    """The per-stream states after rendering :func:`batch_states` ``(like)``: the inverse of the batching."""
    out, start = [], 0
    for old in like:
        size = old.keys.shape[0]
        part = slice(start, start + size)
        fields = {
            "sample_index": old.sample_index + state.sample_index,
            "keys": state.keys[part] - old.sample_index,
        }
        for name in ("phase", "noise_tail", "mel_context", "prev_f0", "prev_amps", "prev_film"):
            value = getattr(state, name)
            fields[name] = None if value is None else value[part]
        fields["gru_hidden"] = None if state.gru_hidden is None else state.gru_hidden[:, part]
        out.append(MelNEWTState(**fields))
        start += size
    return out


@dataclass
class MelNEWTOutput:
    """A training forward pass: ``audio (B, F * hop)``, ``pitch_logits (B, F, bins)``, ``voicing_logits (B, F)``."""

    audio: Tensor
    pitch_logits: Tensor
    voicing_logits: Tensor


class MelNEWT(ConfigRates, AccelerandoModel):
    """Mel-conditioned harmonic-plus-noise NEWT: ``mel (B, n_mels, F) -> audio (B, F * hop_length)``.

    Args:
        sample_rate, hop_length, n_mels: the mel front end (:class:`accelerando.audio.MelConfig`'s defaults).
        mel_mean, mel_std: the log-mel is normalised ``(mel - mel_mean) / mel_std`` before the encoder.
        context_frames: mel frames seen by the causal input convolution (the current one and earlier ones).
        hidden: conv, GRU and MLP width.
        mlp_depth: linear layers of each control MLP (amplitudes, FiLM, noise).
        n_harmonics: harmonics of the exciter (zeroed above Nyquist).
        n_waveshapers, shaper_width, shaper_depth: NEWT's waveshaper bank (``n_waveshapers=0``: none).
        n_noise_bands, noise_ir_length: the noise filter (band gains per frame, FIR taps).
        f0_min, f0_max, n_pitch_bins: the pitch classifier's log-spaced bins.
        use_lookup_table, lut_size, lut_range: FastNEWT (see :meth:`to_fast`).
        voicing_temperature: the harmonic gain is ``sigmoid(voicing_logit / voicing_temperature)``; 1 in
            training, below 1 at inference sharpens the voiced/unvoiced decision (less harmonic buzz in
            consonants when the mel is smoother than a recording's, e.g. an acoustic model's).
        aperiodicity_bands: band aperiodicity (as WORLD's vocoder has; 0: off): a head predicts, per frame,
            the periodic share ``w`` of ``aperiodicity_bands`` bands evenly spaced from 0 Hz to Nyquist, and
            harmonic *k* keeps ``w`` interpolated at ``k * f0`` of its amplitude, so the harmonic part can fade
            where the recording is noise. Initialised at ``w = 0.95`` in every band, close to the model without
            it, so it can be added to a trained model (``--init_model`` with a ``--model_config`` that sets it).
        aperiodicity_bias: inference only (0 in training): subtracted from the band logits, ``w =
            sigmoid(logit - bias)``; above 0 it moves the bands the model is unsure of towards noise, while the
            bands it is sure are periodic (logit >> bias) keep their harmonics.
        envelope_passes: inference only (0: off; training never uses it): :meth:`synthesize` and :meth:`stream`
            pass the rendered audio through this many mel-envelope matching passes
            (:func:`accelerando.audio.match_mel_envelope`): a bounded, smooth gain per STFT bin that moves the
            output's log-mel to the input mel while keeping its phase and harmonics. Each pass costs one STFT and
            one overlap-add and holds a stream back by 640 samples (29 ms) plus up to a hop.
        envelope_max_gain_db: the largest boost or cut of one envelope pass, in dB.
    """

    streams_mel = True  # ``stream()`` carries state chunk to chunk (the speech engine uses it)

    @register_to_config
    def __init__(
        self,
        sample_rate: int = 22050,
        hop_length: int = 256,
        n_mels: int = 80,
        mel_mean: float = -6.0,
        mel_std: float = 2.5,
        context_frames: int = 3,
        hidden: int = 192,
        mlp_depth: int = 3,
        n_harmonics: int = 80,
        n_waveshapers: int = 8,
        shaper_width: int = 8,
        shaper_depth: int = 4,
        n_noise_bands: int = 129,
        noise_ir_length: int = 256,
        f0_min: float = 50.0,
        f0_max: float = 800.0,
        n_pitch_bins: int = 192,
        use_lookup_table: bool = False,
        lut_size: int = 4096,
        lut_range: float = 3.0,
        voicing_temperature: float = 1.0,
        aperiodicity_bands: int = 0,
        aperiodicity_bias: float = 0.0,
        envelope_passes: int = 0,
        envelope_max_gain_db: float = 24.0,
    ) -> None:
        super().__init__()
        if isinstance(envelope_passes, bool) or not isinstance(envelope_passes, int) or envelope_passes < 0:
            raise ValueError(
                f"MelNEWT envelope_passes must be a whole number >= 0 (0: off); got {envelope_passes!r}"
            )
        if not envelope_max_gain_db > 0:
            raise ValueError(
                f"MelNEWT envelope_max_gain_db must be positive (dB); got {envelope_max_gain_db!r}"
            )
        for name, value in dict(
            voicing_temperature=voicing_temperature,
            sample_rate=sample_rate, hop_length=hop_length, n_mels=n_mels, mel_std=mel_std,
            context_frames=context_frames, hidden=hidden, n_harmonics=n_harmonics,
            n_noise_bands=n_noise_bands, f0_min=f0_min, n_pitch_bins=n_pitch_bins,
        ).items():  # fmt: skip
            if not value > 0:
                raise ValueError(f"MelNEWT {name} must be positive; got {value!r}")
        if hop_length % 2:
            raise ValueError(f"MelNEWT hop_length must be even (half-hop alignment); got {hop_length}")
        if mlp_depth < 2 or n_waveshapers < 0 or noise_ir_length < 2:
            raise ValueError(
                f"MelNEWT needs mlp_depth >= 2, n_waveshapers >= 0 and noise_ir_length >= 2; "
                f"got {mlp_depth}, {n_waveshapers}, {noise_ir_length}"
            )
        if not f0_max > f0_min:
            raise ValueError(f"MelNEWT f0_max must exceed f0_min; got {f0_min}, {f0_max}")
        self.input_conv = nn.Conv1d(n_mels, hidden, context_frames)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.control_proj = nn.Linear(hidden, hidden)
        self.pitch_head = nn.Linear(hidden, n_pitch_bins)
        self.voicing_head = nn.Linear(hidden, 1)
        if aperiodicity_bands < 0 or aperiodicity_bands == 1:
            raise ValueError(
                f"MelNEWT aperiodicity_bands must be 0 (off) or at least 2; got {aperiodicity_bands}"
            )
        if aperiodicity_bias and not aperiodicity_bands:
            raise ValueError(
                f"MelNEWT aperiodicity_bias ({aperiodicity_bias}) needs aperiodicity_bands; this model has none"
            )
        if aperiodicity_bands:
            self.aperiodicity_head = nn.Linear(hidden, aperiodicity_bands)
            with torch.no_grad():  # start almost fully periodic in every band
                self.aperiodicity_head.weight.zero_()
                self.aperiodicity_head.bias.fill_(3.0)
        self.amp_mlp = MLP(hidden, hidden, 1 + n_harmonics, mlp_depth)
        self.noise_mlp = MLP(hidden, hidden, n_noise_bands, mlp_depth)
        if n_waveshapers:
            self.film_mlp = MLP(hidden, hidden, 4 * n_waveshapers, mlp_depth)
            self.harmonic_mixer = nn.Conv1d(n_harmonics, n_waveshapers, 1)
            self.newt = NEWTBank(
                n_waveshapers, shaper_width, shaper_depth, use_lookup_table, lut_size, lut_range
            )
        self.noise = FilteredNoise(noise_ir_length, hop_length)
        with torch.no_grad():  # start quiet: a little harmonic energy, almost no noise
            self.amp_mlp.net[-1].bias[0].fill_(-3.0)
            self.noise_mlp.net[-1].bias.fill_(-5.0)
        log_bins = torch.linspace(math.log(f0_min), math.log(f0_max), n_pitch_bins)
        self.register_buffer("log_f0_bins", log_bins, persistent=False)

    # ------------------------------------------------------------------------------------------ pitch

    @property
    def bins_per_octave(self) -> float:
        cfg = self.config
        return (cfg.n_pitch_bins - 1) / math.log2(cfg.f0_max / cfg.f0_min)

    def f0_to_bin(self, f0_hz: Tensor) -> Tensor:
        """Fractional pitch-bin index of ``f0_hz`` (clamped to the bin range), same shape."""
        cfg = self.config
        f0 = f0_hz.clamp(cfg.f0_min, cfg.f0_max)
        return torch.log2(f0 / cfg.f0_min) * self.bins_per_octave

    def decode_f0(self, pitch_logits: Tensor, window: int = 4) -> Tensor:
        """``(B, F, bins)`` logits -> ``(B, F)`` Hz: the probability-weighted mean log-f0 within ``window``
        bins of the arg-max (CREPE's local average)."""
        probs = pitch_logits.float().softmax(-1)
        centre = probs.argmax(-1, keepdim=True)  # (B, F, 1)
        index = torch.arange(probs.shape[-1], device=probs.device)
        near = ((index - centre).abs() <= window).to(probs.dtype)  # (B, F, bins)
        weights = probs * near
        log_f0 = (weights * self.log_f0_bins.to(probs.dtype)).sum(-1) / weights.sum(-1).clamp_min(1e-12)
        return log_f0.exp()

    def pitch_targets(self, f0_hz: Tensor, sigma_bins: float = 1.25) -> Tensor:
        """Gaussian-blurred one-hot targets ``(B, F, bins)`` for voiced ``f0_hz (B, F)`` (rows sum to 1)."""
        index = torch.arange(self.config.n_pitch_bins, device=f0_hz.device, dtype=torch.float32)
        distance = index - self.f0_to_bin(f0_hz.float()).unsqueeze(-1)
        target = torch.exp(-0.5 * (distance / sigma_bins) ** 2)
        return target / target.sum(-1, keepdim=True)

    # ------------------------------------------------------------------------------------------ state

    def initial_state(
        self, batch_size: int, seed: int | None = None, generator: torch.Generator | None = None
    ) -> MelNEWTState:
        """The state before the first frame; ``seed`` fixes the noise (``None``: drawn from ``generator``)."""
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator).item())
        param = self.input_conv.weight
        return MelNEWTState(
            sample_index=0,
            keys=seed_keys(seed, batch_size, param.device),
            phase=torch.zeros(batch_size, dtype=torch.float64, device=param.device),
            noise_tail=torch.zeros(
                batch_size, self.config.noise_ir_length - 1, device=param.device, dtype=param.dtype
            ),
        )

    # ------------------------------------------------------------------------------------------ render

    def _periodic_share(self, emb: Tensor, harmonic_hz: Tensor) -> Tensor:
        """``(B, F, K)``: each harmonic's periodic share, the band weights interpolated at its frequency."""
        logits = self.aperiodicity_head(emb) - self.config.aperiodicity_bias
        bands = torch.sigmoid(logits)  # (B, F, bands), 0 Hz .. Nyquist
        n = bands.shape[-1]
        position = (harmonic_hz / (self.config.sample_rate / 2)).clamp(0, 1) * (n - 1)  # (B, F, K)
        lower = position.floor().clamp(max=n - 2)
        fraction = position - lower
        lower = lower.long()
        below = torch.gather(bands, -1, lower)
        above = torch.gather(bands, -1, lower + 1)
        return below + (above - below) * fraction

    def render(
        self, mel: Tensor, state: MelNEWTState, f0_hz: Tensor | None = None
    ) -> tuple[Tensor, MelNEWTState, MelNEWTOutput]:
        """One causal block: ``mel (B, n_mels, F)`` -> ``(audio (B, F * hop), next state, heads)``.

        ``f0_hz (B, F)`` feeds the oscillator instead of the predicted f0 (teacher forcing in training).
        The audio is the causal render (controls reached at the end of each hop); :meth:`forward` and
        :class:`MelNEWTStream` shift it by half a hop.
        """
        cfg = self.config
        hop = cfg.hop_length
        frames = mel.shape[-1]
        emb, x, gru_hidden = self.encode(mel, state)
        pitch_logits = self.pitch_head(emb)  # (B, F, bins)
        voicing_logits = self.voicing_head(emb)[..., 0]  # (B, F)
        if f0_hz is None:
            with torch.no_grad():
                f0_hz = self.decode_f0(pitch_logits).to(emb.dtype)
        f0_hz = f0_hz.to(emb.dtype)

        f0_frames = f0_hz.unsqueeze(1)  # (B, 1, F)
        prev_f0 = f0_frames[:, :, 0] if state.prev_f0 is None else state.prev_f0  # (B, 1)
        ramp_f0 = torch.maximum(f0_hz, torch.cat([prev_f0, f0_hz[:, :-1]], dim=-1))  # highest f0 of each hop
        raw = self.amp_mlp(emb)  # (B, F, 1 + K)
        k = torch.arange(1, cfg.n_harmonics + 1, device=mel.device, dtype=emb.dtype)
        below_nyquist = k * ramp_f0.unsqueeze(-1) < cfg.sample_rate / 2  # (B, F, K)
        distribution = raw[..., 1:].softmax(-1) * below_nyquist
        distribution = distribution / distribution.sum(-1, keepdim=True).clamp_min(1e-7)
        voicing = torch.sigmoid(voicing_logits / cfg.voicing_temperature)
        gain = scaled_sigmoid(raw[..., :1]) * voicing.unsqueeze(-1)  # (B, F, 1)
        amps = gain * distribution  # (B, F, K)
        if cfg.aperiodicity_bands:
            amps = amps * self._periodic_share(emb, k * ramp_f0.unsqueeze(-1))
        bands = scaled_sigmoid(self.noise_mlp(emb))  # (B, F, n_noise_bands)

        f0_samples = causal_upsample(f0_frames, prev_f0, hop)[:, 0]  # (B, T)
        prev_amps = amps[:, 0] if state.prev_amps is None else state.prev_amps  # (B, K)
        harmonic, exciter, phase = self._harmonics(f0_samples, state.phase, amps, prev_amps)
        audio = harmonic  # (B, T): the additive part
        film = None
        if cfg.n_waveshapers:
            film = self.film_mlp(emb).transpose(1, 2)  # (B, 4C, F)
            prev_film = film[:, :, 0] if state.prev_film is None else state.prev_film
            film_samples = causal_upsample(film, prev_film, hop)
            audio = audio + self.newt(exciter, film_samples)
        white = hash_uniform(state.keys, state.sample_index, frames * hop, dtype=audio.dtype)
        noise, noise_tail = self.noise(bands, white, state.noise_tail)
        audio = audio + noise
        next_state = replace(
            state,
            sample_index=state.sample_index + frames * hop,
            phase=phase,
            noise_tail=noise_tail,
            mel_context=x[:, :, x.shape[-1] - (cfg.context_frames - 1) :],
            gru_hidden=gru_hidden,
            prev_f0=f0_frames[:, :, -1],
            prev_amps=amps[:, -1],
            prev_film=None if film is None else film[:, :, -1],
        )
        return audio, next_state, MelNEWTOutput(audio, pitch_logits, voicing_logits)

    def encode(self, mel: Tensor, state: MelNEWTState) -> tuple[Tensor, Tensor, Tensor]:
        """The causal control model: ``mel (B, n_mels, F)`` -> ``(embedding (B, F, H), normalised mel with the
        carried context (B, n_mels, context - 1 + F), GRU hidden state)``."""
        cfg = self.config
        x = (mel - cfg.mel_mean) / cfg.mel_std
        context = state.mel_context
        if context is None:
            context = x[:, :, :1].expand(-1, -1, cfg.context_frames - 1)
        x = torch.cat([context, x], dim=-1)
        h = F.leaky_relu(self.input_conv(x), 0.2).transpose(1, 2)  # (B, F, H)
        h, gru_hidden = self.gru(h, state.gru_hidden)
        return self.control_proj(h), x, gru_hidden

    def _harmonics(
        self, f0_samples: Tensor, phase: Tensor, amps: Tensor, prev_amps: Tensor
    ) -> tuple[Tensor, Tensor | None, Tensor]:
        """The additive harmonics and NEWT's exciter, with amplitudes ramped linearly across each hop.

        ``f0_samples (B, T)``, ``phase (B,)`` float64 cycles, ``amps (B, F, K)``, ``prev_amps (B, K)`` ->
        ``(sum_k a_k sin(2 pi k phase) (B, T), mixer(a * sines) (B, C, T) or None, end phase (B,))``.
        Per hop the ramp ``a_prev + (a - a_prev) * r`` is linear, so both outputs are two batched matmuls of
        the ``(hop, K)`` sine block with per-frame ``(K, 1 + C)`` matrices: nothing ``(K, T)``-sized besides
        the sines is formed. Harmonic ``k`` has phase ``k * phase`` (all start in phase).
        """
        cfg = self.config
        hop, n_harm = cfg.hop_length, cfg.n_harmonics
        batch, samples = f0_samples.shape
        frames = samples // hop
        cycles = phase.unsqueeze(-1) + torch.cumsum(f0_samples.to(torch.float64) / cfg.sample_rate, dim=-1)
        cycles = torch.remainder(cycles, 1.0)  # (B, T) in [0, 1)
        dtype = amps.dtype
        k = torch.arange(1, n_harm + 1, device=amps.device, dtype=dtype)
        sines = torch.sin((2 * math.pi) * cycles.to(dtype).view(batch, frames, hop, 1) * k)  # (B, F, hop, K)
        previous = torch.cat([prev_amps.unsqueeze(1), amps[:, :-1]], dim=1)  # (B, F, K)
        mix = amps.new_ones(n_harm, 1)
        if cfg.n_waveshapers:
            mix = torch.cat([mix, self.harmonic_mixer.weight[:, :, 0].t()], dim=1)  # (K, 1 + C)
        start = previous.unsqueeze(-1) * mix  # (B, F, K, 1 + C)
        delta = amps.unsqueeze(-1) * mix - start
        ramp = torch.arange(1, hop + 1, device=amps.device, dtype=dtype).div_(hop).view(hop, 1)
        out = torch.matmul(sines, start) + ramp * torch.matmul(sines, delta)  # (B, F, hop, 1 + C)
        harmonic = out[..., 0].reshape(batch, samples)
        exciter = None
        if cfg.n_waveshapers:
            exciter = out[..., 1:].reshape(batch, samples, -1).transpose(1, 2)
            exciter = exciter + self.harmonic_mixer.bias.view(1, -1, 1)
        return harmonic, exciter, cycles[:, -1]

    def forward(
        self,
        mel: Tensor,
        f0_hz: Tensor | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> MelNEWTOutput:
        """Aligned synthesis: ``mel (B, n_mels, F)`` -> ``MelNEWTOutput`` with ``audio (B, F * hop)``.

        Renders one extra frame (the last repeated) and drops the first ``hop // 2`` samples, so each
        frame's controls sit at its centre. ``f0_hz (B, F)`` (0 where unvoiced is allowed: hold a voiced
        value there, see :func:`fill_unvoiced`) feeds the oscillator (training); ``None`` uses the
        predicted f0. Differentiable; ``seed=None`` draws fresh noise each call.
        """
        hop = self.config.hop_length
        frames = mel.shape[-1]
        padded = torch.cat([mel, mel[..., -1:]], dim=-1)
        if f0_hz is not None:
            f0_hz = torch.cat([f0_hz, f0_hz[..., -1:]], dim=-1)
        state = self.initial_state(mel.shape[0], seed, generator)
        audio, _, out = self.render(padded, state, f0_hz)
        return MelNEWTOutput(
            audio[:, hop // 2 : hop // 2 + frames * hop],
            out.pitch_logits[:, :frames],
            out.voicing_logits[:, :frames],
        )

    # ------------------------------------------------------------------------------------------ inference

    def check_mel(self, mel: Tensor) -> Tensor:
        """Validate a user mel: ``(n_mels, F)`` or ``(B, n_mels, F)`` -> ``(B, n_mels, F)`` on the model."""
        mel = torch.as_tensor(mel)
        n_mels = self.config.n_mels
        if mel.dim() == 2:
            mel = mel.unsqueeze(0)
        if mel.dim() != 3 or mel.shape[1] != n_mels or mel.shape[-1] == 0:
            raise ValueError(
                f"mel must be (B, {n_mels}, frames) or ({n_mels}, frames) with at least one frame; "
                f"got shape {tuple(mel.shape)}"
            )
        if not torch.isfinite(mel).all():
            raise ValueError(f"mel must be finite; got {int((~torch.isfinite(mel)).sum())} NaN/inf values")
        param = self.input_conv.weight
        return mel.to(param.device, param.dtype)

    @torch.inference_mode()
    def synthesize(
        self,
        mel: Tensor,
        num_steps: int | None = None,
        generator: torch.Generator | None = None,
        *,
        progress: bool = False,
        seed: int | None = None,
    ) -> Tensor:
        """``mel (B, n_mels, F)`` (natural-log mel of :func:`accelerando.audio.mel_spectrogram`) -> ``(B, F * hop)``.

        ``num_steps`` and ``progress`` are part of the mel-vocoder contract and ignored (MelNEWT is one pass).
        ``seed`` (or a seed drawn from ``generator``) fixes the noise.
        """
        mel = self.check_mel(mel)
        audio = self(mel, seed=seed, generator=generator).audio.float()
        if self.config.envelope_passes:
            audio = match_mel_envelope(
                audio,
                mel.float(),
                self.mel_config,
                self.config.envelope_passes,
                self.config.envelope_max_gain_db,
            )
        return audio

    @property
    def mel_config(self) -> MelConfig:
        """The mel front end this model's mels come from (:class:`accelerando.audio.MelConfig` with its rates)."""
        cfg = self.config
        return MelConfig(sample_rate=cfg.sample_rate, hop_length=cfg.hop_length, n_mels=cfg.n_mels)

    @torch.inference_mode()
    def predict_f0(self, mel: Tensor) -> tuple[Tensor, Tensor]:
        """``(f0_hz (B, F), p_voiced (B, F))`` predicted from ``mel (B, n_mels, F)`` (the control model only)."""
        mel = self.check_mel(mel)
        emb, _, _ = self.encode(mel, self.initial_state(mel.shape[0], seed=0))
        return self.decode_f0(self.pitch_head(emb)), torch.sigmoid(self.voicing_head(emb)[..., 0].float())

    def stream(
        self,
        batch_size: int = 1,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        renderer: Renderer | None = None,
    ) -> MelNEWTStream:
        """A :class:`MelNEWTStream`: push mel chunks, get audio; equal to one :meth:`synthesize` call.

        ``renderer(mel, state) -> (audio, next state)`` replaces :meth:`render` (e.g. a batcher that merges
        several streams' blocks into one call, :class:`accelerando.tts.batching.RenderBatcher`)."""
        return MelNEWTStream(self, batch_size=batch_size, seed=seed, generator=generator, renderer=renderer)

    @torch.no_grad()
    def to_fast(self) -> MelNEWT:
        """FastNEWT: a copy whose waveshapers are ``lut_size``-entry lookup tables sampled from this model's."""
        return lookup_table_copy(self)

    def to_trainable(self, steps: int = 4000) -> MelNEWT:
        """The inverse of :meth:`to_fast`: a copy with MLP waveshapers fitted to the lookup tables
        (:func:`~.layers.mlp_copy`), so that training can go on from a shipped FastNEWT checkpoint."""
        return mlp_copy(self, steps=steps)


def fill_unvoiced(f0_hz: Tensor, default_hz: float = 150.0) -> Tensor:
    """``(B, F)`` f0 with 0 where unvoiced -> every frame voiced: gaps interpolated log-linearly between
    their voiced neighbours, held at the ends (``default_hz`` for an item with no voiced frame)."""
    out = f0_hz.clone().float()
    for row in out:
        voiced = torch.nonzero(row > 0)[:, 0]
        if len(voiced) == 0:
            row.fill_(default_hz)
            continue
        log_f0 = torch.log(row[voiced])
        index = torch.arange(len(row), dtype=torch.float32, device=row.device)
        position = torch.searchsorted(voiced.float().contiguous(), index.contiguous()).clamp(
            1, len(voiced) - 1
        )
        if len(voiced) == 1:
            row.fill_(float(row[voiced[0]]))
            continue
        left, right = voiced[position - 1].float(), voiced[position].float()
        weight = ((index - left) / (right - left)).clamp(0.0, 1.0)
        row.copy_(torch.exp(log_f0[position - 1] * (1 - weight) + log_f0[position] * weight))
    return out.to(f0_hz.dtype)


class MelNEWTStream:
    """Block-by-block MelNEWT synthesis: ``push`` mel chunks, then ``finish``; the concatenated audio equals
    one :meth:`MelNEWT.synthesize` call with the same seed (to float tolerance).

    The first ``hop // 2`` rendered samples are dropped (half-hop alignment) and ``finish`` renders the
    last frame once more to emit the final ``hop // 2`` samples. With ``envelope_passes`` in the model's config
    the audio then goes through a streaming :class:`accelerando.audio.MelEnvelopeMatch` (the same passes as
    :meth:`MelNEWT.synthesize`), which holds back its analysis window.

    Args:
        model: the vocoder (``eval()`` mode).
        batch_size: parallel streams.
        seed, generator: fix the noise as in :meth:`MelNEWT.synthesize`.
        renderer: ``(mel, state) -> (audio, next state)`` in place of ``model.render`` (batching).
    """

    def __init__(
        self,
        model: MelNEWT,
        batch_size: int = 1,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        renderer: Renderer | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1; got {batch_size}")
        self.model = model
        self.batch_size = batch_size
        self.state = model.initial_state(batch_size, seed, generator)
        self._render: Renderer = renderer or (lambda mel, state: model.render(mel, state)[:2])
        self._skip = model.config.hop_length // 2
        self._last: Tensor | None = None
        self._finished = False
        cfg = model.config
        self._envelope = (
            MelEnvelopeMatch(model.mel_config, cfg.envelope_passes, cfg.envelope_max_gain_db, batch_size)
            if cfg.envelope_passes
            else None
        )

    @property
    def frames_pushed(self) -> int:
        return self.state.sample_index // self.model.config.hop_length

    @torch.inference_mode()
    def push(self, mel_chunk: Tensor) -> Tensor:
        """The audio ready after ``mel_chunk (B, n_mels, F)`` (``(n_mels, F)`` for one stream): ``(B, S)``."""
        if self._finished:
            raise RuntimeError("this MelNEWTStream is finished; start a new one with model.stream()")
        mel = self.model.check_mel(mel_chunk)
        if mel.shape[0] != self.batch_size:
            raise ValueError(f"this stream has batch_size {self.batch_size}; got a chunk of {mel.shape[0]}")
        audio, self.state = self._render(mel, self.state)
        self._last = mel[..., -1:]
        if self._skip:
            cut = min(self._skip, audio.shape[-1])
            audio, self._skip = audio[:, cut:], self._skip - cut
        if self._envelope is not None:
            return self._envelope.push(audio.float(), mel.float())
        return audio.float()

    @torch.inference_mode()
    def finish(self) -> Tensor:
        """The last ``hop // 2`` samples (renders the last frame once more), and what the envelope matching
        held back; the stream is then over."""
        if self._finished:
            raise RuntimeError("finish() was already called on this MelNEWTStream")
        self._finished = True
        if self._last is None:
            return torch.zeros(self.batch_size, 0)
        audio, self.state = self._render(self._last, self.state)
        audio = audio[:, : self.model.config.hop_length // 2].float()
        if self._envelope is not None:
            return torch.cat(
                [self._envelope.push(audio, self._last[..., :0].float()), self._envelope.finish()], -1
            )
        return audio
