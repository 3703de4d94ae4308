"""PeriodWave and PeriodWave-Turbo: period-aware flow-matching vocoders. See :mod:`.model` and :mod:`.turbo`.

- :class:`PeriodWave` (``model``), presets ``"S"`` / ``"B"`` / ``"L"`` (the paper's) and ``"tiny"``;
- :class:`PeriodWaveTurbo` (``turbo``): the 2- or 4-step adversarially fine-tuned generator;
- layers (``modules``): :func:`period_reshape`, :func:`period_unreshape`, the U-Net and the mel encoder;
- training: ``accelerate launch -m accelerando.vocoders.periodwave.train --help`` (flow matching) and
  ``-m accelerando.vocoders.periodwave.train_turbo`` (Turbo fine-tuning).
"""

from .model import PRESETS, SAMPLERS, PeriodWave
from .modules import period_reshape, period_unreshape
from .turbo import TURBO_STEPS, PeriodWaveTurbo

__all__ = [
    "PRESETS",
    "SAMPLERS",
    "TURBO_STEPS",
    "PeriodWave",
    "PeriodWaveTurbo",
    "period_reshape",
    "period_unreshape",
]
