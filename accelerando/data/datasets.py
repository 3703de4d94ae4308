"""Speech datasets: LJSpeech-style folders, the LibriTTS layout, and random fixed-length segments.

Items are dicts::

    {"audio": (T,) float32 at cfg.sample_rate, "mel": (n_mels, T // hop), "text": str,
     "speaker": int | str, "id": str}

``LJSpeechDataset`` reads ``metadata.csv`` (``id|text|normalized text`` as LJSpeech ships it, or
``id|text|normalized text|speaker`` as :mod:`accelerando.data.speech_corpus` writes it) and, for a
``split``, ``split.json``. ``LibriTTSDataset`` reads ``<subset>/<speaker>/<chapter>/<id>.wav`` with
``<id>.normalized.txt`` (or ``<id>.original.txt``). ``AudioSegmentDataset`` cuts random crops of a
fixed length (a multiple of the hop) for vocoder training.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from accelerando.audio import MelConfig, load_audio, mel_spectrogram
from accelerando.data._build import read_split_ids


def read_audio(path: Path, sample_rate: int) -> Tensor:
    """``load_audio`` with an error that names the dataset file and the fix."""
    try:
        return load_audio(path, sample_rate)
    except (ValueError, RuntimeError) as exc:
        raise ValueError(
            f"Corrupt or unreadable audio file in dataset: {str(path)!r} ({exc}). "
            "Delete or replace it (for a corpus built by accelerando, rerun the build command; it remakes missing files)."
        ) from exc


class AudioItemsDataset(Dataset):
    """Base of the speech folders: a list of (id, wav path, text, speaker) with audio + mel loading."""

    def __init__(self, items: list[tuple[str, Path, str, int | str]], cfg: MelConfig, with_mel: bool) -> None:
        self.items = items
        self.cfg = cfg
        self.with_mel = with_mel

    def __len__(self) -> int:
        return len(self.items)

    @property
    def speakers(self) -> list[int | str]:
        """Sorted unique speakers (index = a speaker's integer id for embedding tables)."""
        return sorted(
            {item[3] for item in self.items},
            key=lambda s: (isinstance(s, str), s if isinstance(s, int) else 0, str(s)),
        )

    def select(self, ids: list[str]) -> AudioItemsDataset:
        """A dataset of the items named by ``ids``, in that order (same class, config and mel setting).

        Raises:
            ValueError: an id that is not in this dataset (naming it and a few that are).
        """
        by_id = {item[0]: item for item in self.items}
        missing = [i for i in ids if i not in by_id]
        if missing:
            known = ", ".join(list(by_id)[:5]) + (", ..." if len(by_id) > 5 else "")
            raise ValueError(
                f"ids not in this dataset: {', '.join(missing)}; it holds {len(by_id)} ({known})"
            )
        chosen = copy.copy(self)
        chosen.items = [by_id[i] for i in ids]
        return chosen

    def load_audio(self, index: int) -> Tensor:
        """The ``(T,)`` waveform of item ``index`` at ``cfg.sample_rate`` (no mel)."""
        return read_audio(self.items[index][1], self.cfg.sample_rate)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item_id, _, text, speaker = self.items[index]
        audio = self.load_audio(index)  # (T,)
        out: dict[str, Any] = {"audio": audio, "text": text, "speaker": speaker, "id": item_id}
        if self.with_mel:
            if audio.numel() < self.cfg.min_num_samples():
                audio = torch.nn.functional.pad(audio, (0, self.cfg.min_num_samples() - audio.numel()))
            out["mel"] = mel_spectrogram(audio, self.cfg)[0]  # (n_mels, T // hop)
        return out


class LJSpeechDataset(AudioItemsDataset):
    """An LJSpeech-style folder: ``wavs/<id>.wav`` + ``metadata.csv`` (+ ``split.json`` for ``split``).

    Args:
        root: the folder.
        split: None (every row) or ``"train"`` / ``"validation"`` / ``"test"`` from ``split.json``.
        cfg: mel front end; audio is resampled to ``cfg.sample_rate``.
        use_normalized_text: ``text`` is the normalized column (else the raw one).
        default_speaker: speaker of rows with three columns (LJSpeech itself).
        with_mel: compute ``"mel"`` per item.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = None,
        cfg: MelConfig = MelConfig(),
        use_normalized_text: bool = True,
        default_speaker: int | str = "LJ",
        with_mel: bool = True,
    ) -> None:
        self.root = Path(root)
        metadata = self.root / "metadata.csv"
        if not metadata.is_file():
            raise FileNotFoundError(
                f"No metadata.csv in {str(self.root)!r}; expected an LJSpeech-style folder"
            )
        keep = read_split_ids(self.root, split) if split is not None else None
        items = []
        for number, line in enumerate(metadata.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            cols = line.split("|")
            if len(cols) < 2:
                raise ValueError(
                    f"{str(metadata)!r} line {number}: expected id|text[|normalized text[|speaker]]"
                )
            if keep is not None and cols[0] not in keep:
                continue
            text = cols[2] if use_normalized_text and len(cols) > 2 and cols[2] else cols[1]
            speaker = cols[3] if len(cols) > 3 and cols[3] else default_speaker
            items.append((cols[0], self.root / "wavs" / f"{cols[0]}.wav", text, speaker))
        super().__init__(items, cfg, with_mel)


class LibriTTSDataset(AudioItemsDataset):
    """The LibriTTS layout: ``root/<subset>/<speaker>/<chapter>/<id>.wav`` with ``<id>.normalized.txt``.

    Args:
        root: the folder holding the subsets (``train-clean-100``, ``dev-clean``, ...).
        subsets: subset folder names to read (a string or a sequence).
        cfg: mel front end; LibriTTS's 24 kHz audio is resampled to ``cfg.sample_rate``.
        use_normalized_text: read ``.normalized.txt`` (else ``.original.txt``); the other is the fallback.
        with_mel: compute ``"mel"`` per item.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        subsets: str | tuple[str, ...] | list[str] = ("train-clean-100",),
        cfg: MelConfig = MelConfig(),
        use_normalized_text: bool = True,
        with_mel: bool = True,
    ) -> None:
        self.root = Path(root)
        names = [subsets] if isinstance(subsets, str) else list(subsets)
        order = (
            (".normalized.txt", ".original.txt")
            if use_normalized_text
            else (".original.txt", ".normalized.txt")
        )
        items = []
        for subset in names:
            folder = self.root / subset
            if not folder.is_dir():
                raise FileNotFoundError(f"LibriTTS subset folder {str(folder)!r} does not exist")
            for wav in sorted(folder.glob("*/*/*.wav")):
                texts = [wav.with_name(wav.stem + suffix) for suffix in order]
                text_file = next((t for t in texts if t.is_file()), None)
                if text_file is None:
                    raise FileNotFoundError(f"No transcript for {str(wav)!r} (expected {texts[0].name})")
                speaker = wav.parent.parent.name
                items.append((wav.stem, wav, text_file.read_text(encoding="utf-8").strip(),
                              int(speaker) if speaker.isdigit() else speaker))  # fmt: skip
        if not items:
            raise FileNotFoundError(f"No LibriTTS utterances under {str(self.root)!r} in subsets {names}")
        super().__init__(items, cfg, with_mel)


class AudioSegmentDataset(Dataset):
    """Random fixed-length crops with their mel, for vocoder training.

    Args:
        source: a dataset with ``load_audio(i)`` or items holding ``"audio"``, or a list of audio files.
        segment_length: samples per crop; a multiple of ``cfg.hop_length``.
        cfg: mel front end (its ``sample_rate`` is the audio rate).
        seed: crops are a function of ``(seed, epoch, index)``; :meth:`set_epoch` draws new ones.

    Items: ``{"audio": (segment_length,), "mel": (n_mels, segment_length // hop), "id": str,
    "start_frame": int}``; clips shorter than ``segment_length`` are zero-padded at the end. Crop starts
    are multiples of the hop (``start_frame * hop``), so the crop's mel frames line up with the full
    clip's (and with frame features of the full clip, such as its f0).
    """

    def __init__(
        self,
        source: Dataset | list[str | os.PathLike],
        segment_length: int = 8192,
        cfg: MelConfig = MelConfig(),
        seed: int = 0,
    ) -> None:
        if segment_length <= 0 or segment_length % cfg.hop_length:
            raise ValueError(
                f"segment_length must be a positive multiple of hop_length={cfg.hop_length}; got {segment_length}"
            )
        if segment_length < cfg.min_num_samples():
            raise ValueError(f"segment_length must be >= {cfg.min_num_samples()} samples for this MelConfig")
        self.source = [Path(p) for p in source] if isinstance(source, (list, tuple)) else source
        self.segment_length = segment_length
        self.cfg = cfg
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Changes the crops (call once per epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.source)

    def _audio(self, index: int) -> tuple[Tensor, str]:
        if isinstance(self.source, list):
            path = self.source[index]
            return read_audio(path, self.cfg.sample_rate), path.stem
        if hasattr(self.source, "load_audio"):
            return self.source.load_audio(index), str(self.source.items[index][0])
        item = self.source[index]
        return item["audio"], str(item.get("id", index))

    def __getitem__(self, index: int) -> dict[str, Any]:
        audio, item_id = self._audio(index)  # (T,)
        hop, length = self.cfg.hop_length, self.segment_length
        start = 0
        if audio.numel() <= length:
            segment = torch.nn.functional.pad(audio, (0, length - audio.numel()))
        else:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            start = int(rng.integers(0, (audio.numel() - length) // hop + 1)) * hop
            segment = audio[start : start + length]
        segment = segment.contiguous()  # (L,)
        return {
            "audio": segment,
            "mel": mel_spectrogram(segment, self.cfg)[0],
            "id": item_id,
            "start_frame": start // hop,
        }  # (n_mels, L // hop)
