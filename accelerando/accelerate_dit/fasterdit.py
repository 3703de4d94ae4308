"""The FasterDiT training recipe (arXiv 2410.10356), re-exported from the core module :mod:`accelerando.fasterdit`.

It lives in the core layer so that models' training scripts (MelDiT, and flow vocoders) can use it without
depending on the DiT plugins; this documented import path keeps working.
"""

from accelerando.fasterdit import (
    TIMESTEP_SAMPLERS,
    FasterDiTRecipe,
    cosmap_timesteps,
    fasterdit_loss,
    log_snr,
    logit_normal_timesteps,
    mode_timesteps,
    plot_snr_pdf,
    sample_timesteps,
    snr_pdf,
    timestep_density,
    uniform_timesteps,
    velocity_direction_loss,
)

__all__ = [
    "TIMESTEP_SAMPLERS",
    "FasterDiTRecipe",
    "cosmap_timesteps",
    "fasterdit_loss",
    "log_snr",
    "logit_normal_timesteps",
    "mode_timesteps",
    "plot_snr_pdf",
    "sample_timesteps",
    "snr_pdf",
    "timestep_density",
    "uniform_timesteps",
    "velocity_direction_loss",
]
