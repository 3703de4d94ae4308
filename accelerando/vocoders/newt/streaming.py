"""Block-by-block NEWT synthesis whose concatenated output equals one-shot synthesis.

NEWT is causal end to end (GRU, per-frame MLPs, upsampling from the previous frame, oscillator, FIR noise,
reverb), so a stream only has to carry what crosses a block boundary, all held in a
:class:`~.model.NEWTState`: the GRU hidden state, the last control frame (f0 and FiLM parameters) for
the upsampling ramp, the fundamental's phase (float64 cycles; harmonic ``k`` is ``k * phase`` plus its
fixed initial offset), the absolute sample index that keys the counter-based noise, and the tails of the
noise-filter overlap-add and of the reverb convolution.

Example::

    import torch
    from accelerando.vocoders import NEWT

    model = NEWT().eval()
    f0, loudness = torch.full((1, 100), 220.0), torch.full((1, 100), 0.5)
    stream = model.stream(batch_size=1, seed=0)
    chunks = [stream.process(f0[:, i : i + 10], loudness[:, i : i + 10]) for i in range(0, 100, 10)]
    # torch.cat(chunks, -1) matches model.synthesize(f0, loudness, seed=0) to float tolerance
"""

from __future__ import annotations

import torch
from torch import Tensor

from .model import NEWT, NEWTState

__all__ = ["NEWTStream"]


class NEWTStream:
    """Stateful streaming synthesis with a :class:`~.model.NEWT` (or FastNEWT) model.

    Args:
        model: the synthesiser; put it in ``eval()`` mode.
        batch_size: number of parallel streams ``B``.
        seed: fixes noise and initial phases, as in :meth:`NEWT.synthesize` (``None``: drawn from
            ``generator`` or torch's RNG).
        generator: used to draw the seed when ``seed`` is ``None``.
    """

    def __init__(
        self,
        model: NEWT,
        batch_size: int = 1,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1; got {batch_size}")
        self.model = model
        self.batch_size = batch_size
        self.state: NEWTState = model.initial_state(batch_size, seed, generator)

    @property
    def samples_emitted(self) -> int:
        """Samples produced so far (per stream)."""
        return self.state.sample_index

    def reset(self, seed: int | None = None, generator: torch.Generator | None = None) -> None:
        """Start over from silence (new seed when given)."""
        self.state = self.model.initial_state(self.batch_size, seed, generator)

    @torch.inference_mode()
    def process(self, f0_block: Tensor, loudness_block: Tensor) -> Tensor:
        """Synthesise the next block: ``(B, frames)`` controls -> ``(B, frames * control_hop)`` audio.

        Unbatched ``(frames,)`` blocks are accepted when ``batch_size == 1`` and return ``(samples,)``.
        """
        f0, loudness, unbatched = self.model.check_controls(f0_block, loudness_block)
        if f0.shape[0] != self.batch_size:
            raise ValueError(
                f"this stream has batch_size {self.batch_size}; got a block of {f0.shape[0]} items"
            )
        audio, self.state = self.model.render(f0, loudness, self.state)
        return audio[0] if unbatched else audio
