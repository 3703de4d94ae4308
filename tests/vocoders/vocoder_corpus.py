"""A tiny LJSpeech-style corpus of tremolo tones, shared by the vocoder training tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf


def write_tone_corpus(root: Path, n: int = 3, seconds: float = 0.5, sr: int = 22050) -> list[str]:
    """``n`` utterances (wavs/ + metadata.csv + split.json: the last one for validation); returns their ids."""
    (root / "wavs").mkdir(parents=True)
    ids = [f"utt_{i}" for i in range(n)]
    t = np.arange(int(seconds * sr)) / sr
    for i, item_id in enumerate(ids):
        wav = 0.4 * np.sin(2 * np.pi * (150 + 40 * i) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
        sf.write(root / "wavs" / f"{item_id}.wav", wav.astype(np.float32), sr, subtype="PCM_16")
    (root / "metadata.csv").write_text("".join(f"{i}|text|text\n" for i in ids))
    (root / "split.json").write_text(json.dumps({"train": ids[:-1], "validation": ids[-1:], "test": []}))
    return ids
