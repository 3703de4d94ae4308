"""LJSpeech / LibriTTS loaders and the vocoder segment dataset, on tiny folders written here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from accelerando.audio import MelConfig, mel_spectrogram, save_audio
from accelerando.data.datasets import AudioSegmentDataset, LibriTTSDataset, LJSpeechDataset

CFG = MelConfig()


def _tone(seconds: float, sr: int, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (
        0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * np.random.default_rng(0).standard_normal(t.size)
    ).astype(np.float32)


@pytest.fixture
def ljspeech(tmp_path):
    rows = []
    for k, seconds in enumerate([0.5, 0.8, 1.1]):
        item_id = f"LJ001-{k:04d}"
        save_audio(tmp_path / "wavs" / f"{item_id}.wav", _tone(seconds, 22050, 200 + 50 * k), 22050)
        rows.append(f"{item_id}|Dr. Who {k}.|Doctor Who {k}.")
    (tmp_path / "metadata.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_ljspeech_items(ljspeech):
    ds = LJSpeechDataset(ljspeech)
    assert len(ds) == 3 and ds.speakers == ["LJ"]
    item = ds[1]
    assert item["id"] == "LJ001-0001" and item["text"] == "Doctor Who 1." and item["speaker"] == "LJ"
    n = int(0.8 * 22050)
    assert item["audio"].shape == (n,) and item["audio"].dtype == torch.float32
    assert item["mel"].shape == (80, n // 256)
    assert LJSpeechDataset(ljspeech, use_normalized_text=False)[0]["text"] == "Dr. Who 0."


def test_ljspeech_split_and_speaker_column(ljspeech):
    lines = (ljspeech / "metadata.csv").read_text().splitlines()
    (ljspeech / "metadata.csv").write_text(
        "\n".join(f"{line}|spk{i % 2}" for i, line in enumerate(lines)) + "\n"
    )
    with pytest.raises(FileNotFoundError, match="split.json"):
        LJSpeechDataset(ljspeech, split="train")
    (ljspeech / "split.json").write_text(
        json.dumps({"train": ["LJ001-0000", "LJ001-0002"], "validation": [], "test": ["LJ001-0001"]})
    )
    train, test = LJSpeechDataset(ljspeech, split="train"), LJSpeechDataset(ljspeech, split="test")
    assert [i[0] for i in train.items] == ["LJ001-0000", "LJ001-0002"] and len(test) == 1
    assert test[0]["speaker"] == "spk1" and train.speakers == ["spk0"]
    with pytest.raises(ValueError, match="split must be one of"):
        LJSpeechDataset(ljspeech, split="dev")


def test_corrupt_wav_names_the_file(ljspeech):
    bad = ljspeech / "wavs" / "LJ001-0002.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage" * 10)
    ds = LJSpeechDataset(ljspeech)
    with pytest.raises(ValueError, match=r"Corrupt or unreadable audio file in dataset: .*LJ001-0002\.wav"):
        ds[2]


def test_libritts_layout(tmp_path):
    for speaker, chapter, k in [(19, 198, 0), (19, 198, 1), (103, 1240, 0)]:
        folder = tmp_path / "dev-clean" / str(speaker) / str(chapter)
        item_id = f"{speaker}_{chapter}_000000_{k:06d}"
        save_audio(folder / f"{item_id}.wav", _tone(0.6 + 0.1 * k, 24000), 24000)
        (folder / f"{item_id}.normalized.txt").write_text(f"Normalized text {k}.")
        (folder / f"{item_id}.original.txt").write_text(f"Original text {k}.")
    ds = LibriTTSDataset(tmp_path, subsets="dev-clean")
    assert len(ds) == 3 and ds.speakers == [19, 103]
    item = ds[[i[0] for i in ds.items].index("19_198_000000_000000")]
    n = round(0.6 * 22050)  # 24 kHz resampled to the mel rate
    assert (
        item["speaker"] == 19
        and item["text"] == "Normalized text 0."
        and item["id"] == "19_198_000000_000000"
    )
    assert abs(item["audio"].numel() - n) <= 1 and item["mel"].shape == (80, item["audio"].numel() // 256)
    assert LibriTTSDataset(tmp_path, "dev-clean", use_normalized_text=False)[0]["text"].startswith(
        "Original text"
    )
    with pytest.raises(FileNotFoundError, match="train-clean-100"):
        LibriTTSDataset(tmp_path)


def test_segments_length_alignment_and_determinism(ljspeech):
    base = LJSpeechDataset(ljspeech, with_mel=False)
    ds = AudioSegmentDataset(base, segment_length=16 * 256, cfg=CFG, seed=7)
    full = base[2]["audio"]
    item = ds[2]
    assert item["audio"].shape == (4096,) and item["mel"].shape == (80, 16)
    # The crop starts on a hop boundary, so its inner mel frames equal the full clip's frames.
    starts = [
        s for s in range(0, full.numel() - 4096 + 1, 256) if torch.equal(full[s : s + 4096], item["audio"])
    ]
    assert len(starts) == 1
    full_mel = mel_spectrogram(full, CFG)[0]
    first = starts[0] // 256
    torch.testing.assert_close(
        item["mel"][:, 3:-3], full_mel[:, first + 3 : first + 13], atol=1e-4, rtol=1e-4
    )
    again = AudioSegmentDataset(base, segment_length=4096, cfg=CFG, seed=7)[2]
    assert torch.equal(again["audio"], item["audio"])
    other = [AudioSegmentDataset(base, segment_length=4096, cfg=CFG, seed=s)[2]["audio"] for s in range(8)]
    assert len({tuple(o[:4].tolist()) for o in other}) > 1


def test_segments_pad_short_clips_and_file_lists(ljspeech):
    files = sorted((ljspeech / "wavs").glob("*.wav"))
    ds = AudioSegmentDataset(files, segment_length=64 * 256, cfg=CFG)
    item = ds[0]  # 0.5 s < 64 hops
    n = int(0.5 * 22050)
    assert item["audio"].shape == (16384,) and item["mel"].shape == (80, 64) and item["id"] == "LJ001-0000"
    assert torch.count_nonzero(item["audio"][n:]) == 0
    with pytest.raises(ValueError, match="multiple of hop_length=256"):
        AudioSegmentDataset(files, segment_length=1000)


def test_select_keeps_the_named_items_in_order_and_names_unknown_ids(ljspeech):
    ds = LJSpeechDataset(ljspeech)
    chosen = ds.select(["LJ001-0002", "LJ001-0000"])
    assert [i[0] for i in chosen.items] == ["LJ001-0002", "LJ001-0000"] and len(ds) == 3
    assert isinstance(chosen, LJSpeechDataset) and chosen[0]["mel"].shape[0] == 80
    with pytest.raises(ValueError, match="ids not in this dataset: nope; it holds 3 \\(LJ001-0000"):
        ds.select(["LJ001-0000", "nope"])
