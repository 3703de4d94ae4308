"""Incremental FastPitch: FastPitch 1.1 with a learned aligner and a chunk-streaming decoder.

FastPitch 1.1 (Łańcucki, 2021; NVIDIA DeepLearningExamples): an FFT-block encoder over phonemes,
per-phoneme duration / pitch / energy predictors, a length regulator with pace control, and an
FFT-block decoder to 80-bin mels (the shared :class:`accelerando.audio.MelConfig`). Alignment is
learned ("One TTS Alignment to Rule Them All"). Incremental FastPitch (Du et al., 2024,
arXiv 2401.01755) runs the encoder and predictors once per utterance and the decoder per chunk of
``S_c`` frames, attending to the cached keys/values of the last ``S_p`` frames, with causal convs.

Example::

    import torch
    from accelerando.tts import IncrementalFastPitch, TextFrontend

    fe = TextFrontend()
    model = IncrementalFastPitch.from_preset("small").eval()
    ids = torch.tensor([fe.encode("Hello world.")])  # (1, N)
    mel, durations = model.infer(ids, speaker=0, pace=1.0)  # (1, 80, frames), (1, N)
    enc = model.encode(ids, speaker=0)
    for chunk in model.decode_chunks(enc.features):  # (1, 80, <= 30) each, as soon as it is ready
        ...
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from torch import Tensor, nn

from ...modeling import AccelerandoModel
from ..frontend import DEFAULT_SYMBOLS, TextFrontend
from .aligner import (
    AlignmentEncoder,
    average_per_token,
    beta_binomial_prior,
    monotonic_alignment_search,
)
from .loss import fastpitch_loss
from .modules import (
    ChunkFFTBlock,
    FFTBlock,
    TemporalPredictor,
    chunk_attention_mask,
    dynamic_chunk_masks,
    regulate_length,
    sinusoidal_embedding,
)
from .outputs import EncoderOutput, FastPitchOutput

__all__ = ["EncoderOutput", "FastPitchOutput", "IncrementalFastPitch", "PRESETS"]

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "small": dict(
        d_model=128,
        d_head=64,
        conv_filter=512,
        enc_layers=2,
        dec_layers=2,
        predictor_filters=128,
        aligner_channels=64,
    ),
}


class IncrementalFastPitch(AccelerandoModel):
    """FastPitch 1.1 text → mel with a learned aligner and chunked (streaming) decoding.

    Args:
        n_symbols: size of the phoneme symbol table (``symbols`` when given).
        n_speakers: number of voices (one embedding each).
        d_model, n_heads, d_head, conv_filter, kernel: FFT block sizes (paper: 384, 1, 64, 1536, 3).
        enc_layers, dec_layers: FFT blocks in the encoder and (chunked) decoder (paper: 6 + 6).
        predictor_filters, predictor_kernel: duration / pitch / energy predictors (paper: 256, 3).
        use_energy: predict and condition on per-token energy (FastPitch 1.1's optional energy).
        chunk_size, past_size: default streaming chunk ``S_c`` and cached past ``S_p`` in frames.
        n_mels: mel bins (the shared ``MelConfig``: 80).
        pitch_mean, pitch_std: statistics (Hz) of voiced pitch in the training corpus.
        aligner_channels, aligner_temperature: the alignment encoder's shared space and scale.
        max_duration: cap on a predicted token duration (frames).
        symbols, language: the text front end's table and espeak voice, saved with the model.
        speakers: optional voice names, index = speaker id.
    """

    @register_to_config
    def __init__(
        self,
        n_symbols: int = len(DEFAULT_SYMBOLS),
        n_speakers: int = 1,
        d_model: int = 384,
        n_heads: int = 1,
        d_head: int = 64,
        conv_filter: int = 1536,
        kernel: int = 3,
        enc_layers: int = 6,
        dec_layers: int = 6,
        dropout: float = 0.1,
        attn_dropout: float = 0.1,
        predictor_filters: int = 256,
        predictor_kernel: int = 3,
        predictor_dropout: float = 0.1,
        use_energy: bool = True,
        chunk_size: int = 30,
        past_size: int = 5,
        n_mels: int = 80,
        pitch_mean: float = 0.0,
        pitch_std: float = 1.0,
        aligner_channels: int = 80,
        aligner_temperature: float = 0.0005,
        max_duration: int = 75,
        symbols: list[str] | None = None,
        language: str = "en-us",
        speakers: list[str] | None = None,
    ) -> None:
        super().__init__()
        if symbols is not None and len(symbols) != n_symbols:
            raise ValueError(f"n_symbols={n_symbols} but the symbol table has {len(symbols)} entries.")
        if speakers is not None and len(speakers) != n_speakers:
            raise ValueError(f"n_speakers={n_speakers} but {len(speakers)} speaker names were given.")
        block = dict(
            d_model=d_model,
            n_heads=n_heads,
            d_head=d_head,
            d_inner=conv_filter,
            kernel=kernel,
            dropout=dropout,
            attn_dropout=attn_dropout,
        )
        self.embedding = nn.Embedding(n_symbols, d_model, padding_idx=0)
        self.speaker_embedding = nn.Embedding(n_speakers, d_model)
        self.encoder = nn.ModuleList(FFTBlock(**block) for _ in range(enc_layers))
        predictor = dict(filters=predictor_filters, kernel=predictor_kernel, dropout=predictor_dropout)
        self.duration_predictor = TemporalPredictor(d_model, **predictor)
        self.pitch_predictor = TemporalPredictor(d_model, **predictor)
        self.pitch_embedding = nn.Conv1d(1, d_model, 3, padding=1)
        self.energy_predictor = TemporalPredictor(d_model, **predictor) if use_energy else None
        self.energy_embedding = nn.Conv1d(1, d_model, 3, padding=1) if use_energy else None
        self.decoder = nn.ModuleList(ChunkFFTBlock(**block) for _ in range(dec_layers))
        self.mel_proj = nn.Linear(d_model, n_mels)
        self.aligner = AlignmentEncoder(n_mels, d_model, aligner_channels, aligner_temperature)

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def from_preset(cls, name: str = "paper", **overrides: Any) -> IncrementalFastPitch:
        """``"paper"`` (6 + 6 FFT layers, d_model 384) or ``"small"`` (2 + 2, d_model 128, for CPU)."""
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
        kwargs = {"symbols": list(DEFAULT_SYMBOLS), "n_symbols": len(DEFAULT_SYMBOLS), **PRESETS[name]}
        kwargs.update(overrides)
        return cls(**kwargs)

    def text_frontend(self) -> TextFrontend:
        """The :class:`TextFrontend` whose symbol table this model was trained with."""
        symbols = self.config.symbols if self.config.symbols is not None else DEFAULT_SYMBOLS
        return TextFrontend(language=self.config.language, symbols=symbols)

    def speaker_id(self, speaker: int | str) -> int:
        """A speaker id from an id or a voice name; ``ValueError`` naming the unknown value."""
        names = self.config.speakers or []
        if isinstance(speaker, str):
            if speaker not in names:
                raise ValueError(f"Unknown speaker {speaker!r}; this model has voices {names}.")
            return names.index(speaker)
        if not 0 <= int(speaker) < self.config.n_speakers:
            raise ValueError(
                f"Unknown speaker id {int(speaker)}; valid ids are 0..{self.config.n_speakers - 1}."
            )
        return int(speaker)

    # ------------------------------------------------------------------ input checks
    def _check_ids(self, ids: Tensor | Sequence[int], ids_lens: Tensor | None) -> tuple[Tensor, Tensor]:
        device = self.embedding.weight.device
        ids = torch.as_tensor(ids, dtype=torch.long, device=device)
        if ids.dim() == 1:
            ids = ids[None]
        if ids.dim() != 2 or ids.shape[1] == 0:
            raise ValueError(
                f"ids must be a non-empty (B, N) or (N,) sequence, got shape {tuple(ids.shape)}."
            )
        bad = ids[(ids < 0) | (ids >= self.config.n_symbols)]
        if bad.numel():
            raise ValueError(
                f"Symbol id {int(bad[0])} is outside the table (0..{self.config.n_symbols - 1})."
            )
        if ids_lens is None:
            ids_lens = (ids != 0).sum(1)
        ids_lens = torch.as_tensor(ids_lens, dtype=torch.long, device=device)
        if (ids_lens <= 0).any():
            raise ValueError("ids must hold at least one non-pad symbol per utterance (got an empty one).")
        return ids, ids_lens

    def _speaker_tensor(self, speaker: int | str | Tensor | Sequence[int], batch: int) -> Tensor:
        if isinstance(speaker, Tensor):
            values = [self.speaker_id(int(s)) for s in speaker.flatten()]
        elif isinstance(speaker, (int, str)):
            values = [self.speaker_id(speaker)] * batch
        else:
            values = [self.speaker_id(s) for s in speaker]
        if len(values) == 1:
            values = values * batch
        if len(values) != batch:
            raise ValueError(f"Got {len(values)} speaker ids for a batch of {batch}.")
        return torch.tensor(values, dtype=torch.long, device=self.embedding.weight.device)

    # ------------------------------------------------------------------ encoder side
    def _encode_text(self, ids: Tensor, ids_lens: Tensor, speaker: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """→ (text embedding (B, N, D), encoder output (B, N, D), token mask (B, N, 1))."""
        n = ids.shape[1]
        mask = (torch.arange(n, device=ids.device)[None] < ids_lens[:, None])[..., None].float()  # (B,N,1)
        emb = self.embedding(ids)  # (B, N, D)
        pos = sinusoidal_embedding(torch.arange(n, device=ids.device), self.config.d_model)  # (N, D)
        h = (emb + pos[None] + self.speaker_embedding(speaker)[:, None]) * mask
        key_valid = mask[..., 0].bool()
        attn_mask = key_valid[:, None, :] | torch.eye(n, dtype=torch.bool, device=ids.device)[None]
        for block in self.encoder:
            h = block(h, mask, attn_mask)
        return emb, h, mask

    def _add_prosody(self, enc: Tensor, pitch: Tensor, energy: Tensor | None) -> Tensor:
        enc = enc + self.pitch_embedding(pitch[:, None]).transpose(1, 2)  # (B, N, D)
        if self.energy_embedding is not None and energy is not None:
            enc = enc + self.energy_embedding(energy[:, None]).transpose(1, 2)
        return enc

    @torch.no_grad()
    def encode(
        self,
        ids: Tensor | Sequence[int],
        speaker: int | str | Tensor = 0,
        pace: float = 1.0,
        ids_lens: Tensor | None = None,
    ) -> EncoderOutput:
        """Encoder + predictors + length regulation, once per utterance: ids (B, N) → decoder inputs."""
        if not pace > 0:
            raise ValueError(f"pace must be > 0, got {pace}.")
        ids, ids_lens = self._check_ids(ids, ids_lens)
        spk = self._speaker_tensor(speaker, ids.shape[0])
        _, enc, mask = self._encode_text(ids, ids_lens, spk)
        log_dur = self.duration_predictor(enc, mask)[..., 0]  # (B, N)
        dur = (log_dur.exp() - 1).clamp(0, self.config.max_duration) * mask[..., 0]
        dur[:, 0] = dur[:, 0].clamp(min=pace)  # at least one frame per utterance
        pitch = self.pitch_predictor(enc, mask)[..., 0]
        energy = self.energy_predictor(enc, mask)[..., 0] if self.energy_predictor is not None else None
        features, lengths, reps = regulate_length(self._add_prosody(enc, pitch, energy), dur, pace)
        return EncoderOutput(features, lengths, reps, pitch, energy)

    # ------------------------------------------------------------------ decoder side
    def _decoder_mask(
        self, lengths: Tensor, num_frames: int, chunk_mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """→ (frame mask (B, T, 1) float, attention mask (B, T, T) bool)."""
        frames = torch.arange(num_frames, device=lengths.device)
        valid = frames[None] < lengths[:, None]  # (B, T)
        eye = torch.eye(num_frames, dtype=torch.bool, device=lengths.device)
        attn = valid[:, None, :] | eye[None]  # padded keys hidden; a padded query still sees itself
        if chunk_mask is not None:
            attn = attn & (chunk_mask if chunk_mask.dim() == 3 else chunk_mask[None])
        return valid[..., None].float(), attn

    def _run_decoder(self, x: Tensor, mask: Tensor, attn_mask: Tensor) -> Tensor:
        pos = sinusoidal_embedding(torch.arange(x.shape[1], device=x.device), self.config.d_model)
        h = (x + pos[None]) * mask
        for block in self.decoder:
            h = block(h, mask, attn_mask)
        return self.mel_proj(h).transpose(1, 2) * mask.transpose(1, 2)  # (B, n_mels, T)

    def _sizes(self, chunk_size: int | None, past_size: int | None) -> tuple[int, int]:
        c = self.config.chunk_size if chunk_size is None else int(chunk_size)
        p = self.config.past_size if past_size is None else int(past_size)
        if c < 1 or p < 0:
            raise ValueError(f"chunk_size must be >= 1 and past_size >= 0, got {c} and {p}.")
        return c, p

    def decode_full_masked(
        self,
        features: Tensor | EncoderOutput,
        lengths: Tensor | None = None,
        chunk_size: int | None = None,
        past_size: int | None = None,
    ) -> Tensor:
        """The decoder over the whole utterance with the chunk attention mask: (B, T, D) → (B, n_mels, T)."""
        if isinstance(features, EncoderOutput):
            features, lengths = features.features, features.lengths
        c, p = self._sizes(chunk_size, past_size)
        b, t, _ = features.shape
        if lengths is None:
            lengths = torch.full((b,), t, dtype=torch.long, device=features.device)
        mask, attn = self._decoder_mask(lengths, t, chunk_attention_mask(t, c, p, features.device))
        return self._run_decoder(features, mask, attn)

    @torch.no_grad()
    def decode_chunks(
        self,
        features: Tensor | EncoderOutput,
        lengths: Tensor | None = None,
        chunk_size: int | None = None,
        past_size: int | None = None,
    ) -> Iterator[Tensor]:
        """Stream the decoder chunk by chunk, yielding mels (B, n_mels, <= S_c) with k/v + conv caches.

        The concatenation equals :meth:`decode_full_masked` with the same sizes (float tolerance).
        """
        if isinstance(features, EncoderOutput):
            features, lengths = features.features, features.lengths
        c, p = self._sizes(chunk_size, past_size)
        b, t, d = features.shape
        if lengths is None:
            lengths = torch.full((b,), t, dtype=torch.long, device=features.device)
        caches = [blk.init_cache(b, features.device, features.dtype) for blk in self.decoder]
        for t0 in range(0, t, c):
            t1 = min(t0 + c, t)
            frames = torch.arange(t0, t1, device=features.device)
            valid = frames[None] < lengths[:, None]  # (B, C)
            mask = valid[..., None].float()
            n_past = caches[0].key.shape[2]
            eye = torch.eye(t1 - t0, dtype=torch.bool, device=features.device)
            attn = torch.cat(
                [valid.new_ones(b, t1 - t0, n_past), valid[:, None, :] | eye[None]], dim=2
            )  # (B, C, P + C)
            h = (features[:, t0:t1] + sinusoidal_embedding(frames, d)[None]) * mask
            for i, block in enumerate(self.decoder):
                h, caches[i] = block.forward_chunk(h, mask, attn, caches[i], p)
            yield self.mel_proj(h).transpose(1, 2) * mask.transpose(1, 2)

    @torch.no_grad()
    def infer(
        self, ids: Tensor | Sequence[int], speaker: int | str | Tensor = 0, pace: float = 1.0
    ) -> tuple[Tensor, Tensor]:
        """Text ids → ``(mel (B, n_mels, frames), durations (B, N))`` with the default chunk mask."""
        enc = self.encode(ids, speaker, pace)
        return self.decode_full_masked(enc), enc.durations

    # ------------------------------------------------------------------ training
    def forward(
        self,
        ids: Tensor,
        ids_lens: Tensor,
        mel: Tensor,
        mel_lens: Tensor,
        pitch: Tensor,
        speaker: Tensor | int = 0,
        attn_prior: Tensor | None = None,
        mask_mode: str = "static",
        generator: torch.Generator | None = None,
    ) -> FastPitchOutput:
        """Teacher-forced training pass.

        ids (B, N), ids_lens (B,), mel (B, n_mels, T) log mel, mel_lens (B,), pitch (B, T) frame f0
        in Hz with 0 for unvoiced, speaker (B,), attn_prior (B, T, N) or None (beta-binomial).
        ``mask_mode``: ``"static"`` (config chunk/past), ``"dynamic"`` (random per utterance) or
        ``"full"`` (no chunk mask, parallel FastPitch).
        """
        ids, ids_lens = self._check_ids(ids, ids_lens)
        mel_lens = torch.as_tensor(mel_lens, dtype=torch.long, device=mel.device)
        spk = self._speaker_tensor(speaker, ids.shape[0])
        emb, enc, mask = self._encode_text(ids, ids_lens, spk)
        if attn_prior is None:
            attn_prior = mel.new_zeros(mel.shape[0], mel.shape[2], ids.shape[1])
            for b, (n, t) in enumerate(zip(ids_lens.tolist(), mel_lens.tolist())):
                attn_prior[b, :t, :n] = beta_binomial_prior(n, t).to(mel)
        attn_soft, attn_logprob = self.aligner(mel, emb.transpose(1, 2), mask[..., 0].bool(), attn_prior)
        attn_hard = monotonic_alignment_search(attn_soft, ids_lens, mel_lens)
        dur_target = attn_hard.sum(2)[:, 0]  # (B, N)

        log_dur_pred = self.duration_predictor(enc, mask)[..., 0]
        pitch_pred = self.pitch_predictor(enc, mask)[..., 0]
        pitch_tok = average_per_token(pitch, dur_target)
        pitch_target = torch.where(
            pitch_tok != 0, (pitch_tok - self.config.pitch_mean) / self.config.pitch_std, pitch_tok
        )
        energy_pred = energy_target = None
        if self.energy_predictor is not None:
            energy_pred = self.energy_predictor(enc, mask)[..., 0]
            energy_target = average_per_token(mel.mean(1), dur_target)  # mean log-mel per token
        enc = self._add_prosody(enc, pitch_target, energy_target)
        features, _, _ = regulate_length(enc, dur_target)
        t = mel.shape[2]
        features = F.pad(features, (0, 0, 0, max(t - features.shape[1], 0)))[:, :t]
        if mask_mode == "static":
            chunk = chunk_attention_mask(t, self.config.chunk_size, self.config.past_size, mel.device)
        elif mask_mode == "dynamic":
            chunk, _, _ = dynamic_chunk_masks(mel.shape[0], t, generator=generator, device=mel.device)
        elif mask_mode == "full":
            chunk = None
        else:
            raise ValueError(f"Unknown mask_mode {mask_mode!r}; use 'static', 'dynamic' or 'full'.")
        frame_mask, attn = self._decoder_mask(mel_lens, t, chunk)
        mel_pred = self._run_decoder(features, frame_mask, attn)
        return FastPitchOutput(
            mel_pred,
            log_dur_pred,
            dur_target,
            pitch_pred,
            pitch_target,
            energy_pred,
            energy_target,
            attn_soft,
            attn_hard,
            attn_logprob,
            ids_lens,
            mel_lens,
        )

    def loss(
        self, out: FastPitchOutput, mel: Tensor, step: int = 0, **weights: Any
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """FastPitch 1.1 training loss (see :func:`~accelerando.tts.fastpitch.loss.fastpitch_loss`
        for the weights and the binarization warm-up). Returns ``(total, parts)``."""
        return fastpitch_loss(out, mel, step=step, **weights)
