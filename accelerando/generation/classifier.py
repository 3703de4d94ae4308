"""NoteClassifier: a small CNN that recognises the instrument and the MIDI pitch of a single-note log-mel.

It exists to measure generated notes (MelDiT and its accelerated samplers): conditional accuracy (instrument
asked vs recognised, pitch asked vs heard) and a Fréchet distance in its embedding space between generated
and held-out real notes (``accelerando.metrics.frechet_distance``). That distance is our own metric, tied to
this classifier and the local fluidsynth note corpus; it is not FAD.

Input: natural-log mels ``(B, n_mels, T)`` or ``(B, 1, n_mels, T)`` from ``accelerando.audio.mel_spectrogram``
(the default ``MelConfig``), with ``T >= min_frames``. The model looks at the first ``num_frames`` frames from
the onset (longer inputs are cropped, shorter ones padded with the log-mel floor of silence), normalised with
the fixed ``mel_mean`` / ``mel_std`` of its config.

Example::

    from accelerando.generation.classifier import NoteClassifier, note_metrics
    from accelerando.pretrained import pretrained_path

    clf = NoteClassifier.from_pretrained(pretrained_path("note-classifier")).eval()
    out = clf.predict(mels)  # {"program": (B,), "pitch": (B,)}
    scores = note_metrics(clf, mels, programs, pitches, reference_embeddings=clf.embed(real_mels))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from torch import nn

from accelerando.metrics.frechet import frechet_distance
from accelerando.modeling import AccelerandoModel

__all__ = ["NUM_PITCHES", "ConvBlock", "NoteClassifier", "note_metrics"]

NUM_PITCHES = 128  # MIDI pitches 0-127
LOG_MEL_FLOOR = math.log(1e-5)  # MelConfig's clamp: the log-mel value of silence

# The note corpus's instruments (accelerando.data.midi_render.GM_INSTRUMENTS used by `corpus instruments`).
DEFAULT_PROGRAMS = (0, 11, 19, 24, 33, 40, 42, 48, 56, 65, 71, 73)
DEFAULT_FAMILIES = (
    "keyboard", "mallet", "organ", "guitar", "bass", "string", "string", "string", "brass", "reed", "reed", "flute",
)  # fmt: skip


class ConvBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and GELU, then max pooling: ``(B, C_in, F, T) -> (B, C_out, F/pf, T/pt)``."""

    def __init__(self, in_channels: int, out_channels: int, pool: tuple[int, int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(out_channels)
        self.pool = nn.MaxPool2d(pool) if pool != (1, 1) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.norm1(self.conv1(x)))
        x = F.gelu(self.norm2(self.conv2(x)))
        return self.pool(x)


class NoteClassifier(AccelerandoModel):
    """Instrument (GM program) and MIDI-pitch classifier over single-note log-mels, with an embedding.

    Architecture: a stem strided by 4 over time, three ``ConvBlock`` s (pooling frequency by 2 twice, time by
    2 three times), a mean over time that keeps the frequency axis (pitch is a position on it), a 1x1
    projection, flatten, and a linear layer to the ``embedding_dim`` embedding; two linear heads read it.

    Args:
        programs: the GM programs (0-127) of the instrument head, in class order.
        families: the instrument family of each program (same length), for family accuracy.
        n_mels: mel bins of the input.
        num_frames: frames looked at (the first ``num_frames`` from the onset; shorter inputs padded).
        min_frames: inputs shorter than this are refused (too little of the note to judge).
        channels: channels of the stem and of the three conv blocks.
        freq_channels: channels per frequency bin before flattening.
        embedding_dim: size of the embedding (the Fréchet-distance space).
        dropout: dropout before the heads (training only).
        mel_mean, mel_std: fixed normalisation of the natural-log mels (training-set statistics).
    """

    @register_to_config
    def __init__(
        self,
        programs: Sequence[int] = DEFAULT_PROGRAMS,
        families: Sequence[str] = DEFAULT_FAMILIES,
        n_mels: int = 80,
        num_frames: int = 128,
        min_frames: int = 32,
        channels: Sequence[int] = (24, 32, 64, 128),
        freq_channels: int = 32,
        embedding_dim: int = 128,
        dropout: float = 0.2,
        mel_mean: float = -8.8,
        mel_std: float = 2.7,
    ) -> None:
        super().__init__()
        programs, families, channels = list(programs), list(families), list(channels)
        if not programs or len(set(programs)) != len(programs) or not all(0 <= p <= 127 for p in programs):
            raise ValueError(f"programs must be distinct GM program numbers 0-127; got {programs}")
        if len(families) != len(programs):
            raise ValueError(
                f"families must name one family per program; got {len(families)} for {len(programs)}"
            )
        if len(channels) != 4:
            raise ValueError(f"channels must list 4 widths (stem and three blocks); got {channels}")
        if n_mels % 4 != 0 or num_frames % 32 != 0:
            raise ValueError(
                f"n_mels must be a multiple of 4 and num_frames of 32; got {n_mels}, {num_frames}"
            )
        if not 1 <= min_frames <= num_frames:
            raise ValueError(f"min_frames must be in [1, num_frames={num_frames}]; got {min_frames}")
        self.stem = nn.Sequential(
            nn.Conv2d(1, channels[0], 3, stride=(1, 4), padding=1, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.GELU(),
        )
        self.blocks = nn.ModuleList(
            [
                ConvBlock(channels[0], channels[1], (2, 2)),
                ConvBlock(channels[1], channels[2], (2, 2)),
                ConvBlock(channels[2], channels[3], (1, 2)),
            ]
        )
        self.freq_proj = nn.Conv1d(channels[3], freq_channels, 1)
        self.to_embedding = nn.Linear(freq_channels * (n_mels // 4), embedding_dim)
        self.head_dropout = nn.Dropout(dropout)
        self.instrument_head = nn.Linear(embedding_dim, len(programs))
        self.pitch_head = nn.Linear(embedding_dim, NUM_PITCHES)

    # -- input handling -----------------------------------------------------------------------------

    def prepare_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """Check, crop/pad and normalise ``(B, n_mels, T)`` or ``(B, 1, n_mels, T)`` log-mels to ``(B, 1, n_mels, num_frames)``."""
        cfg = self.config
        if not isinstance(mel, torch.Tensor):
            raise ValueError(f"mel must be a torch.Tensor of log-mels; got {type(mel).__name__}")
        if mel.ndim == 4 and mel.shape[1] == 1:
            mel = mel[:, 0]
        if mel.ndim != 3 or mel.shape[1] != cfg.n_mels:
            raise ValueError(
                f"mel must be (B, {cfg.n_mels}, frames) or (B, 1, {cfg.n_mels}, frames) natural-log mels; "
                f"got shape {tuple(mel.shape)}"
            )
        if mel.shape[0] == 0:
            raise ValueError("mel is an empty batch")
        if mel.shape[2] < cfg.min_frames:
            raise ValueError(f"mel has {mel.shape[2]} frames; the classifier needs at least {cfg.min_frames}")
        if not torch.isfinite(mel).all():
            raise ValueError("mel contains NaN or infinite values")
        mel = mel[:, :, : cfg.num_frames].to(self.dtype)
        mel = F.pad(mel, (0, cfg.num_frames - mel.shape[2]), value=LOG_MEL_FLOOR)  # (B, n_mels, num_frames)
        return ((mel - cfg.mel_mean) / cfg.mel_std)[:, None]  # (B, 1, n_mels, num_frames)

    # -- model --------------------------------------------------------------------------------------

    def forward(self, mel: torch.Tensor) -> dict[str, torch.Tensor]:
        """``mel`` log-mels -> ``{"instrument_logits": (B, P), "pitch_logits": (B, 128), "embedding": (B, E)}``."""
        x = self.prepare_mel(mel)  # (B, 1, F, T)
        x = self.stem(x)  # (B, C0, F, T/4)
        for block in self.blocks:
            x = block(x)  # -> (B, C3, F/4, T/32)
        x = x.mean(dim=3)  # (B, C3, F/4): pooled over time, frequency kept
        x = F.gelu(self.freq_proj(x))  # (B, freq_channels, F/4)
        embedding = self.to_embedding(x.flatten(1))  # (B, E)
        h = self.head_dropout(F.gelu(embedding))
        return {
            "instrument_logits": self.instrument_head(h),
            "pitch_logits": self.pitch_head(h),
            "embedding": embedding,
        }

    @property
    def programs(self) -> list[int]:
        """GM programs of the instrument classes, in class order."""
        return list(self.config.programs)

    def family_of(self, program: int) -> str:
        """The family of a GM program the classifier knows."""
        return self.config.families[self.program_index(torch.tensor([program]))[0].item()]

    def program_index(self, programs: torch.Tensor) -> torch.Tensor:
        """Class indices ``(B,)`` of GM programs ``(B,)``; ``ValueError`` for programs the classifier does not know."""
        table = torch.full((128,), -1, dtype=torch.long)
        table[torch.tensor(self.programs)] = torch.arange(len(self.programs))
        programs = torch.as_tensor(programs, dtype=torch.long).cpu()
        if ((programs < 0) | (programs > 127)).any() or (table[programs.clamp(0, 127)] < 0).any():
            raise ValueError(
                f"programs {sorted(set(programs.tolist()) - set(self.programs))} are not classes of this "
                f"classifier; it knows GM programs {self.programs}"
            )
        return table[programs]

    @torch.no_grad()
    def predict(self, mel: torch.Tensor) -> dict[str, torch.Tensor]:
        """Most likely GM ``program`` ``(B,)`` and MIDI ``pitch`` ``(B,)`` (long, on the model's device)."""
        out = self(mel)
        programs = torch.tensor(self.programs, device=out["instrument_logits"].device)
        return {
            "program": programs[out["instrument_logits"].argmax(dim=-1)],
            "pitch": out["pitch_logits"].argmax(dim=-1),
        }

    @torch.no_grad()
    def embed(self, mel: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Embeddings ``(B, embedding_dim)`` of log-mels, computed in batches of ``batch_size``."""
        if not isinstance(mel, torch.Tensor) or mel.ndim not in (3, 4):
            shape = tuple(mel.shape) if isinstance(mel, torch.Tensor) else type(mel).__name__
            raise ValueError(f"mel must be (B, n_mels, frames) or (B, 1, n_mels, frames); got {shape}")
        return torch.cat([self(chunk)["embedding"] for chunk in mel.split(batch_size)])


@torch.no_grad()
def note_metrics(
    classifier: NoteClassifier,
    mels: torch.Tensor,
    programs: Sequence[int] | torch.Tensor,
    pitches: Sequence[int] | torch.Tensor,
    reference_embeddings: torch.Tensor | None = None,
    batch_size: int = 64,
) -> dict[str, float]:
    """Conditional accuracy of notes against what was asked, and their Fréchet distance to real notes.

    Args:
        classifier: a ``NoteClassifier`` (put it in ``eval()`` mode; this function does not change the mode).
        mels: ``(B, n_mels, T)`` or ``(B, 1, n_mels, T)`` log-mels, e.g. generated by ``MelDiTPipeline``.
        programs: ``(B,)`` GM programs asked for; each must be one of ``classifier.programs``.
        pitches: ``(B,)`` MIDI pitches asked for (0-127).
        reference_embeddings: ``(N, E)`` ``classifier.embed`` of held-out real notes; when given, the result has
            ``frechet_distance`` (our own Fréchet distance in this classifier's embedding, not FAD).
        batch_size: notes per forward pass.

    Returns:
        ``instrument_accuracy`` (program recognised == asked), ``family_accuracy``, ``pitch_accuracy`` (exact),
        ``pitch_accuracy_within_1`` (within one semitone), ``num_notes`` and optionally ``frechet_distance``.
    """
    programs = torch.as_tensor(programs, dtype=torch.long).reshape(-1).cpu()
    pitches = torch.as_tensor(pitches, dtype=torch.long).reshape(-1).cpu()
    if not isinstance(mels, torch.Tensor) or mels.ndim not in (3, 4):
        raise ValueError("mels must be a (B, n_mels, frames) or (B, 1, n_mels, frames) tensor")
    if not len(programs) == len(pitches) == mels.shape[0]:
        raise ValueError(
            f"mels, programs and pitches must have one entry per note; got {mels.shape[0]}, "
            f"{len(programs)}, {len(pitches)}"
        )
    if ((pitches < 0) | (pitches >= NUM_PITCHES)).any():
        raise ValueError(f"pitches must be MIDI numbers 0-127; got {pitches.tolist()}")
    asked = classifier.program_index(programs)
    families = classifier.config.families
    inst_pred, pitch_pred, embeddings = [], [], []
    for chunk in mels.split(batch_size):
        out = classifier(chunk)
        inst_pred.append(out["instrument_logits"].argmax(-1).cpu())
        pitch_pred.append(out["pitch_logits"].argmax(-1).cpu())
        embeddings.append(out["embedding"].cpu())
    inst, pitch = torch.cat(inst_pred), torch.cat(pitch_pred)
    family_hit = [families[int(a)] == families[int(p)] for a, p in zip(asked, inst)]
    result = {
        "instrument_accuracy": (inst == asked).float().mean().item(),
        "family_accuracy": sum(family_hit) / len(family_hit),
        "pitch_accuracy": (pitch == pitches).float().mean().item(),
        "pitch_accuracy_within_1": ((pitch - pitches).abs() <= 1).float().mean().item(),
        "num_notes": float(len(pitches)),
    }
    if reference_embeddings is not None:
        result["frechet_distance"] = frechet_distance(torch.cat(embeddings), reference_embeddings)
    return result
