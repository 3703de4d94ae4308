"""Vocoders: mel (or controls) -> waveform.

Every mel vocoder below implements the mel-vocoder contract (:class:`~accelerando.vocoders.contract.MelVocoder`:
``sample_rate``, ``hop_length``, ``synthesize(mel, num_steps=None, generator=None, *, progress=False)``).

- :class:`FreGrad`: wavelet-domain diffusion vocoder (``synthesize(mel, num_steps=None, generator=None)``).
- :class:`PeriodWave`: period-aware flow-matching vocoder (``synthesize(mel, num_steps=16, generator=None)``).
- :class:`PeriodWaveTurbo`: a PeriodWave fine-tuned adversarially into a 2- or 4-step generator
  (``PeriodWaveTurbo.from_periodwave(model, num_steps=4)``, ``synthesize(mel, generator=None)``).
- :class:`NEWT`: neural waveshaping synthesis from f0 + loudness (``synthesize(f0_hz, loudness)``,
  ``to_fast()`` for the lookup-table FastNEWT, ``stream()`` for block-by-block synthesis).
- :class:`MelNEWT`: a mel-conditioned NEWT for speech (harmonic-plus-noise, f0 predicted from the mel;
  ``synthesize(mel)``, ``stream()`` chunk by chunk, ``to_fast()``).
- :class:`GriffinLim`: the training-free reference (mel inversion + fast Griffin-Lim).
"""

from .fregrad import FreGrad
from .griffin_lim import GriffinLim
from .newt import NEWT, MelNEWT
from .periodwave import PeriodWave, PeriodWaveTurbo

__all__ = ["FreGrad", "GriffinLim", "MelNEWT", "NEWT", "PeriodWave", "PeriodWaveTurbo"]
