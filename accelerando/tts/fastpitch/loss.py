"""The FastPitch 1.1 training loss with the learned aligner's forward-sum and binarization terms."""

from __future__ import annotations

import torch
from torch import Tensor

from .aligner import BinLoss, ForwardSumLoss
from .outputs import FastPitchOutput

__all__ = ["bin_loss_weight", "fastpitch_loss"]

_FORWARD_SUM = ForwardSumLoss()
_BIN = BinLoss()


def bin_loss_weight(step: int, start_step: int, warmup_steps: int, attn_weight: float = 1.0) -> float:
    """0 before ``start_step``, then a linear ramp to ``attn_weight`` over ``warmup_steps``."""
    if step < start_step:
        return 0.0
    return attn_weight * min(1.0, (step - start_step + 1) / max(warmup_steps, 1))


def fastpitch_loss(
    out: FastPitchOutput,
    mel: Tensor,
    step: int = 0,
    bin_loss_start_step: int = 0,
    bin_loss_warmup_steps: int = 1000,
    dur_weight: float = 0.1,
    pitch_weight: float = 0.1,
    energy_weight: float = 0.1,
    attn_weight: float = 1.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Masked mel MSE + weighted MSEs of log(duration + 1), pitch and energy per token
    + ``attn_weight`` × forward-sum + the warmed-up binarization loss (:func:`bin_loss_weight`).

    mel (B, n_mels, T) the target log mel. Returns ``(total, parts)``; ``parts["bin_weight"]``
    is the binarization weight used at ``step``.
    """
    frames = (torch.arange(mel.shape[2], device=mel.device)[None] < out.mel_lens[:, None]).float()
    tokens = torch.arange(out.log_dur_pred.shape[1], device=mel.device)[None] < out.text_lens[:, None]
    tokens = tokens.float()
    mel_loss = ((out.mel - mel) ** 2 * frames[:, None]).sum() / (frames.sum() * mel.shape[1])

    def token_mse(pred: Tensor, target: Tensor) -> Tensor:
        return ((pred - target) ** 2 * tokens).sum() / tokens.sum()

    parts = {
        "mel": mel_loss,
        "duration": token_mse(out.log_dur_pred, torch.log(out.dur_target + 1)),
        "pitch": token_mse(out.pitch_pred, out.pitch_target),
        "forward_sum": _FORWARD_SUM(out.attn_logprob, out.text_lens, out.mel_lens),
        "bin": _BIN(out.attn_hard, out.attn_soft),
    }
    if out.energy_pred is not None and out.energy_target is not None:
        parts["energy"] = token_mse(out.energy_pred, out.energy_target)
    bin_weight = bin_loss_weight(step, bin_loss_start_step, bin_loss_warmup_steps, attn_weight)
    total = (
        mel_loss
        + dur_weight * parts["duration"]
        + pitch_weight * parts["pitch"]
        + energy_weight * parts.get("energy", mel_loss.new_zeros(()))
        + attn_weight * parts["forward_sum"]
        + bin_weight * parts["bin"]
    )
    parts["bin_weight"] = torch.tensor(bin_weight)
    return total, parts
