"""The mel-vocoder contract: what the speech engine, the benchmarks and the demo may rely on.

Every mel vocoder (FreGrad, PeriodWave, PeriodWave-Turbo, MelNEWT, Griffin-Lim, the PriorGrad baseline)
implements :class:`MelVocoder`:

- ``sample_rate`` and ``hop_length`` (samples per mel frame);
- ``synthesize(mel, num_steps=None, generator=None, *, progress=False) -> (B, frames * hop_length)``:
  ``mel`` is the natural-log mel of :func:`accelerando.audio.mel_spectrogram`, ``(B, n_mels, frames)`` or
  ``(n_mels, frames)``; ``num_steps=None`` is the model's own default (ignored by one-pass vocoders);
  ``generator`` makes stochastic vocoders reproducible; ``progress`` shows a progress bar for long sampling.

A vocoder that also streams natively sets ``streams_mel = True`` and has ``stream(seed=None, generator=None)``
returning an object with ``push(mel_chunk)`` and ``finish()`` (see :class:`accelerando.vocoders.MelNEWT`).

Example::

    from accelerando.vocoders import GriffinLim
    from accelerando.vocoders.contract import MelVocoder

    assert isinstance(GriffinLim(), MelVocoder)  # structural: no base class needed
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = ["ConfigRates", "MelVocoder"]


@runtime_checkable
class MelVocoder(Protocol):
    """Structural type of a mel vocoder (see the module docstring)."""

    @property
    def sample_rate(self) -> int: ...

    @property
    def hop_length(self) -> int: ...

    def synthesize(
        self,
        mel: Tensor,
        num_steps: int | None = None,
        generator: torch.Generator | None = None,
        *,
        progress: bool = False,
    ) -> Tensor: ...


class ConfigRates:
    """``sample_rate`` and ``hop_length`` read from a diffusers-style ``config`` (mixed into the models)."""

    @property
    def sample_rate(self) -> int:
        return int(self.config.sample_rate)  # type: ignore[attr-defined]

    @property
    def hop_length(self) -> int:
        return int(self.config.hop_length)  # type: ignore[attr-defined]
