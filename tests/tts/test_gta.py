"""The acoustic model's mels for vocoder training: GTA (aligned with the recording) and free-running."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from accelerando.tts.fastpitch import gta


class _FakeFastPitch:
    """Stands in for IncrementalFastPitch: a mel whose value says which call made it."""

    def __init__(self) -> None:
        self.calls = 0

    def eval(self) -> _FakeFastPitch:
        return self

    def __call__(
        self, ids, ids_lens, mel, mel_lens, pitch, speaker, mask_mode
    ):  # the GTA (teacher-forced) pass
        self.calls += 1
        assert mask_mode == "static"
        return SimpleNamespace(mel=torch.full((1, 4, mel.shape[-1] + 2), float(speaker[0])))

    def text_frontend(self):
        return SimpleNamespace(encode=lambda text: [len(text)])

    def infer(self, ids, speaker):  # free running
        self.calls += 1
        return torch.full((1, 4, ids[0]), float(len(speaker))), None


def test_gta_mels_keep_the_recordings_frames_and_skip_what_exists(tmp_path):
    items = [
        {"id": f"u{i}", "ids": torch.tensor([1, 2]), "mel": torch.zeros(4, 5 + i), "pitch": torch.zeros(2),
         "speaker": i}
        for i in range(2)
    ]  # fmt: skip
    dataset = type(
        "D",
        (),
        {"base": SimpleNamespace(), "__len__": lambda self: 2, "__getitem__": lambda self, i: items[i]},
    )()
    model = _FakeFastPitch()
    assert gta.write_gta_mels(model, dataset, tmp_path, progress=False) == 2
    first = np.load(tmp_path / "u1.npy")
    assert first.shape == (4, 6) and (first == 1.0).all()  # cut to the recording's frames, its speaker's
    (tmp_path / "u0.npy").unlink()
    assert gta.write_gta_mels(model, dataset, tmp_path, progress=False) == 1  # only the missing one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u0.npy", "u1.npy"]  # no temporary leftovers


def test_free_mels_speak_each_text_in_its_own_voice_once(tmp_path):
    dataset = SimpleNamespace(items=[("a", None, "hello", "slt"), ("sub/b", None, "good day", "kal0")])
    model = _FakeFastPitch()
    assert gta.write_free_mels(model, dataset, tmp_path, progress=False) == 2
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "sub_b.npy")
    assert a.shape == (4, 5) and (a == 3.0).all()  # 5 "ids" for "hello", voice "slt"
    assert b.shape == (4, 8) and (b == 4.0).all()
    calls = model.calls
    assert gta.write_free_mels(model, dataset, tmp_path, progress=False) == 0
    assert model.calls == calls  # nothing recomputed when the files exist
