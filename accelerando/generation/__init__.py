"""generation: MelDiT, a rectified-flow diffusion transformer for instrument notes, its pipeline and samplers."""

from accelerando.generation.classifier import NoteClassifier, note_metrics
from accelerando.generation.instruments import GM_PROGRAM_NAMES, program_from_name
from accelerando.generation.mel_dit import (
    NULL_LABEL,
    PRESETS,
    MelDiT,
    MelDiTBlock,
    patchify,
    rectified_flow_loss,
    unpatchify,
)
from accelerando.generation.pipeline import MelDiTPipeline, MelDiTPipelineOutput
from accelerando.generation.sampling import (
    flow_model_wrapper,
    get_sigmas_shifted,
    get_sigmas_uniform,
    sample_euler,
    sample_fireflow,
    sample_heun,
    sample_midpoint,
    sample_rf_solver,
)

__all__ = [
    "NoteClassifier",
    "note_metrics",
    "GM_PROGRAM_NAMES",
    "NULL_LABEL",
    "PRESETS",
    "MelDiT",
    "MelDiTBlock",
    "MelDiTPipeline",
    "MelDiTPipelineOutput",
    "flow_model_wrapper",
    "get_sigmas_shifted",
    "get_sigmas_uniform",
    "patchify",
    "program_from_name",
    "rectified_flow_loss",
    "sample_euler",
    "sample_fireflow",
    "sample_heun",
    "sample_midpoint",
    "sample_rf_solver",
    "unpatchify",
]
