"""accelerate_dit."""

# ToMe token merging, FORA feature caching and their shared hook machinery (tome.py, fora.py, _hooks.py).
from accelerando.accelerate_dit._hooks import remove_acceleration, reset_acceleration_state  # noqa: E402
from accelerando.accelerate_dit.fasterdit import (  # noqa: E402  (FasterDiT training recipe)
    FasterDiTRecipe,
    fasterdit_loss,
    log_snr,
    sample_timesteps,
    snr_pdf,
    velocity_direction_loss,
)
from accelerando.accelerate_dit.fora import FORAConfig, FORAState, apply_fora  # noqa: E402
from accelerando.accelerate_dit.rf_solver import (  # noqa: E402  (RF-Solver, inversion, RF-Edit)
    RFEditConfig,
    RFSolverScheduler,
    ValueSharing,
    rf_edit,
    rf_solver_invert,
)
from accelerando.accelerate_dit.sim import SIMConfig, SIMDistiller  # noqa: E402  (SIM one-step distillation)
from accelerando.accelerate_dit.tome import ToMeConfig, ToMeState, apply_tome  # noqa: E402

__all__ = [
    "FORAConfig",
    "FORAState",
    "RFEditConfig",
    "RFSolverScheduler",
    "ToMeConfig",
    "ToMeState",
    "ValueSharing",
    "apply_fora",
    "apply_tome",
    "remove_acceleration",
    "reset_acceleration_state",
    "rf_edit",
    "rf_solver_invert",
    # FasterDiT
    "FasterDiTRecipe",
    "fasterdit_loss",
    "log_snr",
    "sample_timesteps",
    "snr_pdf",
    "velocity_direction_loss",
    "SIMConfig",
    "SIMDistiller",
]
