"""NoteClassifier, note_metrics, frechet_distance, the shipped checkpoint and the training script (CPU, seconds)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from accelerando.generation import train_classifier
from accelerando.generation.classifier import LOG_MEL_FLOOR, NoteClassifier, note_metrics
from accelerando.metrics import frechet_distance
from accelerando.pretrained import pretrained_path

TINY = dict(
    programs=[0, 40, 73],
    families=["keyboard", "string", "flute"],
    n_mels=16,
    num_frames=32,
    min_frames=8,
    channels=[4, 4, 8, 8],
    freq_channels=4,
    embedding_dim=8,
)


@pytest.fixture
def tiny() -> NoteClassifier:
    torch.manual_seed(0)
    return NoteClassifier(**TINY).eval()


@pytest.mark.parametrize("frames", [8, 32, 57])
def test_forward_shapes_for_any_length_at_least_min_frames(tiny, frames):
    mel = torch.randn(3, 16, frames) - 6
    out = tiny(mel)
    assert out["instrument_logits"].shape == (3, 3)
    assert out["pitch_logits"].shape == (3, 128)
    assert out["embedding"].shape == (3, 8)
    assert torch.equal(tiny(mel[:, None])["embedding"], out["embedding"])  # (B, 1, F, T) accepted too
    pred = tiny.predict(mel)
    assert set(pred["program"].tolist()) <= {0, 40, 73} and pred["pitch"].shape == (3,)
    assert tiny.embed(mel, batch_size=2).shape == (3, 8)


def test_frames_beyond_num_frames_are_ignored_and_short_input_is_padded_with_silence(tiny):
    mel = torch.randn(2, 16, 32) - 6
    longer = torch.cat([mel, torch.randn(2, 16, 20)], dim=2)
    assert torch.allclose(tiny(longer)["embedding"], tiny(mel)["embedding"])
    short = mel[:, :, :20]
    padded = torch.cat([short, torch.full((2, 16, 12), LOG_MEL_FLOOR)], dim=2)
    assert torch.allclose(tiny(short)["embedding"], tiny(padded)["embedding"])


@pytest.mark.parametrize(
    ("mel", "match"),
    [
        (torch.zeros(2, 12, 32), r"\(B, 16, frames\)"),
        (torch.zeros(16, 32), r"got shape \(16, 32\)"),
        (torch.zeros(2, 16, 7), "7 frames.*at least 8"),
        (torch.full((1, 16, 32), float("nan")), "NaN"),
        (torch.zeros(0, 16, 32), "empty"),
    ],
)
def test_bad_input_errors(tiny, mel, match):
    with pytest.raises(ValueError, match=match):
        tiny(mel)


def test_bad_config_errors():
    with pytest.raises(ValueError, match="one family per program"):
        NoteClassifier(**{**TINY, "families": ["keyboard"]})
    with pytest.raises(ValueError, match="distinct GM program"):
        NoteClassifier(**{**TINY, "programs": [0, 0, 200]})


def test_save_load_round_trip(tiny, tmp_path):
    tiny.save_pretrained(tmp_path / "clf")
    loaded = NoteClassifier.from_pretrained(tmp_path / "clf").eval()
    assert loaded.programs == TINY["programs"] and list(loaded.config.families) == TINY["families"]
    mel = torch.randn(2, 16, 40) - 6
    for key, value in tiny(mel).items():
        assert torch.equal(loaded(mel)[key], value), key


def test_frechet_distance_properties():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 6))
    b = rng.normal(size=(300, 6)) + 0.5
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    d_ab = frechet_distance(a, b)
    assert d_ab == pytest.approx(frechet_distance(b, a), rel=1e-6)
    assert d_ab == pytest.approx(6 * 0.25, abs=0.5)  # mean shift 0.5 in 6 dims, covariances ~equal
    assert frechet_distance(a, a + 2.0) > d_ab > frechet_distance(a, rng.normal(size=(300, 6)))
    # exact value for known Gaussian statistics: shift only -> |mu_a - mu_b|^2
    assert frechet_distance(torch.tensor(a), torch.tensor(a + 1.0)) == pytest.approx(6.0, rel=1e-6)
    with pytest.raises(ValueError, match="same dimension"):
        frechet_distance(a, a[:, :3])
    with pytest.raises(ValueError, match="N >= 2"):
        frechet_distance(a[:1], a)


def test_note_metrics_on_a_controlled_case(tiny):
    mel = torch.randn(4, 16, 32) - 6
    pred = tiny.predict(mel)
    pitches = pred["pitch"].clone()
    pitches[0] += 1  # one note a semitone off
    pitches[1] = (pitches[1] + 5) % 128  # one far off
    scores = note_metrics(tiny, mel, pred["program"], pitches, reference_embeddings=tiny.embed(mel))
    assert scores["instrument_accuracy"] == 1.0 and scores["family_accuracy"] == 1.0
    assert scores["pitch_accuracy"] == 0.5 and scores["pitch_accuracy_within_1"] == 0.75
    assert scores["frechet_distance"] == pytest.approx(0.0, abs=1e-6) and scores["num_notes"] == 4
    with pytest.raises(ValueError, match=r"not classes.*\[0, 40, 73\]"):
        note_metrics(tiny, mel, [1, 1, 1, 1], pitches)
    with pytest.raises(ValueError, match="one entry per note"):
        note_metrics(tiny, mel, pred["program"][:3], pitches)


def test_shipped_checkpoint_loads_and_is_deterministic():
    clf = NoteClassifier.from_pretrained(pretrained_path("note-classifier")).eval()
    assert len(clf.programs) == 12 and len(clf.config.families) == 12
    assert clf.num_parameters() < 750_000  # < 3 MB of float32
    torch.manual_seed(0)
    mel = (torch.randn(3, 80, 129) * 2 - 8).clamp_min(math.log(1e-5))
    out = clf(mel)
    assert out["instrument_logits"].shape == (3, 12) and out["pitch_logits"].shape == (3, 128)
    assert out["embedding"].shape == (3, clf.config.embedding_dim)
    first, second = clf.predict(mel), clf.predict(mel)
    assert all(torch.equal(first[k], second[k]) for k in ("program", "pitch"))
    assert set(first["program"].tolist()) <= set(clf.programs)


def _fake_note(i: int) -> dict:
    g = torch.Generator().manual_seed(i)
    program, family = [(0, "keyboard"), (40, "string")][i % 2]
    return {"mel": torch.randn(80, 40 + i, generator=g) - 8, "program": program, "pitch": 60 + i % 3,
            "family": family}  # fmt: skip


def test_augment_keeps_shape_and_floor():
    mel = torch.randn(4, 16, 32) - 6
    out = train_classifier.augment(mel, 4, 6.0, torch.Generator().manual_seed(0))
    assert out.shape == mel.shape and out.min() >= LOG_MEL_FLOOR
    assert torch.equal(train_classifier.augment(mel, 0, 0.0), mel)


def test_train_script_writes_a_loadable_model(tmp_path, monkeypatch):
    monkeypatch.setattr(
        train_classifier,
        "build_dataset",
        lambda args, split: [_fake_note(i) for i in range(8 if split == "train" else 4)],
    )
    args = train_classifier.parse_args(
        ["--data_dir", str(tmp_path), "--output_dir", str(tmp_path / "out"), "--num_frames", "32",
         "--embedding_dim", "16", "--train_batch_size", "4", "--max_train_steps", "5", "--checkpointing_steps", "3"]
    )  # fmt: skip
    train_classifier.main(args)
    model = NoteClassifier.from_pretrained(tmp_path / "out" / "model").eval()
    assert model.programs == [0, 40] and list(model.config.families) == ["keyboard", "string"]
    assert (tmp_path / "out" / "checkpoint-3" / "model" / "config.json").is_file()
    history = json.loads((tmp_path / "out" / "validation.json").read_text())
    assert [h["step"] for h in history] == [3, 5] and 0 <= history[-1]["instrument_accuracy"] <= 1
    assert model.predict(torch.randn(2, 80, 32) - 8)["pitch"].shape == (2,)
    with pytest.raises(SystemExit):
        train_classifier.parse_args(["--data_dir", "x", "--use_ema"])
