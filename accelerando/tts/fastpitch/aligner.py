"""Learned text-to-mel alignment ("One TTS Alignment to Rule Them All", Badlani et al., 2022).

The alignment encoder scores every (mel frame, text token) pair by a negative scaled L2 distance
between convolutional projections of the mel and of the text embeddings, adds a beta-binomial
prior, and normalizes over tokens. Training uses

- :class:`ForwardSumLoss`: the CTC forward algorithm sums the probability of every monotonic
  alignment (each token used at least once, in order);
- :class:`BinLoss`: pulls the soft alignment towards its hard (most likely monotonic) path found by
  monotonic alignment search (:func:`monotonic_alignment_search`), weighted in with a warm-up.

Durations for FastPitch are the column sums of the hard alignment, so no external aligner is used.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "AlignmentEncoder",
    "BinLoss",
    "ForwardSumLoss",
    "average_per_token",
    "beta_binomial_prior",
    "monotonic_alignment_search",
]


class AlignmentEncoder(nn.Module):
    """Soft alignment between mel frames (queries) and text embeddings (keys).

    Args:
        n_mels: mel channels of the queries.
        n_text: channels of the text embeddings (the model's ``d_model``).
        n_att: channels of the shared space the L2 distance is measured in.
        temperature: scale of the negative squared distance (0.0005 as in RAD-TTS / FastPitch 1.1).
    """

    def __init__(self, n_mels: int = 80, n_text: int = 384, n_att: int = 80, temperature: float = 0.0005):
        super().__init__()
        self.temperature = temperature
        self.key_proj = nn.Sequential(
            nn.Conv1d(n_text, 2 * n_text, 3, padding=1), nn.ReLU(), nn.Conv1d(2 * n_text, n_att, 1)
        )
        self.query_proj = nn.Sequential(
            nn.Conv1d(n_mels, 2 * n_mels, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(2 * n_mels, n_mels, 1),
            nn.ReLU(),
            nn.Conv1d(n_mels, n_att, 1),
        )

    def forward(
        self, mel: Tensor, text: Tensor, text_mask: Tensor, attn_prior: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """mel (B, n_mels, T), text (B, n_text, N), text_mask (B, N) bool valid tokens,
        attn_prior (B, T, N) probabilities or None → ``(attn_soft, attn_logprob)`` both (B, 1, T, N).

        ``attn_logprob`` is ``log_softmax(-temperature * distance) + log(prior)`` over tokens (before
        the token mask), as in RAD-TTS / FastPitch 1.1: the input of :class:`ForwardSumLoss`.
        ``attn_soft`` is its softmax over the valid tokens.

        The forward-sum must see these normalized, prior-weighted log-probabilities, not the raw
        scaled distances: against the fixed blank score (-1) raw scores have a free overall level,
        and the loss is then lowered by pushing every distance up until the blank takes most frames
        (on a real corpus ~87% blank probability, forward-sum flat at ~3.7 whatever the learning
        rate, attention no sharper than the prior), instead of by aligning.
        """
        keys = self.key_proj(text)  # (B, n_att, N)
        queries = self.query_proj(mel)  # (B, n_att, T)
        dist = (queries[:, :, :, None] - keys[:, :, None, :]).pow(2).sum(1, keepdim=True)  # (B, 1, T, N)
        attn_logprob = F.log_softmax(-self.temperature * dist, dim=3)
        if attn_prior is not None:
            attn_logprob = attn_logprob + torch.log(attn_prior[:, None] + 1e-8)
        attn = attn_logprob.masked_fill(~text_mask[:, None, None, :], float("-inf"))
        return torch.softmax(attn, dim=3), attn_logprob


class ForwardSumLoss(nn.Module):
    """CTC-style forward-sum loss over all monotonic alignments (a blank column with ``blank_logprob``)."""

    def __init__(self, blank_logprob: float = -1.0) -> None:
        super().__init__()
        self.blank_logprob = blank_logprob
        self.ctc = nn.CTCLoss(zero_infinity=True)

    def forward(self, attn_logprob: Tensor, text_lens: Tensor, mel_lens: Tensor) -> Tensor:
        """attn_logprob (B, 1, T, N) the aligner's token log-probabilities (prior included, see
        :meth:`AlignmentEncoder.forward`), text_lens (B,), mel_lens (B,) → scalar (mean over the batch
        of the per-token CTC cost)."""
        logprob = F.pad(attn_logprob, (1, 0), value=self.blank_logprob)  # (B, 1, T, N + 1), blank = 0
        total = attn_logprob.new_zeros(())
        for b in range(logprob.shape[0]):
            n, t = int(text_lens[b]), int(mel_lens[b])
            target = torch.arange(1, n + 1, device=logprob.device)[None]  # (1, n)
            lp = logprob[b, :, :t, : n + 1].permute(1, 0, 2)  # (t, 1, n + 1)
            lp = lp.log_softmax(-1)
            total = total + self.ctc(lp, target, torch.tensor([t]), torch.tensor([n]))
        return total / logprob.shape[0]


class BinLoss(nn.Module):
    """Binarization loss: mean negative log of the soft alignment on the hard path."""

    def forward(self, hard: Tensor, soft: Tensor) -> Tensor:
        """hard, soft (B, 1, T, N) → scalar."""
        on_path = hard == 1
        return -torch.log(soft[on_path].clamp(min=1e-12)).sum() / hard.sum().clamp(min=1)


@torch.no_grad()
def monotonic_alignment_search(attn: Tensor, text_lens: Tensor, mel_lens: Tensor) -> Tensor:
    """Most likely monotonic path (each frame → one token, tokens in order, none skipped).

    Dynamic programming over frames, vectorized over batch and tokens (torch), then a backtrack
    on the CPU. attn (B, 1, T, N)
    probabilities → hard (B, 1, T, N) of 0/1, zero outside the lengths.
    """
    b, _, t_max, n_max = attn.shape
    logp = torch.log(attn[:, 0].float().clamp(min=1e-12))  # (B, T, N)
    neg = torch.finfo(torch.float32).min / 4
    n_idx = torch.arange(n_max, device=attn.device)
    valid_n = n_idx[None] < text_lens[:, None]  # (B, N)
    score = torch.full((b, n_max), neg, device=attn.device)
    score[:, 0] = logp[:, 0, 0]
    came_from_prev = torch.zeros(b, t_max, n_max, dtype=torch.bool, device=attn.device)
    for t in range(1, t_max):
        shifted = F.pad(score[:, :-1], (1, 0), value=neg)  # score of token j - 1 at t - 1
        take_prev = shifted > score
        came_from_prev[:, t] = take_prev
        score = torch.where(take_prev, shifted, score) + logp[:, t]
        score = torch.where(valid_n, score, torch.full_like(score, neg))
    # The backtrack is a short scalar walk: do it on the CPU (one transfer, no per-step syncs).
    came = came_from_prev.cpu().numpy()
    hard = np.zeros((b, t_max, n_max), dtype=np.float32)
    for i in range(b):
        j = int(text_lens[i]) - 1
        for t in range(int(mel_lens[i]) - 1, -1, -1):
            hard[i, t, j] = 1.0
            if j > 0 and (came[i, t, j] or j >= t):
                j -= 1
    return torch.from_numpy(hard)[:, None].to(device=attn.device, dtype=attn.dtype)


def beta_binomial_prior(n_text: int, n_mel: int, scaling: float = 1.0) -> Tensor:
    """Beta-binomial alignment prior (RAD-TTS): (n_mel, n_text) probabilities, each row sums to 1.

    Row i (1-based) is BetaBinomial(k; n = n_text - 1, a = scaling * i, b = scaling * (n_mel + 1 - i)).
    """
    k = torch.arange(n_text, dtype=torch.float64)[None]  # (1, N)
    i = torch.arange(1, n_mel + 1, dtype=torch.float64)[:, None]  # (T, 1)
    a, bb, n = scaling * i, scaling * (n_mel + 1 - i), float(n_text - 1)

    def log_beta(x: Tensor, y: Tensor) -> Tensor:
        return torch.lgamma(x) + torch.lgamma(y) - torch.lgamma(x + y)

    log_comb = torch.lgamma(torch.tensor(n + 1)) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)
    logp = log_comb + log_beta(k + a, n - k + bb) - log_beta(a, bb)
    return logp.exp().float()


def average_per_token(values: Tensor, durations: Tensor) -> Tensor:
    """Mean of frame values over each token's frames, ignoring zeros (unvoiced pitch).

    values (B, T), durations (B, N) integer frames → (B, N); 0 where a token has no nonzero frame.
    """
    ends = durations.long().cumsum(1)  # (B, N)
    starts = F.pad(ends[:, :-1], (1, 0))
    csum = F.pad(values.cumsum(1), (1, 0))  # (B, T + 1)
    cnt = F.pad((values != 0).float().cumsum(1), (1, 0))
    t = values.shape[1]
    ends, starts = ends.clamp(max=t), starts.clamp(max=t)
    total = csum.gather(1, ends) - csum.gather(1, starts)
    count = cnt.gather(1, ends) - cnt.gather(1, starts)
    return torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total))
