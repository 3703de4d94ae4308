"""MelDiT: a rectified-flow diffusion transformer that draws instrument notes as mel spectrograms.

A DiT (Peebles & Xie, "Scalable Diffusion Models with Transformers", arXiv 2212.09748) with adaLN-zero
conditioning over patchified log-mels in the shared ``accelerando.audio.MelConfig`` front end, conditioned
on a General MIDI program (instrument), a MIDI pitch and a MIDI velocity.

Conventions (one source of truth, shared with the pipeline and the samplers):

- **Noise level** ``sigma`` in [0, 1]: ``x_sigma = (1 - sigma) * x0 + sigma * noise`` (rectified flow, the
  linear path), so ``sigma = 1`` is pure noise and ``sigma = 0`` is data.
- **Prediction**: the velocity ``v = noise - x0`` (so ``dx/dsigma = v``), as in SD3 / FLUX.
- **Timestep**: ``forward`` takes ``timestep = sigma * 1000`` -- exactly the ``timesteps`` that
  ``FlowMatchEulerDiscreteScheduler`` (``num_train_timesteps=1000``) hands a pipeline, so any diffusers
  flow-matching scheduler drives the model unchanged.
- **Mels**: the model works on normalised mels ``(log_mel - mel_mean) / mel_std``; the fixed affine
  constants live in the config (``normalize_mel`` / ``denormalize_mel``). The defaults map the natural-log
  mel range [-11.5, 2] to about [-2.2, 2.3].
- **Classifier-free guidance**: the label value ``NULL_LABEL`` (-1) means "unconditional" for program,
  pitch and velocity; in training, ``class_dropout_prob`` replaces all three labels of a sample by it.
- **Pitch conditioning**: ``pitch_conditioning="table"`` is DiT's class-label design (a learned vector per
  MIDI pitch, added to the timestep embedding that drives adaLN). ``"harmonic"`` adds to it a *local* cue: the
  pitch's harmonic template (where its harmonics fall on the mel axis, ``harmonic_pitch_templates``) is
  embedded per patch row and added to the tokens, so a token knows whether a harmonic of the asked pitch lies
  in its frequency band instead of having to learn that from 128 independent vectors.

Blocks are ``transformer_blocks``, a ``ModuleList`` of ``MelDiTBlock`` whose sub-modules are named like
diffusers' ``BasicTransformerBlock`` (``norm1``, ``attn1``, ``norm2``, ``ff``), so the acceleration plugins
find them the same way they find diffusers' blocks.

Example::

    import torch
    from accelerando.generation import MelDiT

    model = MelDiT.from_preset("small")
    x = torch.randn(2, 1, 80, 128)  # (B, 1, n_mels, frames), normalised mels
    v = model(x, torch.tensor([500.0, 250.0]), program=torch.tensor([0, 40]),
              pitch=torch.tensor([60, 67]), velocity=torch.tensor([100, 80])).sample  # (B, 1, 80, 128)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401 - see below
from torch import nn

from accelerando.modeling import AccelerandoModel

__all__ = [
    "NULL_LABEL",
    "PITCH_CONDITIONINGS",
    "PRESETS",
    "MelDiT",
    "MelDiTBlock",
    "guidance_labels",
    "guided_velocity",
    "patchify",
    "rectified_flow_loss",
    "sincos_pos_embed_2d",
    "unpatchify",
    "harmonic_pitch_templates",
]

# diffusers' pipeline loader records a custom component by its module ("accelerando.generation.mel_dit") and
# finds the load method by looking up base classes such as ``ModelMixin`` as attributes of that module, so
# the import above is what lets ``MelDiTPipeline.from_pretrained`` load its transformer.

NULL_LABEL = -1
NUM_MIDI_VALUES = 128  # MIDI pitch and velocity are 0..127
PITCH_CONDITIONINGS = ("table", "harmonic")

# The presets use the harmonic pitch cue (benchmarks/results/meldit_pitch_study.json: exact pitch accuracy
# 0.77 vs 0.03 for the label table alone after 1500 steps of a small model); the constructor's default stays
# "table" (DiT's design), which is also what a saved config without the key means.
PRESETS: dict[str, dict[str, Any]] = {
    # DiT-S-like width over a (4, 2) patch grid: 20 x 64 = 1280 tokens.
    "full": {
        "hidden_size": 384,
        "num_layers": 12,
        "num_attention_heads": 6,
        "patch_size": (4, 2),
        "pitch_conditioning": "harmonic",
    },
    # CPU-trainable: (4, 4) patches, 20 x 32 = 640 tokens.
    "small": {
        "hidden_size": 192,
        "num_layers": 6,
        "num_attention_heads": 3,
        "patch_size": (4, 4),
        "pitch_conditioning": "harmonic",
    },
}


def patchify(x: torch.Tensor, patch_size: tuple[int, int]) -> torch.Tensor:
    """Cut ``(B, C, H, W)`` into row-major (frequency-major) patch tokens ``(B, H/ph * W/pw, C * ph * pw)``."""
    b, c, h, w = x.shape
    ph, pw = patch_size
    x = x.reshape(b, c, h // ph, ph, w // pw, pw)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, gh, gw, C, ph, pw)
    return x.reshape(b, (h // ph) * (w // pw), c * ph * pw)


def unpatchify(tokens: torch.Tensor, patch_size: tuple[int, int], grid_size: tuple[int, int]) -> torch.Tensor:
    """Inverse of ``patchify``: ``(B, gh * gw, C * ph * pw)`` -> ``(B, C, gh * ph, gw * pw)``."""
    b, n, d = tokens.shape
    ph, pw = patch_size
    gh, gw = grid_size
    c = d // (ph * pw)
    x = tokens.reshape(b, gh, gw, c, ph, pw)
    x = x.permute(0, 3, 1, 4, 2, 5)  # (B, C, gh, ph, gw, pw)
    return x.reshape(b, c, gh * ph, gw * pw)


def sincos_pos_embed_2d(dim: int, grid_size: tuple[int, int]) -> torch.Tensor:
    """2-D sin-cos position embedding (MAE / DiT): half the channels encode the row, half the column.

    Returns ``(gh * gw, dim)`` in the token order of ``patchify``.
    """
    if dim % 4 != 0:
        raise ValueError(f"hidden_size must be divisible by 4 for 2-D sin-cos embeddings, got {dim}.")
    gh, gw = grid_size
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))  # (D/4,)
    rows = torch.arange(gh, dtype=torch.float64)[:, None].expand(gh, gw).reshape(-1)  # (N,)
    cols = torch.arange(gw, dtype=torch.float64)[None, :].expand(gh, gw).reshape(-1)  # (N,)
    parts = []
    for pos in (rows, cols):
        angles = pos[:, None] * omega[None, :]  # (N, D/4)
        parts += [torch.sin(angles), torch.cos(angles)]
    return torch.cat(parts, dim=1).float()  # (N, D)


def harmonic_pitch_templates(
    n_mels: int = 80,
    sample_rate: int = 22050,
    f_min: float = 0.0,
    f_max: float | None = 8000.0,
    num_pitches: int = NUM_MIDI_VALUES,
) -> torch.Tensor:
    """Where the harmonics of each MIDI pitch fall on the (slaney) mel axis: ``(num_pitches, n_mels)`` in [0, 1].

    Row ``p`` sums, over the harmonics ``k * f0(p)`` below ``f_max``, the response ``1 / k`` of each mel band's
    triangle (peak 1, the same band edges as ``MelConfig``'s filterbank), then is scaled to a maximum of one. A
    pitch whose harmonics all lie above ``f_max`` gets a zero row.
    """
    import librosa

    f_max = sample_rate / 2 if f_max is None else f_max
    edges = torch.as_tensor(librosa.mel_frequencies(n_mels + 2, fmin=f_min, fmax=f_max), dtype=torch.float64)
    lo, center, hi = edges[:-2], edges[1:-1], edges[2:]  # (n_mels,)
    f0 = 440.0 * 2.0 ** ((torch.arange(num_pitches, dtype=torch.float64) - 69) / 12)  # (P,)
    max_harmonics = int(f_max // float(f0[0])) + 1
    k = torch.arange(1, max_harmonics + 1, dtype=torch.float64)  # (K,)
    freqs = f0[:, None] * k[None, :]  # (P, K)
    weight = torch.where(freqs <= f_max, 1.0 / k, torch.zeros(()))  # (P, K)
    f = freqs[:, :, None]  # (P, K, 1)
    triangle = torch.minimum((f - lo) / (center - lo), (hi - f) / (hi - center)).clamp(min=0)  # (P, K, M)
    template = (weight[:, :, None] * triangle).sum(1)  # (P, M)
    peak = template.amax(1, keepdim=True)
    return torch.where(peak > 0, template / peak.clamp(min=1e-12), template).float()


class MelDiTBlock(nn.Module):
    """A DiT block with adaLN-zero: ``x += gate_msa * attn1(mod(norm1(x)))``; ``x += gate_mlp * ff(mod(norm2(x)))``.

    The attention and MLP are each one sub-module call and the gates are applied here, in the block, so a
    cache (FORA) can store ``attn1`` / ``ff`` outputs before the gates and token merging (ToMe) can wrap them.
    Shapes: ``hidden_states`` ``(B, N, D)``, ``temb`` ``(B, D)`` -> ``(B, N, D)``.
    """

    def __init__(self, dim: int, num_attention_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn1 = Attention(
            query_dim=dim,
            heads=num_attention_heads,
            dim_head=dim // num_attention_heads,
            bias=True,
            out_bias=True,
        )
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ff = FeedForward(dim, mult=mlp_ratio, activation_fn="gelu-approximate")
        # (shift, scale, gate) for attention and for the MLP; zero-initialised by MelDiT (adaLN-zero).
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, hidden_states: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        mod = self.adaLN_modulation(temb)[:, None, :]  # (B, 1, 6D)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.chunk(6, dim=-1)

        norm_hidden_states = self.norm1(hidden_states) * (1 + scale_msa) + shift_msa
        attn_output = self.attn1(norm_hidden_states)  # (B, N, D)
        hidden_states = hidden_states + gate_msa * attn_output

        norm_hidden_states = self.norm2(hidden_states) * (1 + scale_mlp) + shift_mlp
        ff_output = self.ff(norm_hidden_states)  # (B, N, D)
        hidden_states = hidden_states + gate_mlp * ff_output
        return hidden_states


class MelDiT(AccelerandoModel):
    """Rectified-flow DiT over normalised mels, conditioned on (program, pitch, velocity).

    Args:
        n_mels: mel bins (``MelConfig.n_mels``).
        num_frames: default number of mel frames (128 frames at hop 256 / 22050 Hz is about 1.5 s); any
            multiple of the patch width works at inference.
        in_channels: channels of the input (1: a single mel).
        patch_size: ``(frequency, time)`` patch size; both must divide ``n_mels`` / ``num_frames``.
        hidden_size, num_layers, num_attention_heads, mlp_ratio: transformer width, depth, heads, MLP ratio.
        num_programs: number of instrument programs (128 for General MIDI).
        class_dropout_prob: probability, in training, of replacing a sample's labels by ``NULL_LABEL``.
        mel_mean, mel_std: fixed normalisation ``(log_mel - mel_mean) / mel_std`` of the model space.
        pitch_conditioning: ``"table"`` (DiT's learned label vector) or ``"harmonic"`` (the table plus the
            pitch's harmonic template embedded per patch row and added to the tokens; see the module notes).
        sample_rate, f_min, f_max: the ``MelConfig`` the mels come from (used by the harmonic template).
        trained_programs: the programs the training data held (the trainer records them; ``None``: unknown).
            Metadata only: every program index still runs, but the demo offers only these.
    """

    _supports_gradient_checkpointing = False
    _no_split_modules = ["MelDiTBlock"]

    @register_to_config
    def __init__(
        self,
        n_mels: int = 80,
        num_frames: int = 128,
        in_channels: int = 1,
        patch_size: tuple[int, int] = (4, 2),
        hidden_size: int = 384,
        num_layers: int = 12,
        num_attention_heads: int = 6,
        mlp_ratio: float = 4.0,
        num_programs: int = 128,
        class_dropout_prob: float = 0.1,
        mel_mean: float = -5.0,
        mel_std: float = 3.0,
        pitch_conditioning: str = "table",
        sample_rate: int = 22050,
        f_min: float = 0.0,
        f_max: float | None = 8000.0,
        trained_programs: list[int] | None = None,
    ):
        super().__init__()
        if trained_programs is not None:
            bad = [p for p in trained_programs if not (isinstance(p, int) and 0 <= p < num_programs)]
            if bad or not trained_programs:
                raise ValueError(
                    f"trained_programs must be a non-empty list of program numbers in [0, {num_programs}); "
                    f"got {trained_programs!r}"
                )
        ph, pw = patch_size
        if pitch_conditioning not in PITCH_CONDITIONINGS:
            raise ValueError(
                f"pitch_conditioning must be one of {PITCH_CONDITIONINGS}; got {pitch_conditioning!r}."
            )
        if n_mels % ph or num_frames % pw:
            raise ValueError(
                f"patch_size {tuple(patch_size)} must divide (n_mels, num_frames) = ({n_mels}, {num_frames})."
            )
        if hidden_size % num_attention_heads:
            raise ValueError(
                f"hidden_size {hidden_size} is not divisible by num_attention_heads {num_attention_heads}."
            )
        self.patch_size = (ph, pw)
        self.grid_size = (n_mels // ph, num_frames // pw)  # (frequency rows, time columns) of the token grid

        self.patch_embed = nn.Conv2d(in_channels, hidden_size, kernel_size=(ph, pw), stride=(ph, pw))
        self.register_buffer(
            "pos_embed", sincos_pos_embed_2d(hidden_size, self.grid_size)[None], persistent=False
        )
        self.time_proj = Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.timestep_embedder = TimestepEmbedding(256, hidden_size)
        # One extra row per table: the null (unconditional) label at the last index.
        self.program_embedder = nn.Embedding(num_programs + 1, hidden_size)
        self.pitch_embedder = nn.Embedding(NUM_MIDI_VALUES + 1, hidden_size)
        self.velocity_embedder = nn.Embedding(NUM_MIDI_VALUES + 1, hidden_size)
        if pitch_conditioning == "harmonic":
            # Fixed templates (a function of the config, so not saved) plus a zero row for the null pitch.
            templates = harmonic_pitch_templates(n_mels, sample_rate, f_min, f_max)
            templates = torch.cat([templates, torch.zeros(1, n_mels)])  # (129, n_mels)
            self.register_buffer("pitch_templates", templates, persistent=False)
            self.pitch_row_embedder = nn.Linear(ph, hidden_size)  # a patch row's ph template values -> D

        self.transformer_blocks = nn.ModuleList(
            [MelDiTBlock(hidden_size, num_attention_heads, mlp_ratio) for _ in range(num_layers)]
        )
        self.norm_out = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.proj_out_1 = nn.Linear(hidden_size, 2 * hidden_size)  # final adaLN (shift, scale)
        self.proj_out_2 = nn.Linear(hidden_size, ph * pw * in_channels)
        self._init_weights()

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> MelDiT:
        """Build a fresh model from a named preset (``"full"`` or ``"small"``), with config overrides."""
        if name not in PRESETS:
            raise ValueError(f"Unknown MelDiT preset {name!r}; choose one of {sorted(PRESETS)}.")
        return cls(**{**PRESETS[name], **overrides})

    def _init_weights(self) -> None:
        def _xavier(module: nn.Module) -> None:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

        self.apply(_xavier)
        w = self.patch_embed.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_embed.bias)
        for emb in (self.program_embedder, self.pitch_embedder, self.velocity_embedder):
            nn.init.normal_(emb.weight, std=0.02)
        nn.init.normal_(self.timestep_embedder.linear_1.weight, std=0.02)
        nn.init.normal_(self.timestep_embedder.linear_2.weight, std=0.02)
        # adaLN-zero: every block starts as the identity and the output layer as zero.
        for block in self.transformer_blocks:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        for layer in (self.proj_out_1, self.proj_out_2):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    @property
    def num_tokens(self) -> int:
        """Tokens per sample at the configured ``num_frames``."""
        return self.grid_size[0] * self.grid_size[1]

    def normalize_mel(self, log_mel: torch.Tensor) -> torch.Tensor:
        """Natural-log mel (``MelConfig`` units) -> model space."""
        return (log_mel - self.config.mel_mean) / self.config.mel_std

    def denormalize_mel(self, x: torch.Tensor) -> torch.Tensor:
        """Model space -> natural-log mel (``MelConfig`` units)."""
        return x * self.config.mel_std + self.config.mel_mean

    def _check_inputs(self, hidden_states: torch.Tensor, labels: dict[str, torch.Tensor]) -> None:
        cfg = self.config
        shape = tuple(hidden_states.shape)
        if hidden_states.ndim != 4 or shape[1] != cfg.in_channels or shape[2] != cfg.n_mels:
            raise ValueError(
                f"hidden_states must have shape (B, {cfg.in_channels}, {cfg.n_mels}, frames), got {shape}."
            )
        if shape[3] % self.patch_size[1]:
            raise ValueError(
                f"The number of frames ({shape[3]}) must be a multiple of the patch width {self.patch_size[1]}."
            )
        upper = {"program": cfg.num_programs, "pitch": NUM_MIDI_VALUES, "velocity": NUM_MIDI_VALUES}
        for name, value in labels.items():
            if value.shape != (shape[0],):
                raise ValueError(
                    f"{name} must have shape ({shape[0]},) (one label per sample), got {tuple(value.shape)}."
                )
            if value.is_floating_point() or value.is_complex():
                raise ValueError(f"{name} must be an integer tensor, got dtype {value.dtype}.")
            bad = value[((value < 0) & (value != NULL_LABEL)) | (value >= upper[name])]
            if bad.numel():
                raise ValueError(
                    f"{name} {int(bad[0])} is out of range: accepted values are 0..{upper[name] - 1}, "
                    f"or {NULL_LABEL} for the unconditional (classifier-free guidance) label."
                )

    @staticmethod
    def _label_index(value: torch.Tensor, null: int, drop: torch.Tensor | None) -> torch.Tensor:
        """Labels with ``NULL_LABEL`` and the dropped samples mapped to the null row ``null``."""
        value = torch.where(value == NULL_LABEL, torch.full_like(value, null), value)
        if drop is not None:
            value = torch.where(drop, torch.full_like(value, null), value)
        return value

    def _embed_label(
        self, embedder: nn.Embedding, value: torch.Tensor, drop: torch.Tensor | None
    ) -> torch.Tensor:
        return embedder(self._label_index(value, embedder.num_embeddings - 1, drop))  # (B, D)

    def _pitch_row_embedding(
        self, pitch: torch.Tensor, drop: torch.Tensor | None, grid: tuple[int, int], dtype: torch.dtype
    ) -> torch.Tensor:
        """``(B, N, D)`` harmonic-template embedding of each token's frequency row (same for every column)."""
        index = self._label_index(pitch, self.pitch_templates.shape[0] - 1, drop)
        rows = self.pitch_templates[index].reshape(pitch.shape[0], grid[0], self.patch_size[0])  # (B, gh, ph)
        emb = self.pitch_row_embedder(rows.to(dtype))  # (B, gh, D)
        return emb[:, :, None, :].expand(-1, -1, grid[1], -1).reshape(pitch.shape[0], grid[0] * grid[1], -1)

    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor | float,
        program: torch.Tensor,
        pitch: torch.Tensor,
        velocity: torch.Tensor,
        return_dict: bool = True,
    ) -> Transformer2DModelOutput | tuple[torch.Tensor]:
        """Predict the flow velocity ``noise - x0``.

        Args:
            hidden_states: ``(B, in_channels, n_mels, frames)`` noisy normalised mels ``x_sigma``.
            timestep: ``(B,)`` or scalar, ``sigma * 1000`` in [0, 1000].
            program, pitch, velocity: ``(B,)`` integer labels; ``NULL_LABEL`` (-1) for unconditional.
            return_dict: return a ``Transformer2DModelOutput`` (else a 1-tuple).

        Returns:
            ``sample``: the velocity, same shape as ``hidden_states``.
        """
        labels = {"program": program, "pitch": pitch, "velocity": velocity}
        if not torch.compiler.is_compiling():
            self._check_inputs(hidden_states, labels)
        b, _, n_mels, frames = hidden_states.shape
        grid = (n_mels // self.patch_size[0], frames // self.patch_size[1])

        # Contiguous (B, N, D): every block's linear layers run about 5% faster than on the transposed view.
        tokens = self.patch_embed(hidden_states).flatten(2).transpose(1, 2).contiguous()  # (B, N, D)
        if grid == self.grid_size:
            pos = self.pos_embed
        else:
            pos = sincos_pos_embed_2d(self.config.hidden_size, grid)[None].to(tokens.device)
        tokens = tokens + pos.to(tokens.dtype)

        timestep = torch.as_tensor(timestep, device=hidden_states.device).reshape(-1).expand(b)
        t_freq = self.time_proj(timestep).to(tokens.dtype)  # (B, 256)
        drop = None
        if self.training and self.config.class_dropout_prob > 0:
            drop = torch.rand(b, device=hidden_states.device) < self.config.class_dropout_prob
        if self.config.pitch_conditioning == "harmonic":
            tokens = tokens + self._pitch_row_embedding(pitch, drop, grid, tokens.dtype)
        temb = (
            self.timestep_embedder(t_freq)
            + self._embed_label(self.program_embedder, program, drop)
            + self._embed_label(self.pitch_embedder, pitch, drop)
            + self._embed_label(self.velocity_embedder, velocity, drop)
        )  # (B, D)

        for block in self.transformer_blocks:
            tokens = block(tokens, temb)

        modulation = self.proj_out_1(nn.functional.silu(temb))[:, None, :]  # (B, 1, 2D)
        shift, scale = modulation.chunk(2, dim=-1)
        tokens = self.norm_out(tokens) * (1 + scale) + shift
        tokens = self.proj_out_2(tokens)  # (B, N, ph * pw * C)
        output = unpatchify(tokens, self.patch_size, grid)  # (B, C, n_mels, frames)
        if not return_dict:
            return (output,)
        return Transformer2DModelOutput(sample=output)


def guidance_labels(labels: Sequence[torch.Tensor], guidance_scale: float) -> list[torch.Tensor]:
    """The label batches a guided forward takes: ``(B,)`` each, or ``(2B,)`` each under classifier-free guidance
    (``guidance_scale != 1``): the conditional rows first, then the same rows with :data:`NULL_LABEL`."""
    labels = list(labels)
    if guidance_scale == 1.0:
        return labels
    return [torch.cat([v, torch.full_like(v, NULL_LABEL)]) for v in labels]


def guided_velocity(
    transformer: MelDiT,
    x: torch.Tensor,
    timestep: torch.Tensor,
    labels: Sequence[torch.Tensor],
    guidance_scale: float = 1.0,
) -> torch.Tensor:
    """Classifier-free guided velocity ``v_u + w (v_c - v_u)`` in one forward (the pipeline and the samplers' one).

    ``x (B, C, n_mels, frames)`` and ``timestep (B,)`` are the conditional rows; ``labels`` come from
    :func:`guidance_labels` with the same ``guidance_scale`` (``w``). With ``w == 1`` only the conditional rows run.
    """
    if guidance_scale == 1.0:
        return transformer(x, timestep, *labels, return_dict=False)[0]
    v = transformer(torch.cat([x, x]), torch.cat([timestep, timestep]), *labels, return_dict=False)[0]
    v_cond, v_uncond = v.chunk(2)
    return v_uncond + guidance_scale * (v_cond - v_uncond)


def rectified_flow_loss(
    model: MelDiT,
    x0: torch.Tensor,
    program: torch.Tensor,
    pitch: torch.Tensor,
    velocity: torch.Tensor,
    sigmas: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Rectified-flow MSE: ``|| model(x_sigma, 1000 sigma) - (noise - x0) ||^2`` (Liu et al., arXiv 2209.03003).

    ``x0`` is ``(B, 1, n_mels, frames)`` in model space; ``sigmas`` ``(B,)`` defaults to uniform in [0, 1].
    """
    b = x0.shape[0]
    if sigmas is None:
        sigmas = torch.rand(b, generator=generator, device=x0.device, dtype=x0.dtype)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    s = sigmas.reshape(b, *([1] * (x0.ndim - 1)))
    x_sigma = (1 - s) * x0 + s * noise
    pred = model(x_sigma, sigmas * 1000, program, pitch, velocity).sample
    return nn.functional.mse_loss(pred.float(), (noise - x0).float())
