"""Training data for Incremental FastPitch: phoneme ids, log mels, frame pitch and speaker ids.

:class:`TTSDataset` wraps an LJSpeech-style dataset (items ``{"audio", "mel", "text", "speaker",
"id"}``, e.g. :class:`accelerando.data.datasets.LJSpeechDataset`) and turns each utterance into

- ``ids`` (N,) phoneme ids from the :class:`~accelerando.tts.TextFrontend` (cached in memory),
- ``mel`` (n_mels, T) natural-log mel of the shared ``MelConfig``,
- ``pitch`` (T,) f0 in Hz per mel frame from pYIN (:func:`accelerando.audio.extract_f0`), 0 where
  unvoiced. pYIN is slow (about a second per second of audio on one core), so each utterance's pitch
  is cached on disk as ``<cache_dir>/<id>.npy`` and computed only once,
- ``speaker`` the index of the item's voice in ``speakers``.

:func:`collate` pads a batch and adds the beta-binomial alignment prior; :func:`compute_pitch_stats`
gives the voiced-pitch mean / std stored in the model config (``pitch_mean``, ``pitch_std``).

Example::

    from accelerando.data.datasets import LJSpeechDataset
    from accelerando.tts import TextFrontend
    from accelerando.tts.fastpitch.data import TTSDataset, collate, compute_pitch_stats

    base = LJSpeechDataset("corpora/speech", split="train")
    data = TTSDataset(base, TextFrontend(), speakers=base.speakers, cache_dir="runs/pitch")
    mean, std = compute_pitch_stats(data)
    loader = torch.utils.data.DataLoader(data, batch_size=16, collate_fn=collate)
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from accelerando.audio import cached_f0

from ..frontend import TextFrontend
from .aligner import beta_binomial_prior

__all__ = ["MEL_PAD_VALUE", "TTSDataset", "collate", "compute_pitch_stats"]

MEL_PAD_VALUE = math.log(1e-5)  # the log-mel of silence (MelConfig.clamp_min), used for padding


class TTSDataset(Dataset):
    """FastPitch training items from an LJSpeech-style dataset.

    Args:
        base_dataset: items ``{"audio" (S,), "mel" (n_mels, T), "text", "speaker", "id"}`` with a
            ``cfg`` (:class:`~accelerando.audio.MelConfig`) attribute, or ``sample_rate`` /
            ``hop_length`` given explicitly.
        frontend: text → phoneme ids (the model's symbol table).
        speakers: voice names; an item's ``speaker`` is its index here (all voices of the corpus,
            so that the validation split uses the same table).
        cache_dir: folder for the per-utterance pitch ``.npy`` files (``None``: no disk cache).
        pitch_fmin, pitch_fmax: pYIN search range in Hz (FastPitch's C2..C7).

    Items: ``{"ids": (N,) long, "mel": (n_mels, T), "pitch": (T,) Hz, "speaker": int, "id": str,
    "text": str}`` with the pitch frames aligned to (and as many as) the mel frames.
    """

    def __init__(
        self,
        base_dataset: Any,
        frontend: TextFrontend,
        speakers: Sequence[int | str],
        cache_dir: str | os.PathLike | None = None,
        pitch_fmin: float = 65.0,
        pitch_fmax: float = 2093.0,
        sample_rate: int | None = None,
        hop_length: int | None = None,
    ) -> None:
        self.base = base_dataset
        self.frontend = frontend
        self.speakers = [str(s) for s in speakers]
        self.speaker_index = {name: i for i, name in enumerate(self.speakers)}
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.pitch_fmin, self.pitch_fmax = pitch_fmin, pitch_fmax
        cfg = getattr(base_dataset, "cfg", None)
        self.sample_rate = sample_rate or (cfg.sample_rate if cfg is not None else 22050)
        self.hop_length = hop_length or (cfg.hop_length if cfg is not None else 256)
        self._ids: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return len(self.base)

    def phoneme_ids(self, index: int, text: str) -> list[int]:
        """Phoneme ids of item ``index`` (espeak-ng runs once per item and process)."""
        if index not in self._ids:
            self._ids[index] = self.frontend.encode(text)
        return self._ids[index]

    def _cache_path(self, item_id: str) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"{str(item_id).replace('/', '_')}.npy"

    def pitch(self, item_id: str, audio: Tensor, num_frames: int) -> Tensor:
        """Frame f0 (Hz, 0 = unvoiced) of an utterance, ``(num_frames,)``; read from or written to the cache."""
        f0 = cached_f0(
            audio, self.sample_rate, self._cache_path(item_id), self.hop_length, self.pitch_fmin,
            self.pitch_fmax, num_frames,
        )  # fmt: skip
        return torch.from_numpy(f0)  # (T,)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.base[index]
        speaker = str(item["speaker"])
        if speaker not in self.speaker_index:
            raise ValueError(
                f"Utterance {item['id']!r} has speaker {speaker!r}, which is not in the speaker table "
                f"{self.speakers}; build the table from the whole corpus (all splits)."
            )
        mel = item["mel"]  # (n_mels, T)
        ids = torch.tensor(self.phoneme_ids(index, item["text"]), dtype=torch.long)  # (N,)
        return {
            "ids": ids,
            "mel": mel,
            "pitch": self.pitch(item["id"], item["audio"], mel.shape[1]),  # (T,)
            "speaker": self.speaker_index[speaker],
            "id": str(item["id"]),
            "text": item["text"],
        }


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Pad a list of :class:`TTSDataset` items into a batch.

    Returns ``ids`` (B, N) padded with 0, ``ids_lens`` (B,), ``mel`` (B, n_mels, T) padded with the
    log-mel of silence, ``mel_lens`` (B,), ``pitch`` (B, T) padded with 0, ``speaker`` (B,),
    ``attn_prior`` (B, T, N) beta-binomial prior (zeros outside each item's lengths), ``id`` list.
    """
    if not items:
        raise ValueError("collate got an empty batch")
    ids_lens = torch.tensor([it["ids"].numel() for it in items], dtype=torch.long)
    mel_lens = torch.tensor([it["mel"].shape[1] for it in items], dtype=torch.long)
    n_max, t_max = int(ids_lens.max()), int(mel_lens.max())
    b, n_mels = len(items), items[0]["mel"].shape[0]
    ids = torch.zeros(b, n_max, dtype=torch.long)
    mel = torch.full((b, n_mels, t_max), MEL_PAD_VALUE)
    pitch = torch.zeros(b, t_max)
    prior = torch.zeros(b, t_max, n_max)
    for i, it in enumerate(items):
        n, t = int(ids_lens[i]), int(mel_lens[i])
        ids[i, :n] = it["ids"]
        mel[i, :, :t] = it["mel"]
        pitch[i, :t] = it["pitch"]
        prior[i, :t, :n] = beta_binomial_prior(n, t)
    return {
        "ids": ids,
        "ids_lens": ids_lens,
        "mel": mel,
        "mel_lens": mel_lens,
        "pitch": pitch,
        "speaker": torch.tensor([it["speaker"] for it in items], dtype=torch.long),
        "attn_prior": prior,
        "id": [it["id"] for it in items],
    }


def compute_pitch_stats(dataset: TTSDataset, max_items: int | None = None) -> tuple[float, float]:
    """Mean and standard deviation (Hz) of the voiced frames' f0 over ``dataset`` (fills the cache).

    Only pitch is computed (no mel, no phonemes). ``max_items`` limits the utterances read.
    """
    count = len(dataset) if max_items is None else min(len(dataset), max_items)
    total, total_sq, voiced = 0.0, 0.0, 0
    for index in range(count):
        item_id = dataset.base.items[index][0] if hasattr(dataset.base, "items") else None
        if item_id is not None and hasattr(dataset.base, "load_audio"):
            audio = dataset.base.load_audio(index)
        else:
            item = dataset.base[index]
            item_id, audio = item["id"], item["audio"]
        f0 = dataset.pitch(item_id, audio, max(audio.numel() // dataset.hop_length, 1)).double()
        f0 = f0[f0 > 0]
        total += float(f0.sum())
        total_sq += float((f0**2).sum())
        voiced += f0.numel()
    if voiced == 0:
        raise ValueError(
            f"No voiced frame in the first {count} utterances; pitch statistics need voiced speech."
        )
    mean = total / voiced
    std = math.sqrt(max(total_sq / voiced - mean**2, 0.0))
    return mean, max(std, 1e-3)
