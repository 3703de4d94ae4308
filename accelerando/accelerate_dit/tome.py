"""ToMe: token merging for diffusion transformers (Bolya & Hoffman, "Token Merging for Fast Stable Diffusion").

Each wrapped sub-module (a block's self-attention, and optionally its cross-attention and MLP) receives its
normalised, modulated input tokens merged: the image token grid is cut into ``sy x sx`` cells, one token per
cell is a destination (random, seeded, unless ``use_rand`` is off), every other token (a source) finds its most
cosine-similar destination, and the ``r`` most similar sources are averaged into their destination (a sum and a
division by the group size: every token has size 1 when it arrives, so this is the size-weighted mean). The
sub-module runs on ``N - r`` tokens and its output is unmerged (each merged source gets its destination's
output) before the block applies its gate and residual, so adaLN-zero gates and conditioning are untouched.

As in tomesd, a block computes one matching per call (from the input of its first merged sub-module) and its
other merged sub-modules reuse it. Merging and unmerging are row copies of flat index lists (``index_select`` /
``index_add_``), not element-wise gathers and scatters, so on a CPU they cost little next to the matching itself
(one ``(N - N/(sx sy)) x N/(sx sy)`` similarity product per block).

Where the time goes decides what to merge: the paper merges before self-attention only (``merge_attn``, the
default here too); on a narrow DiT such as MelDiT's small preset (width 192, 640 tokens) the MLP and GELU take
more time than attention, and ``merge_mlp=True`` is what makes ToMe pay (``benchmarks/dit_plugins_speed.py``).

The grid comes from the model's inputs and patch size (``_registry``), so patch-2 DiTs merge too (tomesd's
``max_downsample`` test makes it a no-op there). Tokens in front of the image tokens (Flux single-stream text,
Stable Audio's global token) are never merged. Attention with rotary position embeddings (Flux, Stable Audio)
cannot be merged without re-indexing the per-token rotations, so ``merge_attn`` is refused there; their MLPs can
be merged.

Fidelity levers (``benchmarks/tome_fidelity.py``): ``blocks`` merges only in the chosen blocks (the first and
last blocks of a DiT are the most sensitive), ``merge_steps`` merges only in the first (high-noise) denoising steps
and runs the later, detail-forming steps unmerged, and ``prop_attn`` is the ToMe paper's proportional attention
(``log(size)`` of every merged key added to the attention logits, so a key standing for ``s`` tokens weighs as
``s`` of them). Each defaults to today's behaviour (all blocks, all steps, plain attention).

Under ``torch.compile`` the destination draw runs outside the graph (one graph break per wrapped call).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from accelerando.accelerate_dit._hooks import StepTracker, SubmoduleHook, attach_plugin
from accelerando.accelerate_dit._registry import find_blocks

__all__ = [
    "TOME_HOOK",
    "ToMeConfig",
    "ToMeHook",
    "ToMeState",
    "TokenMatching",
    "apply_tome",
    "bipartite_soft_matching_2d",
    "match_tokens",
]

TOME_HOOK = "tome"
# Blocks whose self-attention takes an additive ``attention_mask`` over exactly its own (merged) tokens.
_PROP_ATTN_BLOCKS = frozenset({"MelDiTBlock", "BasicTransformerBlock"})


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
        blocks: indices of the blocks that merge (forward order; negative indices count from the end, so
            ``range(1, 5)`` on a 6-block MelDiT skips the first and last block); ``None`` merges in all.
        merge_steps: merge only in the first ``merge_steps`` denoising steps of a generation (the high-noise
            ones); later steps run unmerged. ``None`` merges in every step; ``0`` never merges.
        prop_attn: proportional attention (ToMe paper, eq. 1): ``log(size)`` of each merged token is added to
            the self-attention logits. MelDiT and ``BasicTransformerBlock`` (DiT, PixArt) only.

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
    blocks: Sequence[int] | None = None
    merge_steps: int | None = None
    prop_attn: bool = False

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
        if self.blocks is not None:
            if isinstance(self.blocks, (str, bytes)) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in self.blocks
            ):
                raise ValueError(
                    f"ToMe blocks must be a sequence of block indices (ints), got {self.blocks!r}."
                )
            self.blocks = tuple(self.blocks)
        if self.merge_steps is not None and (
            not isinstance(self.merge_steps, int)
            or isinstance(self.merge_steps, bool)
            or self.merge_steps < 0
        ):
            raise ValueError(
                f"ToMe merge_steps must be None or a non-negative integer (steps that merge), got {self.merge_steps!r}."
            )

    def selected_blocks(self, num_blocks: int) -> set[int]:
        """The indices (``0 .. num_blocks - 1``) of the blocks that merge; a clear error for an index out of range."""
        if self.blocks is None:
            return set(range(num_blocks))
        bad = [i for i in self.blocks if not -num_blocks <= i < num_blocks]
        if bad:
            raise ValueError(
                f"ToMe blocks {bad} out of range: the model has {num_blocks} blocks "
                f"(indices 0..{num_blocks - 1}, or -{num_blocks}..-1 from the end)."
            )
        return {i % num_blocks for i in self.blocks}

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


def _partition(
    grid: tuple[int, int], sx: int, sy: int, rand_idx: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token indices of the sources ``(num_src,)`` (grid order) and of the destinations ``(num_dst,)`` (cell order)."""
    rows, cols = grid
    hsy, wsx = rows // sy, cols // sx
    device = rand_idx.device
    offset = rand_idx.reshape(hsy, wsx)
    cell_row = torch.arange(hsy, device=device)[:, None] * sy + torch.div(offset, sx, rounding_mode="floor")
    cell_col = torch.arange(wsx, device=device)[None, :] * sx + offset % sx
    dst_idx = (cell_row * cols + cell_col).reshape(-1)  # (hsy * wsx,)
    is_src = torch.ones(rows * cols, dtype=torch.bool, device=device)
    is_src[dst_idx] = False
    return is_src.nonzero().reshape(-1), dst_idx


class TokenMatching:
    """One bipartite soft matching of a ``(B, N, C)`` token batch, as flat row indices, so merging and unmerging
    are row copies (``index_select`` / ``index_add_``) rather than element-wise gathers and scatters.

    Merged layout per sample: the ``num_dst`` destinations (cell order), then the ``num_src - r`` unmerged sources.
    """

    def __init__(
        self,
        keep: torch.Tensor,
        src: torch.Tensor,
        dst: torch.Tensor,
        size: torch.Tensor,
        restore: torch.Tensor,
        num_tokens: int,
    ) -> None:
        self.keep = keep  # (B * M,) rows of the flat input that stay (destinations, unmerged sources)
        self.src = src  # (B * r,) rows of the flat input merged away
        self.dst = dst  # (B * r,) rows of the flat merged output they are added into
        self.size = size  # (B * M, 1) how many input tokens each merged token averages
        self.restore = restore  # (B * N,) for every input token, its row of the flat merged output
        self.num_tokens = num_tokens  # N

    def merge(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, N, C) -> (B, N - r, C)``: each destination becomes the mean of itself and its merged sources."""
        b, n, c = x.shape
        flat = x.reshape(b * n, c)
        out = flat.index_select(0, self.keep)  # (B * M, C)
        if self.src.numel():
            out.index_add_(0, self.dst, flat.index_select(0, self.src))
            out = out.div_(self.size.to(out.dtype))
        return out.view(b, -1, c)

    def unmerge(self, y: torch.Tensor) -> torch.Tensor:
        """``(B, N - r, C') -> (B, N, C')``: every merged source takes its destination's value."""
        b, m, c = y.shape
        return y.reshape(b * m, c).index_select(0, self.restore).view(b, self.num_tokens, c)


def match_tokens(
    metric: torch.Tensor, grid: tuple[int, int], sx: int, sy: int, r: int, rand_idx: torch.Tensor
) -> TokenMatching:
    """Bipartite soft matching on a ``(rows, cols)`` token grid, one destination per ``sy x sx`` cell (tomesd).

    Args:
        metric: ``(B, rows * cols, C)`` tokens in row-major grid order (similarity is their cosine).
        grid: ``(rows, cols)``. Rows / columns beyond a whole number of cells are sources.
        r: tokens to remove (clipped to the number of sources).
        rand_idx: ``(rows // sy, cols // sx, 1)`` destination position inside each cell.
    """
    return _match(metric, *_partition(grid, sx, sy, rand_idx), r)


@torch.compiler.disable
@functools.lru_cache(maxsize=4096)
def _cell_partition(
    rows: int, cols: int, sy: int, sx: int, use_rand: bool, seed: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``_partition`` of a seeded destination draw, cached: a generation draws the same ones every time."""
    rand_idx = _destination_choice(rows, cols, sy, sx, use_rand, seed, device)
    return _partition((rows, cols), sx, sy, rand_idx)


def _match(metric: torch.Tensor, a_idx: torch.Tensor, b_idx: torch.Tensor, r: int) -> TokenMatching:
    """:func:`match_tokens` given the sources ``a_idx`` and destinations ``b_idx`` (few, whole-tensor ops)."""
    b, n, _ = metric.shape
    num_src, num_dst = a_idx.numel(), b_idx.numel()
    r = max(min(r, num_src), 0)
    m = n - r
    device = metric.device
    with torch.no_grad():
        a = metric.index_select(1, a_idx)  # (B, num_src, C)
        d = metric.index_select(1, b_idx)  # (B, num_dst, C)
        d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        # argmax over destinations needs only their norms; the source norm only rescales each row's maximum.
        node_max, node_idx = (a @ d.transpose(-1, -2)).max(dim=-1)  # (B, num_src)
        node_max = node_max / a.norm(dim=-1).clamp_min(1e-6)
        order = node_max.argsort(dim=-1, descending=True, stable=True)  # (B, num_src)
        ranked = a_idx[order]  # (B, num_src) source tokens, most similar first: the first r are merged
        dst_local = node_idx.gather(1, order[:, :r])  # (B, r) destination of each merged source
        keep = torch.cat([b_idx.expand(b, num_dst), ranked[:, r:]], dim=1)  # (B, M) destinations, unmerged
        perm = torch.cat([keep, ranked[:, :r]], dim=1)  # (B, N) every token once
        position = torch.cat(  # where each token of ``perm`` lands in the merged output
            [torch.arange(m, device=device).expand(b, m), dst_local], dim=1
        )
        restore = torch.empty_like(perm).scatter_(1, perm, position)  # (B, N)
        size = torch.ones(b, m, device=device).scatter_add_(1, dst_local, torch.ones(b, r, device=device))
        src = ranked[:, :r]
        if b > 1:  # flat row indices over the batch
            in_offset = torch.arange(b, device=device)[:, None] * n
            out_offset = torch.arange(b, device=device)[:, None] * m
            keep, src = keep + in_offset, src + in_offset
            dst_local, restore = dst_local + out_offset, restore + out_offset
    return TokenMatching(
        keep.reshape(-1), src.reshape(-1), dst_local.reshape(-1), size.reshape(-1, 1), restore.reshape(-1), n
    )


def bipartite_soft_matching_2d(
    metric: torch.Tensor, grid: tuple[int, int], sx: int, sy: int, r: int, rand_idx: torch.Tensor
) -> tuple[Merge, Merge]:
    """tomesd's interface to :func:`match_tokens`: ``(merge, unmerge)``, ``(B, N, C') <-> (B, N - r, C')``."""
    matching = match_tokens(metric, grid, sx, sy, r, rand_idx)
    return matching.merge, matching.unmerge


class _BlockMatching:
    """The matching of one block's current call, shared by its wrapped sub-modules (tomesd computes it once per
    block too): the first merged sub-module of a call computes it from its own input, the others reuse it."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.matching: TokenMatching | None = None


class ToMeHook(SubmoduleHook):
    """Merges the image tokens of one sub-module's input and unmerges its output (tuples: the first element)."""

    priority = 10  # inside FORA: a cached step skips the merge too
    tracker: StepTracker

    def __init__(
        self,
        config: ToMeConfig,
        ratio: float,
        block_index: int,
        hidden_arg: str,
        state: ToMeState,
        shared: _BlockMatching | None = None,
        prop_attn: bool = False,
    ) -> None:
        self.config = config
        self.prop_attn = prop_attn  # this hook wraps a self-attention whose logits get log(size)
        self.ratio = ratio
        self.block_index = block_index
        self.hidden_arg = hidden_arg
        self.state = state
        self.shared = shared or _BlockMatching()

    def _matching(self, image: torch.Tensor, grid: tuple[int, int], r: int) -> TokenMatching:
        key = (self.tracker.calls, tuple(image.shape), r)
        if self.shared.key == key and self.shared.matching is not None:
            return self.shared.matching
        cfg = self.config
        rows, cols = grid
        sy, sx = min(cfg.sy, rows), min(cfg.sx, cols)  # a 1-D sequence (rows == 1) merges along its length
        seed = cfg.seed + 1_000_003 * max(self.tracker.step, 0) + 7919 * self.block_index
        a_idx, b_idx = _cell_partition(rows, cols, sy, sx, cfg.use_rand, seed, image.device)
        matching = _match(image, a_idx, b_idx, r)
        self.shared.key, self.shared.matching = key, matching
        return matching

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
        steps = self.config.merge_steps
        if steps is not None and max(self.tracker.step, 0) >= steps:
            return forward(*args, **kwargs)

        image = hidden[:, prefix:] if prefix else hidden  # (B, rows * cols, C)
        matching = self._matching(image, (rows, cols), r)
        merged = matching.merge(image)  # (B, N - r, C)
        if prefix:
            merged = torch.cat([hidden[:, :prefix], merged], dim=1)  # (B, prefix + N - r, C)
        self.state.tokens_in += hidden.shape[1]
        self.state.tokens_out += merged.shape[1]
        if positional:
            args = (merged, *args[1:])
        else:
            kwargs = {**kwargs, self.hidden_arg: merged}
        if self.prop_attn and matching.src.numel() and kwargs.get("encoder_hidden_states") is None:
            # (B, 1, prefix + M) additive bias over the keys; the processor repeats it over heads and queries.
            log_size = matching.size.to(merged.dtype).log().view(merged.shape[0], 1, -1)
            if prefix:
                log_size = torch.cat([log_size.new_zeros(merged.shape[0], 1, prefix), log_size], dim=-1)
            kwargs = {**kwargs, "attention_mask": log_size}

        output = forward(*args, **kwargs)
        first = output[0] if isinstance(output, tuple) else output
        restored = matching.unmerge(first[:, prefix:] if prefix else first)  # (B, N, C')
        if prefix:
            restored = torch.cat([first[:, :prefix], restored], dim=1)  # (B, prefix + N, C')
        if isinstance(output, tuple):
            return (restored, *output[1:])
        return restored


def _supports_prop_attn(block: nn.Module) -> bool:
    return any(cls.__name__ in _PROP_ATTN_BLOCKS for cls in type(block).__mro__)


def apply_tome(model: nn.Module, config: ToMeConfig | None = None) -> ToMeState:
    """Apply token merging to every supported block of ``model`` (MelDiT or a diffusers transformer).

    Returns the shared ``ToMeState``. Raises ``TypeError`` for an unsupported model, ``ValueError`` when ToMe is
    already applied or ``merge_attn`` is asked of a rotary-embedding attention (Flux, Stable Audio).
    """
    config = config or ToMeConfig()
    blocks = find_blocks(model)
    selected = config.selected_blocks(len(blocks))
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
        if config.prop_attn and "attn" in slots and not _supports_prop_attn(found.block):
            raise ValueError(
                f"ToMe prop_attn is not supported for {type(found.block).__name__} in {type(model).__name__}; "
                f"supported blocks are {', '.join(sorted(_PROP_ATTN_BLOCKS))}."
            )
        if found.index not in selected:
            continue
        shared = _BlockMatching()
        for slot in slots:
            prop = config.prop_attn and slot == "attn"
            for _, module in found.submodules(slot):
                hook = ToMeHook(config, ratio, found.index, found.spec.hidden_arg, state, shared, prop)
                hooks.append((module, hook))
    attach_plugin(model, TOME_HOOK, hooks, [state])
    return state
