"""Output containers of :class:`IncrementalFastPitch` (encode-once results and training outputs)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

__all__ = ["EncoderOutput", "FastPitchOutput"]


@dataclass
class EncoderOutput:
    """What :meth:`IncrementalFastPitch.encode` computes once per utterance.

    features (B, T, D) decoder inputs; lengths (B,) valid frames; durations (B, N) frames per token
    (after pace); pitch (B, N) normalized predicted pitch; energy (B, N) or None.
    """

    features: Tensor
    lengths: Tensor
    durations: Tensor
    pitch: Tensor
    energy: Tensor | None


@dataclass
class FastPitchOutput:
    """Training outputs of :meth:`IncrementalFastPitch.forward` (shapes in comments)."""

    mel: Tensor  # (B, n_mels, T)
    log_dur_pred: Tensor  # (B, N)
    dur_target: Tensor  # (B, N) frames from the hard alignment
    pitch_pred: Tensor  # (B, N)
    pitch_target: Tensor  # (B, N) normalized
    energy_pred: Tensor | None  # (B, N)
    energy_target: Tensor | None  # (B, N)
    attn_soft: Tensor  # (B, 1, T, N)
    attn_hard: Tensor  # (B, 1, T, N)
    attn_logprob: Tensor  # (B, 1, T, N)
    text_lens: Tensor  # (B,)
    mel_lens: Tensor  # (B,)
