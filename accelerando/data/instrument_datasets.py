"""Datasets over the instrument corpus: single notes with labels, melodies with f0 and loudness."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from accelerando.audio import MelConfig, mel_spectrogram
from accelerando.data._build import read_split_ids
from accelerando.data.datasets import read_audio


def _read_manifest(folder: Path, split: str | None) -> list[dict[str, str]]:
    path = folder / "manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"No manifest.csv in {str(folder)!r}; build the corpus with `accelerando corpus instruments --out ...`"
        )
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if split is not None:
        keep = read_split_ids(folder, split)
        rows = [r for r in rows if r["id"] in keep]
    return rows


def _part(root: str | os.PathLike, name: str) -> Path:
    root = Path(root)
    return root / name if (root / name / "manifest.csv").is_file() else root


class NoteDataset(Dataset):
    """Single notes: ``{"audio": (T,), "mel": (n_mels, T // hop), "program", "pitch", "velocity": int,
    "instrument", "family", "id": str}``.

    Args:
        root: the instrument corpus folder (or its ``notes/`` folder).
        split: None or ``"train"`` / ``"validation"`` / ``"test"``.
        cfg: mel front end (audio is resampled to ``cfg.sample_rate`` if needed).
    """

    def __init__(
        self, root: str | os.PathLike, split: str | None = None, cfg: MelConfig = MelConfig()
    ) -> None:
        self.root = _part(root, "notes")
        self.rows = _read_manifest(self.root, split)
        self.cfg = cfg

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows[index]
        audio = read_audio(self.root / "wavs" / f"{row['id']}.wav", self.cfg.sample_rate)  # (T,)
        return {
            "audio": audio,
            "mel": mel_spectrogram(audio, self.cfg)[0],  # (n_mels, T // hop)
            "program": int(row["program"]),
            "pitch": int(row["pitch"]),
            "velocity": int(row["velocity"]),
            "instrument": row["instrument"],
            "family": row["family"],
            "id": row["id"],
        }


class MelodyDataset(Dataset):
    """Melodies with their control tracks at one sample rate (16000 for NEWT, 22050 for mel models).

    Items: ``{"audio": (T,), "f0_hz": (F,), "voiced": (F,) bool, "loudness_db": (F,),
    "hop_length": int, "sample_rate": int, "instrument": str, "id": str}`` with ``F = T // hop``.
    """

    def __init__(self, root: str | os.PathLike, split: str | None = None, sample_rate: int = 16000) -> None:
        self.root = _part(root, "melodies")
        self.rows = _read_manifest(self.root, split)
        self.sample_rate = sample_rate
        if not (self.root / str(sample_rate)).is_dir():
            raise FileNotFoundError(
                f"No {sample_rate} Hz melodies in {str(self.root)!r}; the corpus has 16000 and 22050"
            )

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows[index]
        folder = self.root / str(self.sample_rate)
        audio = read_audio(folder / "wavs" / f"{row['id']}.wav", self.sample_rate)  # (T,)
        controls_path = folder / "controls" / f"{row['id']}.npz"
        try:
            with np.load(controls_path, allow_pickle=False) as c:
                controls = {k: c[k] for k in ("f0_hz", "voiced", "loudness_db", "hop_length")}
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(
                f"Corrupt control file {str(controls_path)!r} ({exc}); rerun the corpus build"
            ) from exc
        return {
            "audio": audio,
            "f0_hz": torch.from_numpy(controls["f0_hz"]),
            "voiced": torch.from_numpy(controls["voiced"]),
            "loudness_db": torch.from_numpy(controls["loudness_db"]),
            "hop_length": int(controls["hop_length"]),
            "sample_rate": self.sample_rate,
            "instrument": row["instrument"],
            "id": row["id"],
        }
