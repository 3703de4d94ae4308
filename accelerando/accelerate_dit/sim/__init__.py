"""SIM one-step score distillation (arXiv 2410.16794): the distiller, parameterisation adapters, toy, script."""

from accelerando.accelerate_dit.sim.distiller import (
    DISTANCES,
    ESTIMATORS,
    SIMConfig,
    SIMDistiller,
    distance_grad,
    sim_generator_loss,
)
from accelerando.accelerate_dit.sim.score import (
    PREDICTIONS,
    SUPPORTED_DIFFUSERS_MODELS,
    ScoreModel,
    as_score_model,
)

__all__ = [
    "DISTANCES",
    "ESTIMATORS",
    "PREDICTIONS",
    "SIMConfig",
    "SIMDistiller",
    "SUPPORTED_DIFFUSERS_MODELS",
    "ScoreModel",
    "as_score_model",
    "distance_grad",
    "sim_generator_loss",
]
