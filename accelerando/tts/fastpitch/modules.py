"""FastPitch building blocks: FFT blocks (full and chunked), predictors, length regulation, chunk masks.

FastPitch (Łańcucki, 2021) stacks Feed-Forward Transformer blocks: multi-head self-attention and a
two-layer 1-D convolution feed-forward, each followed by a residual add and LayerNorm (post-norm).
Incremental FastPitch (Du et al., 2024, arXiv 2401.01755) makes the decoder's blocks chunk-based:
attention over the current chunk of ``S_c`` frames plus the cached keys/values of the last ``S_p``
frames, and causal convolutions whose state is the last ``kernel - 1`` input frames. Training uses
the same receptive field through a chunk attention mask (:func:`chunk_attention_mask`), static
or drawn at random per utterance (:func:`dynamic_chunk_masks`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ChunkCache",
    "ChunkFFTBlock",
    "ConvFeedForward",
    "FFTBlock",
    "LengthRegulator",
    "MultiHeadAttention",
    "TemporalPredictor",
    "chunk_attention_mask",
    "dynamic_chunk_masks",
    "regulate_length",
    "sinusoidal_embedding",
]


def sinusoidal_embedding(positions: Tensor, dim: int) -> Tensor:
    """Transformer sine/cosine position encoding: ``positions`` (T,) → (T, dim)."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32) / dim))
    angles = positions.float()[:, None] * inv_freq[None, :]  # (T, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def chunk_attention_mask(
    num_frames: int, chunk_size: int, past_size: int, device: torch.device | None = None
) -> Tensor:
    """Boolean (T, T) mask, ``True`` where query frame i may attend key frame j.

    Frame i in chunk ``c = i // chunk_size`` sees every frame of chunk c and the ``past_size``
    frames just before the chunk: ``c * S_c - S_p <= j < (c + 1) * S_c``. This is exactly what the
    chunked decoder sees with its k/v cache of the last ``S_p`` frames.
    """
    if chunk_size < 1 or past_size < 0:
        raise ValueError(f"chunk_size must be >= 1 and past_size >= 0, got {chunk_size} and {past_size}.")
    idx = torch.arange(num_frames, device=device)
    start = (idx // chunk_size) * chunk_size  # (T,) first frame of each query's chunk
    j = idx[None, :]
    return (j >= (start - past_size)[:, None]) & (j < (start + chunk_size)[:, None])


def dynamic_chunk_masks(
    batch_size: int,
    num_frames: int,
    chunk_sizes: tuple[int, ...] = (15, 30, 45, 60),
    past_sizes: tuple[int, ...] = (0, 5, 15, 30),
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Dynamic-mask training: a chunk and past size drawn at random for each utterance.

    Returns ``(masks (B, T, T) bool, chunk (B,), past (B,))``.
    """
    ci = torch.randint(len(chunk_sizes), (batch_size,), generator=generator)
    pi = torch.randint(len(past_sizes), (batch_size,), generator=generator)
    chunk = torch.tensor(chunk_sizes)[ci]
    past = torch.tensor(past_sizes)[pi]
    masks = torch.stack(
        [chunk_attention_mask(num_frames, int(c), int(p), device) for c, p in zip(chunk, past)]
    )
    return masks, chunk, past


@dataclass
class ChunkCache:
    """State a :class:`ChunkFFTBlock` carries from one chunk to the next.

    ``key``/``value``: (B, H, <= S_p, d_head) projections of the last past frames;
    ``conv1``: (B, kernel - 1, d_model) and ``conv2``: (B, kernel - 1, d_inner) causal-conv inputs.
    """

    key: Tensor
    value: Tensor
    conv1: Tensor
    conv2: Tensor


class MultiHeadAttention(nn.Module):
    """Scaled dot-product self-attention with an optional prefix of cached keys/values."""

    def __init__(self, d_model: int, n_heads: int, d_head: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.n_heads, self.d_head = n_heads, d_head
        self.qkv = nn.Linear(d_model, 3 * n_heads * d_head)
        self.out = nn.Linear(n_heads * d_head, d_model, bias=False)
        self.dropout = dropout

    def forward(
        self, x: Tensor, attn_mask: Tensor | None = None, past: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """x (B, T, D); attn_mask bool (B|1, T, S) with S = past + T; returns (out (B, T, D), k, v)."""
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)  # (B,H,T,dh)
        if past is not None:
            k_all = torch.cat([past[0], k], dim=2)  # (B, H, S, dh)
            v_all = torch.cat([past[1], v], dim=2)
        else:
            k_all, v_all = k, v
        mask = None if attn_mask is None else attn_mask[:, None]  # (B|1, 1, T, S)
        y = F.scaled_dot_product_attention(
            q, k_all, v_all, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )  # (B, H, T, dh)
        return self.out(y.transpose(1, 2).reshape(b, t, -1)), k, v


class ConvFeedForward(nn.Module):
    """Position-wise feed-forward of two 1-D convolutions (``kernel``) with ReLU between.

    ``causal=True`` pads on the left only, so frame t sees frames t - kernel + 1 .. t; the last
    ``kernel - 1`` inputs of each convolution are the streaming state.
    """

    def __init__(self, d_model: int, d_inner: int, kernel: int, dropout: float, causal: bool) -> None:
        super().__init__()
        self.kernel, self.causal = kernel, causal
        self.conv1 = nn.Conv1d(d_model, d_inner, kernel)
        self.conv2 = nn.Conv1d(d_inner, d_model, kernel)
        self.dropout = nn.Dropout(dropout)

    def _conv(self, conv: nn.Conv1d, x: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor | None]:
        # x (B, T, C) -> (B, T, C_out)
        if not self.causal:
            pad = (self.kernel - 1) // 2
            x = F.pad(x, (0, 0, pad, self.kernel - 1 - pad))
            return conv(x.transpose(1, 2)).transpose(1, 2), None
        if state is None:
            state = x.new_zeros(x.shape[0], self.kernel - 1, x.shape[2])
        x = torch.cat([state, x], dim=1)  # (B, kernel - 1 + T, C)
        new_state = x[:, x.shape[1] - (self.kernel - 1) :]
        return conv(x.transpose(1, 2)).transpose(1, 2), new_state

    def forward(
        self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
        """x (B, T, D) → (B, T, D) and the new conv state (causal only)."""
        s1, s2 = state if state is not None else (None, None)
        h, n1 = self._conv(self.conv1, x, s1)
        h, n2 = self._conv(self.conv2, F.relu(h), s2)
        return self.dropout(h), (n1, n2) if self.causal else None


class FFTBlock(nn.Module):
    """FastPitch Feed-Forward Transformer block: post-norm MHA then post-norm conv feed-forward."""

    causal = False

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_head: int,
        d_inner: int,
        kernel: int,
        dropout: float = 0.1,
        attn_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.attn = MultiHeadAttention(d_model, n_heads, d_head, attn_dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.ff = ConvFeedForward(d_model, d_inner, kernel, dropout, causal=self.causal)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """x (B, T, D), mask (B, T, 1) float valid frames, attn_mask bool (B|1, T, T) → (B, T, D)."""
        a, _, _ = self.attn(x, attn_mask)
        x = self.norm1(x + self.dropout(a)) * mask
        f, _ = self.ff(x)
        return self.norm2(x + f) * mask


class ChunkFFTBlock(FFTBlock):
    """Incremental FastPitch chunk FFT block: causal convolutions and a k/v cache of past frames.

    ``forward`` runs a whole (masked) sequence for training and for the reference decode;
    ``forward_chunk`` runs one chunk with the cache and returns the next cache.
    """

    causal = True

    def init_cache(self, batch: int, device: torch.device, dtype: torch.dtype) -> ChunkCache:
        """An empty cache: no past frames, zero conv state (the same as causal zero padding)."""
        h, dh, k = self.attn.n_heads, self.attn.d_head, self.ff.kernel
        d_model, d_inner = self.ff.conv1.in_channels, self.ff.conv1.out_channels
        return ChunkCache(
            key=torch.zeros(batch, h, 0, dh, device=device, dtype=dtype),
            value=torch.zeros(batch, h, 0, dh, device=device, dtype=dtype),
            conv1=torch.zeros(batch, k - 1, d_model, device=device, dtype=dtype),
            conv2=torch.zeros(batch, k - 1, d_inner, device=device, dtype=dtype),
        )

    def forward_chunk(
        self, x: Tensor, mask: Tensor, attn_mask: Tensor, cache: ChunkCache, past_size: int
    ) -> tuple[Tensor, ChunkCache]:
        """x (B, C, D) one chunk, mask (B, C, 1), attn_mask bool (B, C, P + C) over [past, chunk]."""
        a, k, v = self.attn(x, attn_mask, past=(cache.key, cache.value))
        x = self.norm1(x + self.dropout(a)) * mask
        f, (c1, c2) = self.ff(x, (cache.conv1, cache.conv2))
        out = self.norm2(x + f) * mask
        key = torch.cat([cache.key, k], dim=2)  # (B, H, P + C, dh)
        value = torch.cat([cache.value, v], dim=2)
        start = max(key.shape[2] - max(past_size, 0), 0)  # keep the last S_p frames (all if fewer)
        key, value = key[:, :, start:], value[:, :, start:]
        return out, ChunkCache(key=key, value=value, conv1=c1, conv2=c2)


class TemporalPredictor(nn.Module):
    """FastPitch duration / pitch / energy predictor: (conv k → ReLU → LayerNorm → dropout) × n, linear.

    x (B, N, D), mask (B, N, 1) → (B, N, n_outputs).
    """

    def __init__(
        self,
        in_dim: int,
        filters: int = 256,
        kernel: int = 3,
        dropout: float = 0.1,
        n_layers: int = 2,
        n_outputs: int = 1,
    ) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(in_dim if i == 0 else filters, filters, kernel, padding=kernel // 2)
            for i in range(n_layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(filters) for _ in range(n_layers))
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(filters, n_outputs)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        h = x * mask
        for conv, norm in zip(self.convs, self.norms):
            h = self.dropout(norm(F.relu(conv(h.transpose(1, 2)).transpose(1, 2))))
        return self.proj(h) * mask


def regulate_length(
    x: Tensor, durations: Tensor, pace: float = 1.0, max_frames: int | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Repeat each token's features by its duration divided by ``pace`` (FastPitch length regulator).

    x (B, N, D), durations (B, N) frames (float or int) → ``(frames (B, T, D), lengths (B,),
    repeats (B, N) long)``. ``pace`` 2.0 speaks twice as fast (about half the frames).
    """
    if pace <= 0:
        raise ValueError(f"pace must be > 0, got {pace}.")
    reps = torch.clamp((durations.float() / pace + 0.5).long(), min=0)  # (B, N)
    lengths = reps.sum(dim=1)
    if max_frames is not None:
        lengths = lengths.clamp(max=max_frames)
    total = max(int(lengths.max().item()), 1) if lengths.numel() else 1
    ends = reps.cumsum(dim=1)  # (B, N)
    frames = torch.arange(total, device=x.device)  # (T,)
    # token index of each output frame = number of tokens that end at or before the frame
    token = torch.searchsorted(ends, frames.expand(ends.shape[0], -1).contiguous(), right=True)  # (B, T)
    valid = frames[None, :] < lengths[:, None]
    token = token.clamp(max=x.shape[1] - 1)
    out = torch.gather(x, 1, token[..., None].expand(-1, -1, x.shape[2])) * valid[..., None]
    return out, lengths, reps


class LengthRegulator(nn.Module):
    """Module wrapper of :func:`regulate_length`."""

    def forward(
        self, x: Tensor, durations: Tensor, pace: float = 1.0, max_frames: int | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        return regulate_length(x, durations, pace, max_frames)
