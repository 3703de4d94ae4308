"""Incremental FastPitch: FastPitch 1.1 + learned aligner + chunk-streaming decoder.

- ``modules``: :class:`FFTBlock`, :class:`ChunkFFTBlock`, :class:`TemporalPredictor`,
  :class:`LengthRegulator`, :func:`chunk_attention_mask`, :func:`dynamic_chunk_masks`.
- ``aligner``: :class:`AlignmentEncoder`, :class:`ForwardSumLoss`, :class:`BinLoss`,
  :func:`monotonic_alignment_search`, :func:`beta_binomial_prior`.
- ``loss``: :func:`fastpitch_loss`, :func:`bin_loss_weight`.
- ``model``: :class:`IncrementalFastPitch` (outputs in ``outputs``).
"""

from .aligner import (
    AlignmentEncoder,
    BinLoss,
    ForwardSumLoss,
    beta_binomial_prior,
    monotonic_alignment_search,
)
from .loss import bin_loss_weight, fastpitch_loss
from .model import PRESETS, EncoderOutput, FastPitchOutput, IncrementalFastPitch
from .modules import (
    ChunkFFTBlock,
    FFTBlock,
    LengthRegulator,
    TemporalPredictor,
    chunk_attention_mask,
    dynamic_chunk_masks,
    regulate_length,
)

__all__ = [
    "PRESETS",
    "AlignmentEncoder",
    "BinLoss",
    "ChunkFFTBlock",
    "EncoderOutput",
    "FFTBlock",
    "FastPitchOutput",
    "ForwardSumLoss",
    "IncrementalFastPitch",
    "LengthRegulator",
    "TemporalPredictor",
    "beta_binomial_prior",
    "bin_loss_weight",
    "chunk_attention_mask",
    "dynamic_chunk_masks",
    "fastpitch_loss",
    "monotonic_alignment_search",
    "regulate_length",
]
