"""Layers of neural waveshaping synthesis (NEWT; Hayes, Saitis & Fazekas, ISMIR 2021, arXiv 2107.05050).

Every layer here is causal and carries its own state explicitly, so :class:`~.model.NEWT` renders a
signal in one call or block by block with the same code (see :mod:`.streaming`):

- :func:`causal_upsample`: frame rate -> sample rate, a linear ramp from the previous frame's value to
  the current one (so sample ``t`` depends on frames ``<= t // hop`` only);
- :func:`hash_uniform`: counter-based uniform noise in ``[-1, 1)``, a pure function of (key, sample
  index), so a stream draws exactly the samples a one-shot call draws, on any device;
- :class:`HarmonicOscillator`: ``n_harmonics`` sines with an anti-aliasing mask, phase carried in float64;
- :class:`Waveshaper` (the trainable shaping function, a grouped 1x1-conv MLP with sine activations),
  :class:`LookupWaveshaper` (FastNEWT's lookup table) and :class:`NEWTBank` (FiLM index -> shaper ->
  FiLM normaliser -> mix to one channel);
- :class:`FilteredNoise`: DDSP-style FIR-filtered noise, one zero-phase band response per frame;
- :class:`LearnableReverb`: a learnable impulse response convolved causally, with an explicit dry path.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_MASK32 = 0xFFFFFFFF


def _mul32(x: Tensor, c: int) -> Tensor:
    """``(x * c) mod 2**32`` for int64 ``x`` in ``[0, 2**32)`` without int64 overflow (16-bit halves)."""
    lo, hi = x & 0xFFFF, x >> 16
    return (lo * c + (((hi * c) & 0xFFFF) << 16)) & _MASK32


def hash32(x: Tensor) -> Tensor:
    """The "lowbias32" integer hash (C. Wellons) on int64 tensors holding 32-bit values."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def seed_keys(seed: int, batch_size: int, device: torch.device | str | None = None) -> Tensor:
    """One 32-bit key per batch item derived from ``seed``: ``(B,)`` int64."""
    base = hash32(torch.tensor([seed & _MASK32], dtype=torch.int64, device=device))
    items = torch.arange(batch_size, dtype=torch.int64, device=device)
    return hash32(base + _mul32(items, 0x9E3779B9))


def hash_uniform(keys: Tensor, start: int, length: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Uniform noise in ``[-1, 1)`` for samples ``start .. start + length - 1``: ``(B,) -> (B, length)``.

    Sample ``n`` of item ``b`` is ``hash32(hash32(n + keys[b]))``, so any split of ``[0, N)`` into blocks
    draws exactly the same values as one call (the streaming contract).
    """
    index = torch.arange(start, start + length, dtype=torch.int64, device=keys.device)  # (T,)
    bits = hash32(hash32(index.unsqueeze(0) + keys.unsqueeze(1)))  # (B, T)
    return (bits.to(torch.float64) * (2.0 / 2**32) - 1.0).to(dtype)


def causal_upsample(frames: Tensor, previous: Tensor, hop: int) -> Tensor:
    """Linear interpolation from the previous frame: ``(B, C, F)`` + ``(B, C)`` -> ``(B, C, F * hop)``.

    Sample ``j`` of frame ``i`` is ``x[i-1] + (x[i] - x[i-1]) * (j + 1) / hop`` with ``x[-1] = previous``,
    so the last sample of a frame equals the frame value and nothing looks ahead: a stream reproduces it
    by carrying the last frame of the previous block.
    """
    shifted = torch.cat([previous.unsqueeze(-1), frames[..., :-1]], dim=-1)  # (B, C, F)
    ramp = torch.arange(1, hop + 1, device=frames.device, dtype=frames.dtype) / hop  # (hop,)
    samples = shifted.unsqueeze(-1) + (frames - shifted).unsqueeze(-1) * ramp  # (B, C, F, hop)
    return samples.flatten(-2)


def fft_size(n: int) -> int:
    """The next power of two ``>= n``."""
    return 1 << max(0, math.ceil(math.log2(n)))


class MLP(nn.Module):
    """NEWT's time-distributed MLP on ``(B, F, C)``: ``depth`` linear layers, LayerNorm + LeakyReLU between."""

    def __init__(self, in_size: int, hidden_size: int, out_size: int, depth: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            layers.append(
                nn.Linear(in_size if i == 0 else hidden_size, out_size if i == depth - 1 else hidden_size)
            )
            if i < depth - 1:
                layers += [nn.LayerNorm(hidden_size), nn.LeakyReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:  # (B, F, in_size) -> (B, F, out_size)
        return self.net(x)


class HarmonicOscillator(nn.Module):
    """``n_harmonics`` sines at integer multiples of f0, zeroed above Nyquist (NEWT's exciter source).

    The fundamental's phase (in cycles) is accumulated in float64 and wrapped to ``[0, 1)``, so it stays
    exact over long streams; harmonic ``k`` has phase ``k * phase + initial_phase[k]``. The paper draws the
    initial phases at random on every call; here they are an input, derived from the synthesis seed.
    """

    def __init__(self, n_harmonics: int, sample_rate: int) -> None:
        super().__init__()
        self.n_harmonics = n_harmonics
        self.sample_rate = sample_rate

    def forward(self, f0_hz: Tensor, phase: Tensor, initial_phase: Tensor) -> tuple[Tensor, Tensor]:
        """``f0_hz (B, T)``, ``phase (B,)`` float64 cycles, ``initial_phase (B, K)`` cycles ->
        ``(harmonics (B, K, T), end phase (B,))``."""
        cycles = phase.unsqueeze(-1) + torch.cumsum(
            f0_hz.to(torch.float64) / self.sample_rate, dim=-1
        )  # (B, T)
        cycles = torch.remainder(cycles, 1.0)
        k = torch.arange(1, self.n_harmonics + 1, device=f0_hz.device, dtype=f0_hz.dtype)  # (K,)
        harmonic_phase = k[:, None] * cycles.to(f0_hz.dtype).unsqueeze(1) + initial_phase.unsqueeze(-1)
        harmonic_phase = torch.remainder(harmonic_phase, 1.0)  # (B, K, T)
        alias_free = k[:, None] * f0_hz.unsqueeze(1) < self.sample_rate / 2  # (B, K, T)
        return torch.sin(2 * math.pi * harmonic_phase) * alias_free, cycles[:, -1]


class FiLM(nn.Module):
    """Feature-wise linear modulation ``gamma * x + beta`` (Perez et al. 2018)."""

    def forward(self, x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        return gamma * x + beta


class Sine(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(x)


class Waveshaper(nn.Module):
    """``channels`` independent shaping functions, each a scalar MLP with sine activations.

    A grouped 1x1-conv stack (``depth`` layers, ``width`` hidden units per shaper) behind a learnable
    per-shaper input scale (initialised ``N(0, 10^2)`` as in the reference code): 170 parameters per
    shaper at width 8, depth 4. ``(B, C, T) -> (B, C, T)``, output in ``[-1, 1]``.
    """

    def __init__(self, channels: int, width: int, depth: int) -> None:
        super().__init__()
        self.input_scale = nn.Parameter(torch.randn(1, channels, 1) * 10)
        layers: list[nn.Module] = []
        for i in range(depth):
            c_in = channels if i == 0 else channels * width
            c_out = channels if i == depth - 1 else channels * width
            layers += [nn.Conv1d(c_in, c_out, 1, groups=channels), Sine()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T) -> (B, C, T)
        # The grouped 1x1 convolutions run as one batched matmul per layer (same weights and maths as
        # ``self.net``): PyTorch's CPU grouped convolution loops over the 64 groups and is ~10x slower.
        channels = self.input_scale.shape[1]
        batch, _, length = x.shape
        h = (self.input_scale * x).unsqueeze(2)  # (B, C, 1, T)
        for layer in self.net:
            if isinstance(layer, nn.Conv1d):
                weight = layer.weight.view(channels, -1, layer.weight.shape[1])  # (C, out/C, in/C)
                h = torch.matmul(weight, h) + layer.bias.view(channels, -1, 1)
            else:
                h = layer(h)
        return h.reshape(batch, channels, length)

    @torch.no_grad()
    def sample_table(self, size: int, value_range: float) -> Tensor:
        """Evaluate every shaper on ``size`` evenly spaced inputs over ``[-range, range]``: ``(C, size)``."""
        channels = self.input_scale.shape[1]
        x = torch.linspace(-value_range, value_range, size, device=self.input_scale.device)
        return self(x.to(self.input_scale.dtype).expand(1, channels, size))[0]


class LookupWaveshaper(nn.Module):
    """FastNEWT's shaper: per-channel lookup table over ``[-range, range]``, linear interpolation.

    Inputs outside the range are clamped to the table's ends (as in the reference FastNEWT). The table is a
    persistent buffer, so it is saved with the model. ``(B, C, T) -> (B, C, T)``.
    """

    def __init__(self, channels: int, size: int, value_range: float) -> None:
        super().__init__()
        self.value_range = value_range
        self.register_buffer("table", torch.zeros(channels, size))

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T) -> (B, C, T)
        size = self.table.shape[-1]
        r = self.value_range
        position = (x.clamp(-r, r) + r) * ((size - 1) / (2 * r))  # (B, C, T) in [0, size - 1]
        lower = position.floor().clamp(max=size - 2)
        fraction = position - lower
        lower = lower.long()
        table = self.table.to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)  # (B, C, size)
        below = torch.gather(table, 2, lower)
        above = torch.gather(table, 2, lower + 1)
        return below + (above - below) * fraction


class NEWTBank(nn.Module):
    """A bank of neural waveshapers: ``mixer(gamma_n * shaper(gamma_i * exciter + beta_i) + beta_n)``.

    ``exciter (B, C, T)`` and ``film (B, 4C, T)`` (gamma/beta of the index, gamma/beta of the normaliser)
    -> ``(B, T)``. With ``use_lookup_table`` the shaper is a :class:`LookupWaveshaper` (FastNEWT).
    """

    def __init__(
        self,
        channels: int,
        width: int,
        depth: int,
        use_lookup_table: bool = False,
        lut_size: int = 4096,
        lut_range: float = 3.0,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.index = FiLM()
        self.shaper: nn.Module = (
            LookupWaveshaper(channels, lut_size, lut_range)
            if use_lookup_table
            else Waveshaper(channels, width, depth)
        )
        self.normaliser = FiLM()
        self.mixer = nn.Conv1d(channels, 1, 1)

    def forward(self, exciter: Tensor, film: Tensor) -> Tensor:  # (B, C, T), (B, 4C, T) -> (B, T)
        gamma_index, beta_index, gamma_norm, beta_norm = torch.split(film, self.channels, dim=1)
        x = self.index(exciter, gamma_index, beta_index)
        x = self.shaper(x)
        x = self.normaliser(x, gamma_norm, beta_norm)
        return self.mixer(x)[:, 0]


class FilteredNoise(nn.Module):
    """DDSP-style filtered noise: each frame's ``hop`` noise samples convolved with that frame's FIR.

    The FIR is the zero-phase response of the predicted real band gains (``irfft`` to ``ir_length``
    samples), rolled by ``ir_length // 2`` and Hann-windowed: linear phase, ``ir_length // 2`` samples of
    delay, and causal. The frames are overlap-added; the last ``ir_length - 1`` samples spill into the
    next block as ``tail``. ``bands (B, F, K)``, ``noise (B, F * hop)``, ``tail (B, ir_length - 1)`` ->
    ``(audio (B, F * hop), tail)``.
    """

    def __init__(self, ir_length: int, hop: int) -> None:
        super().__init__()
        self.ir_length = ir_length
        self.hop = hop
        self.register_buffer("window", torch.hann_window(ir_length), persistent=False)

    def forward(self, bands: Tensor, noise: Tensor, tail: Tensor) -> tuple[Tensor, Tensor]:
        batch, frames, _ = bands.shape
        ir = torch.fft.irfft(bands, n=self.ir_length)  # (B, F, ir_length), zero phase
        ir = torch.roll(ir, self.ir_length // 2, dims=-1) * self.window.to(ir.dtype)
        frame_length = self.hop + self.ir_length - 1
        n_fft = fft_size(frame_length)
        segments = noise.view(batch, frames, self.hop)  # (B, F, hop)
        spectrum = torch.fft.rfft(segments, n=n_fft) * torch.fft.rfft(ir, n=n_fft)
        filtered = torch.fft.irfft(spectrum, n=n_fft)[..., :frame_length]  # (B, F, frame_length)
        total = frames * self.hop + self.ir_length - 1
        out = F.fold(
            filtered.transpose(1, 2),
            output_size=(1, total),
            kernel_size=(1, frame_length),
            stride=(1, self.hop),
        )[:, 0, 0]  # (B, total)
        out = out + F.pad(tail, (0, total - tail.shape[-1]))
        return out[:, : frames * self.hop], out[:, frames * self.hop :]


class LearnableReverb(nn.Module):
    """A learnable impulse response of ``length`` samples (2 s at 16 kHz), applied causally.

    ``y = x + x * h`` where ``h = [0, ir]``: the dry signal passes unchanged and the ``length - 1`` learnable
    taps start one sample later (as in the reference code, initialised ``N(0, 1e-12)``). The convolution is
    an FFT convolution whose last ``length - 1`` samples are carried as ``tail`` into the next block.
    ``x (B, T)``, ``tail (B, length - 1)`` -> ``(y (B, T), tail)``.
    """

    def __init__(self, length: int) -> None:
        super().__init__()
        self.ir = nn.Parameter(torch.randn(length - 1) * 1e-6)

    def forward(self, x: Tensor, tail: Tensor) -> tuple[Tensor, Tensor]:
        length = x.shape[-1]
        ir = F.pad(self.ir, (1, 0))  # (R,), lag 0 is the dry path
        total = length + ir.shape[-1] - 1
        n_fft = fft_size(total)
        wet = torch.fft.irfft(torch.fft.rfft(x, n=n_fft) * torch.fft.rfft(ir, n=n_fft), n=n_fft)[..., :total]
        out = wet + F.pad(x, (0, total - length)) + F.pad(tail, (0, total - tail.shape[-1]))
        return out[:, :length], out[:, length:]


@torch.no_grad()
def lookup_table_copy(model: nn.Module) -> nn.Module:
    """FastNEWT of a NEWT-family model: a copy (same class and config, ``use_lookup_table=True``) whose
    waveshapers (``model.newt``, a :class:`NEWTBank`) are ``lut_size``-entry tables sampled from the trained
    shapers over ``[-lut_range, lut_range]``; every other weight is copied. A model that already uses tables,
    or has no waveshaper bank, is copied as it is. The copy is on the model's device and dtype, in its mode.
    """
    config = model.config
    fast = type(model).from_config(config, use_lookup_table=True)
    param = next(model.parameters())
    nn.Module.to(fast, param.device, param.dtype)  # diffusers' .to warns on any dtype argument
    bank = getattr(model, "newt", None)
    if config.use_lookup_table or bank is None:
        fast.load_state_dict(model.state_dict())
    else:
        shared = {k: v for k, v in model.state_dict().items() if not k.startswith("newt.shaper.")}
        missing, unexpected = fast.load_state_dict(shared, strict=False)
        if missing != ["newt.shaper.table"] or unexpected:
            raise RuntimeError(
                f"to_fast: unexpected weight layout (missing {missing}, unexpected {unexpected})"
            )
        fast.newt.shaper.table.copy_(bank.shaper.sample_table(config.lut_size, config.lut_range))
    return fast.train(model.training)


def mlp_copy(model: nn.Module, steps: int = 4000, learning_rate: float = 3e-3, seed: int = 0) -> nn.Module:
    """The inverse of :func:`lookup_table_copy`: a trainable copy (``use_lookup_table=False``) of a FastNEWT.

    Every weight but the tables is copied; each waveshaper MLP is fitted to its table (Adam, full batch of
    the ``lut_size`` table points, ``steps`` steps; about 30 s on one CPU thread, root-mean-square error
    about 1% of the table's range). Training can then go on from a shipped lookup-table checkpoint. A model
    that already has MLP shapers is copied as it is. The copy is on the model's device and dtype, in its mode.
    """
    config = model.config
    slow = type(model).from_config(config, use_lookup_table=False)
    param = next(model.parameters())
    nn.Module.to(slow, param.device, param.dtype)
    if not config.use_lookup_table:
        slow.load_state_dict(model.state_dict())
        return slow.train(model.training)
    shared = {k: v for k, v in model.state_dict().items() if k != "newt.shaper.table"}
    missing, unexpected = slow.load_state_dict(shared, strict=False)
    if unexpected or not all(k.startswith("newt.shaper.") for k in missing):
        raise RuntimeError(f"mlp_copy: unexpected weight layout (missing {missing}, unexpected {unexpected})")
    table = model.newt.shaper.table.detach()  # (C, size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # a fresh, reproducible initialisation of the shapers
        fresh = Waveshaper(config.n_waveshapers, config.shaper_width, config.shaper_depth)
    shaper = slow.newt.shaper
    shaper.load_state_dict(fresh.state_dict())
    size, value_range = table.shape[-1], float(config.lut_range)
    x = torch.linspace(-value_range, value_range, size, device=table.device, dtype=param.dtype)
    x = x.expand(1, table.shape[0], size)
    optimizer = torch.optim.Adam(shaper.parameters(), lr=learning_rate)
    with torch.enable_grad():
        for _ in range(steps):
            loss = (shaper(x)[0] - table).pow(2).mean(-1).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return slow.train(model.training)
