"""FreGrad: a wavelet-domain diffusion vocoder (ICASSP 2024). See :mod:`.model`.

- :class:`FreGrad` (``model``), its presets ``"paper"`` / ``"small"``;
- schedules (``schedule``): :func:`get_schedule`, :func:`rescale_zero_terminal_snr`;
- the frequency-wise prior (``prior``): :func:`compute_band_std`, :func:`compute_energy_stats`;
- training: ``accelerate launch -m accelerando.vocoders.fregrad.train --help``.
"""

from .model import PRESETS, FreGrad
from .prior import compute_band_std, compute_energy_stats
from .schedule import FAST_SCHEDULE_STEPS, default_training_betas, get_schedule, rescale_zero_terminal_snr

__all__ = [
    "FAST_SCHEDULE_STEPS",
    "PRESETS",
    "FreGrad",
    "compute_band_std",
    "compute_energy_stats",
    "default_training_betas",
    "get_schedule",
    "rescale_zero_terminal_snr",
]
