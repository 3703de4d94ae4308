"""Aligner: beta-binomial prior, monotonic alignment search, forward-sum and binarization losses."""

from __future__ import annotations

import torch

from accelerando.tts.fastpitch import (
    AlignmentEncoder,
    BinLoss,
    ForwardSumLoss,
    beta_binomial_prior,
    monotonic_alignment_search,
)
from accelerando.tts.fastpitch.aligner import average_per_token


def test_beta_binomial_prior_rows_are_distributions() -> None:
    prior = beta_binomial_prior(n_text=6, n_mel=20)
    assert prior.shape == (20, 6)
    torch.testing.assert_close(prior.sum(1), torch.ones(20))
    assert prior[0].argmax() == 0 and prior[-1].argmax() == 5  # diagonal-ish


def test_mas_is_monotonic_and_covers_every_frame() -> None:
    torch.manual_seed(0)
    attn = torch.softmax(torch.randn(2, 1, 15, 6), dim=-1)
    hard = monotonic_alignment_search(attn, torch.tensor([6, 4]), torch.tensor([15, 9]))
    assert hard.shape == attn.shape
    for b, (n, t) in enumerate([(6, 15), (4, 9)]):
        h = hard[b, 0]
        assert torch.equal(h[:t].sum(1), torch.ones(t))  # one token per frame
        assert h[t:].sum() == 0 and h[:, n:].sum() == 0
        tokens = h[:t].argmax(1)
        steps = tokens[1:] - tokens[:-1]
        assert tokens[0] == 0 and tokens[-1] == n - 1 and set(steps.tolist()) <= {0, 1}


def test_mas_finds_the_obvious_path() -> None:
    path = torch.tensor([0, 0, 1, 2, 2, 2, 3])
    attn = torch.full((1, 1, 7, 4), 0.01)
    attn[0, 0, torch.arange(7), path] = 0.97
    hard = monotonic_alignment_search(attn, torch.tensor([4]), torch.tensor([7]))
    assert torch.equal(hard[0, 0].argmax(1), path)


def test_forward_sum_decreases_on_a_toy() -> None:
    torch.manual_seed(0)
    enc = AlignmentEncoder(n_mels=8, n_text=16, n_att=8, temperature=0.05)
    text = torch.randn(2, 16, 5)
    mel = torch.randn(2, 8, 20)
    text_mask = torch.tensor([[True] * 5, [True] * 4 + [False]])
    text_lens, mel_lens = torch.tensor([5, 4]), torch.tensor([20, 16])
    prior = torch.zeros(2, 20, 5)
    prior[0] = beta_binomial_prior(5, 20)
    prior[1, :16, :4] = beta_binomial_prior(4, 16)
    fsl, binl = ForwardSumLoss(), BinLoss()
    opt = torch.optim.Adam(enc.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        soft, logprob = enc(mel, text, text_mask, prior)
        loss = fsl(logprob, text_lens, mel_lens)
        hard = monotonic_alignment_search(soft, text_lens, mel_lens)
        b = binl(hard, soft)
        assert torch.isfinite(loss) and torch.isfinite(b) and b >= 0
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert soft.shape == (2, 1, 20, 5) and soft[1, 0, :, 4].max() == 0  # padded token never used
    assert losses[-1] < 0.8 * losses[0]


def test_average_per_token_ignores_unvoiced() -> None:
    values = torch.tensor([[100.0, 0.0, 200.0, 300.0, 0.0, 0.0]])
    durations = torch.tensor([[3, 1, 2]])
    torch.testing.assert_close(average_per_token(values, durations), torch.tensor([[150.0, 300.0, 0.0]]))
