"""The intelligibility metrics: PocketSphinx hears festival speech, exact WER, clear errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from accelerando.metrics import normalize_words, transcribe, word_error_rate

SENTENCES = [
    "Please bring me a glass of cold water.",
    "We walked to the park after lunch on Sunday.",
    "Turn off the lights when you leave the room.",
]


@pytest.fixture(scope="module")
def festival_speech(tmp_path_factory) -> list[tuple[np.ndarray, int]]:
    """SENTENCES spoken by festival's slt voice, at its native rate (not 16 kHz)."""
    from accelerando.data.speech_corpus import VOICES, synthesize

    voice = VOICES["slt"]
    if shutil.which("text2wave") is None or not Path(str(voice.check_file)).is_dir():
        pytest.skip(
            "festival or its slt voice is missing (make system-deps installs festival, festvox-us-slt-hts)"
        )
    folder = tmp_path_factory.mktemp("festival")
    out = []
    for i, text in enumerate(SENTENCES):
        path = folder / f"{i}.wav"
        synthesize(text, voice, path)
        wav, sr = sf.read(path, dtype="float32")
        out.append((wav, sr))
    return out


def test_transcribe_festival_speech(festival_speech):
    assert festival_speech[0][1] != 16000  # the resampling path is exercised
    hyps = [transcribe(wav, sr) for wav, sr in festival_speech]
    assert all(h and h == h.lower() for h in hyps), hyps
    assert word_error_rate(SENTENCES, hyps) < 0.5, hyps
    # torch input and a (1, T) shape give the same words; the level does not matter
    wav, sr = festival_speech[0]
    assert transcribe(torch.from_numpy(wav)[None] * 0.5, sr) == hyps[0]


def test_transcribe_silence_is_empty():
    assert transcribe(np.zeros(16000, dtype=np.float32), 16000) == ""


def test_word_error_rate_exact():
    assert word_error_rate(["the cat sat down"], ["the dog sat down"]) == pytest.approx(0.25)
    assert word_error_rate(["The cat, sat DOWN!"], ["the cat sat down"]) == 0.0
    # corpus level: (1 substitution + 2 deletions) / 6 reference words
    assert word_error_rate(["a b c d", "e f"], ["a x c d", ""]) == pytest.approx(0.5)
    assert word_error_rate(["go"], ["go on then"]) == pytest.approx(2.0)  # insertions can pass 1
    assert word_error_rate(["don't stop"], ["dont stop"]) == pytest.approx(0.5)
    assert word_error_rate(("well-known words",), ["well known words"]) == 0.0


def test_normalize_words():
    assert normalize_words("  Hello, World!  'Quoted' don't/won't ") == "hello world quoted don't won't"


@pytest.mark.parametrize(
    ("refs", "hyps", "error", "match"),
    [
        ([], [], ValueError, "at least one reference"),
        (["a b"], ["a b", "c"], ValueError, "same length"),
        (["..."], ["a"], ValueError, "no words"),
        ("a b", "a b", TypeError, "lists of strings"),
        ([3], ["a"], TypeError, "str"),
    ],
)
def test_word_error_rate_rejects_bad_input(refs, hyps, error, match):
    with pytest.raises(error, match=match):
        word_error_rate(refs, hyps)


@pytest.mark.parametrize("sample_rate", [22050.0, "16000", 0, -8000, True, None])
def test_transcribe_rejects_bad_sample_rate(sample_rate):
    with pytest.raises(ValueError, match="sample_rate"):
        transcribe(np.zeros(1600, dtype=np.float32), sample_rate)


@pytest.mark.parametrize(
    ("wav", "match"),
    [
        (np.zeros(0, dtype=np.float32), "empty"),
        (np.zeros((2, 1600), dtype=np.float32), "mono"),
        (np.full(1600, np.nan, dtype=np.float32), "NaN"),
    ],
)
def test_transcribe_rejects_bad_audio(wav, match):
    with pytest.raises(ValueError, match=match):
        transcribe(wav, 16000)


def test_metrics_import_does_not_need_the_recognizer():
    code = "import sys, accelerando.metrics; print('pocketsphinx' in sys.modules, 'jiwer' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == ["False", "False"]
