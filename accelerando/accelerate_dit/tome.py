"""ToMe: token merging for diffusion transformers (Bolya & Hoffman, "Token Merging for Fast Stable Diffusion").

Each wrapped sub-module (a block's self-attention, and optionally its cross-attention and MLP) receives its
normalised, modulated input tokens merged: the image token grid is cut into ``sy x sx`` cells, one token per
cell is a destination (random, seeded, unless ``use_rand`` is off), every other token (a source) finds its most
cosine-similar destination, and the ``r`` most similar sources are averaged into their destination
(``scatter_reduce`` mean: every token has size 1 when it arrives, so the mean is the size-weighted mean). The
sub-module runs on ``N - r`` tokens and its output is unmerged (each merged source gets its destination's
output) before the block applies its gate and residual, so adaLN-zero gates and conditioning are untouched.

The grid comes from the model's inputs and patch size (``_registry``), so patch-2 DiTs merge too (tomesd's
``max_downsample`` test makes it a no-op there). Tokens in front of the image tokens (Flux single-stream text,
Stable Audio's global token) are never merged. Attention with rotary position embeddings (Flux, Stable Audio)
cannot be merged without re-indexing the per-token rotations, so ``merge_attn`` is refused there; their MLPs can
be merged.

Under ``torch.compile`` the destination draw runs outside the graph (one graph break per wrapped call).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from accelerando.accelerate_dit._hooks import StepTracker, SubmoduleHook, attach_plugin
from accelerando.accelerate_dit._registry import find_blocks

__all__ = ["TOME_HOOK", "ToMeConfig", "ToMeHook", "ToMeState", "apply_tome", "bipartite_soft_matching_2d"]

TOME_HOOK = "tome"


@dataclass
class ToMeConfig:
    """Token merging settings (https://arxiv.org/abs/2303.17604; tomesd defaults).

    Attributes:
        ratio: fraction of the image tokens removed before each wrapped sub-module, in ``[0, 1)``; at most
            ``1 - 1 / (sx * sy)`` takes effect (one destination per cell is kept). ``0`` is exactly the baseline.
        sx, sy: cell width (time / columns) and height (frequency / rows) in tokens.
        use_rand: a random destination per cell (seeded by ``seed``, the step and the block); else the first.
        seed: seed of the destination draw (the same seed gives the same merges every generation).
        merge_attn, merge_crossattn, merge_mlp: which sub-modules see merged tokens.
        block_ratios: per-block ratios overriding ``ratio``: a sequence with one entry per block (forward
            order, Flux double then single blocks) or a mapping ``{block index: ratio}``.

    Example::

        import torch
        from accelerando.accelerate_dit import ToMeConfig, apply_tome, remove_acceleration
        from accelerando.generation import MelDiT

        model = MelDiT.from_preset("small")
        apply_tome(model, ToMeConfig(ratio=0.5, sx=2, sy=2))
        x = torch.randn(2, 1, 80, 128)
        labels = torch.tensor([0, 40]), torch.tensor([60, 67]), torch.tensor([100, 80])
        v = model(x, torch.tensor([500.0, 500.0]), *labels).sample  # attention runs on 320 of 640 tokens
        remove_acceleration(model)
    """

    ratio: float = 0.5
    sx: int = 2
    sy: int = 2
    use_rand: bool = True
    seed: int = 0
    merge_attn: bool = True
    merge_crossattn: bool = False
    merge_mlp: bool = False
    block_ratios: Sequence[float] | Mapping[int, float] | None = None

    def __post_init__(self) -> None:
        ratios = [self.ratio]
        if isinstance(self.block_ratios, Mapping):
            ratios += list(self.block_ratios.values())
        elif self.block_ratios is not None:
            ratios += list(self.block_ratios)
        for ratio in ratios:
            if not 0.0 <= ratio < 1.0:
                raise ValueError(f"ToMe ratio {ratio} is out of range: accepted values are 0 <= ratio < 1.")
        for name in ("sx", "sy"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"ToMe {name} must be a positive integer, got {getattr(self, name)}.")

    def ratio_for(self, index: int, num_blocks: int) -> float:
        """The ratio of block ``index``."""
        if self.block_ratios is None:
            return self.ratio
        if isinstance(self.block_ratios, Mapping):
            return float(self.block_ratios.get(index, self.ratio))
        if len(self.block_ratios) != num_blocks:
            raise ValueError(
                f"block_ratios has {len(self.block_ratios)} entries but the model has {num_blocks} blocks."
            )
        return float(self.block_ratios[index])


class ToMeState:
    """Token counts seen by the wrapped sub-modules since the last reset (for inspection and tests)."""

    def __init__(self) -> None:
        self.tokens_in = 0
        self.tokens_out = 0

    def reset(self) -> None:
        self.tokens_in = 0
        self.tokens_out = 0


Merge = Callable[[torch.Tensor], torch.Tensor]


@torch.compiler.disable
def _destination_choice(
    rows: int, cols: int, sy: int, sx: int, use_rand: bool, seed: int, device: torch.device
) -> torch.Tensor:
    """Per ``sy x sx`` cell, the index (``0 .. sy*sx-1``) of its destination token: ``(rows // sy, cols // sx, 1)``."""
    shape = (rows // sy, cols // sx, 1)
    if not use_rand:
        return torch.zeros(shape, dtype=torch.int64, device=device)
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(sy * sx, shape, generator=generator).to(device)


def bipartite_soft_matching_2d(
    metric: torch.Tensor, grid: tuple[int, int], sx: int, sy: int, r: int, rand_idx: torch.Tensor
) -> tuple[Merge, Merge]:
    """Bipartite soft matching on a ``(rows, cols)`` token grid, one destination per ``sy x sx`` cell.

    Args:
        metric: ``(B, rows * cols, C)`` tokens in row-major grid order (similarity is their cosine).
        grid: ``(rows, cols)``. Rows / columns beyond a whole number of cells are sources.
        r: tokens to remove (clipped to the number of sources).
        rand_idx: ``(rows // sy, cols // sx, 1)`` destination position inside each cell.

    Returns:
        ``merge``: ``(B, N, C') -> (B, N - r, C')``; ``unmerge``: ``(B, N - r, C') -> (B, N, C')``.
    """
    b, n, _ = metric.shape
    rows, cols = grid
    hsy, wsx = rows // sy, cols // sx
    num_dst = hsy * wsx
    device = metric.device

    # -1 marks destinations; argsort puts them first (stable, so the order is deterministic).
    buffer = torch.zeros(hsy, wsx, sy * sx, dtype=torch.int64, device=device)
    buffer.scatter_(2, rand_idx, -1)
    buffer = buffer.view(hsy, wsx, sy, sx).transpose(1, 2).reshape(hsy * sy, wsx * sx)
    if hsy * sy < rows or wsx * sx < cols:
        full = torch.zeros(rows, cols, dtype=torch.int64, device=device)
        full[: hsy * sy, : wsx * sx] = buffer
        buffer = full
    order = buffer.reshape(1, -1, 1).argsort(dim=1, stable=True)  # (1, N, 1)
    a_idx = order[:, num_dst:, :]  # sources
    b_idx = order[:, :num_dst, :]  # destinations
    num_src = n - num_dst
    r = min(r, num_src)

    def split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = x.shape[-1]
        src = x.gather(1, a_idx.expand(x.shape[0], num_src, c))
        dst = x.gather(1, b_idx.expand(x.shape[0], num_dst, c))
        return src, dst

    with torch.no_grad():
        normed = metric / metric.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        a, bb = split(normed)
        scores = a @ bb.transpose(-1, -2)  # (B, num_src, num_dst)
        node_max, node_idx = scores.max(dim=-1)
        edge_idx = node_max.argsort(dim=-1, descending=True, stable=True)[..., None]  # (B, num_src, 1)
        unm_idx = edge_idx[:, r:, :]  # sources kept
        src_idx = edge_idx[:, :r, :]  # sources merged
        dst_idx = node_idx[..., None].gather(1, src_idx)  # their destinations

    def merge(x: torch.Tensor) -> torch.Tensor:
        src, dst = split(x)
        c = x.shape[-1]
        unm = src.gather(1, unm_idx.expand(b, num_src - r, c))
        src = src.gather(1, src_idx.expand(b, r, c))
        dst = dst.scatter_reduce(1, dst_idx.expand(b, r, c), src, reduce="mean")
        return torch.cat([unm, dst], dim=1)  # (B, N - r, C)

    def unmerge(x: torch.Tensor) -> torch.Tensor:
        c = x.shape[-1]
        unm_len = num_src - r
        unm, dst = x[:, :unm_len], x[:, unm_len:]
        src = dst.gather(1, dst_idx.expand(b, r, c))
        out = torch.zeros(b, n, c, device=x.device, dtype=x.dtype)
        out.scatter_(1, b_idx.expand(b, num_dst, c), dst)
        out.scatter_(1, a_idx.expand(b, num_src, c).gather(1, unm_idx.expand(b, unm_len, c)), unm)
        out.scatter_(1, a_idx.expand(b, num_src, c).gather(1, src_idx.expand(b, r, c)), src)
        return out  # (B, N, C)

    return merge, unmerge


class ToMeHook(SubmoduleHook):
    """Merges the image tokens of one sub-module's input and unmerges its output (tuples: the first element)."""

    priority = 10  # inside FORA: a cached step skips the merge too
    tracker: StepTracker

    def __init__(
        self, config: ToMeConfig, ratio: float, block_index: int, hidden_arg: str, state: ToMeState
    ) -> None:
        self.config = config
        self.ratio = ratio
        self.block_index = block_index
        self.hidden_arg = hidden_arg
        self.state = state

    def new_forward(self, module: nn.Module, forward: Any, *args: Any, **kwargs: Any) -> Any:
        positional = len(args) > 0
        hidden = args[0] if positional else kwargs.get(self.hidden_arg)
        rows, cols = self.tracker.grid
        num_image = rows * cols
        if not isinstance(hidden, torch.Tensor) or hidden.ndim != 3:
            return forward(*args, **kwargs)
        prefix = hidden.shape[1] - num_image
        r = int(num_image * self.ratio)
        if r <= 0 or prefix < 0 or kwargs.get("attention_mask") is not None:
            return forward(*args, **kwargs)

        cfg = self.config
        sy, sx = min(cfg.sy, rows), min(cfg.sx, cols)  # a 1-D sequence (rows == 1) merges along its length
        seed = cfg.seed + 1_000_003 * max(self.tracker.step, 0) + 7919 * self.block_index
        rand_idx = _destination_choice(rows, cols, sy, sx, cfg.use_rand, seed, hidden.device)
        image = hidden[:, prefix:]  # (B, rows * cols, C)
        merge, unmerge = bipartite_soft_matching_2d(image, (rows, cols), sx, sy, r, rand_idx)
        merged = torch.cat([hidden[:, :prefix], merge(image)], dim=1)  # (B, prefix + N - r, C)
        self.state.tokens_in += hidden.shape[1]
        self.state.tokens_out += merged.shape[1]
        if positional:
            args = (merged, *args[1:])
        else:
            kwargs = {**kwargs, self.hidden_arg: merged}

        output = forward(*args, **kwargs)
        first = output[0] if isinstance(output, tuple) else output
        restored = torch.cat([first[:, :prefix], unmerge(first[:, prefix:])], dim=1)  # (B, prefix + N, C')
        if isinstance(output, tuple):
            return (restored, *output[1:])
        return restored


def apply_tome(model: nn.Module, config: ToMeConfig | None = None) -> ToMeState:
    """Apply token merging to every supported block of ``model`` (MelDiT or a diffusers transformer).

    Returns the shared ``ToMeState``. Raises ``TypeError`` for an unsupported model, ``ValueError`` when ToMe is
    already applied or ``merge_attn`` is asked of a rotary-embedding attention (Flux, Stable Audio).
    """
    config = config or ToMeConfig()
    blocks = find_blocks(model)
    slots = [s for s, on in (("attn", config.merge_attn), ("cross_attn", config.merge_crossattn)) if on]
    if config.merge_mlp:
        slots.append("mlp")
    state = ToMeState()
    hooks: list[tuple[nn.Module, SubmoduleHook]] = []
    for found in blocks:
        if found.spec.rope and "attn" in slots:
            raise ValueError(
                f"ToMe cannot merge the attention of {type(found.block).__name__} in {type(model).__name__}: it "
                "applies rotary position embeddings per token. Use ToMeConfig(merge_attn=False, merge_mlp=True)."
            )
        ratio = config.ratio_for(found.index, len(blocks))
        for slot in slots:
            for _, module in found.submodules(slot):
                hooks.append((module, ToMeHook(config, ratio, found.index, found.spec.hidden_arg, state)))
    attach_plugin(model, TOME_HOOK, hooks, [state])
    return state
