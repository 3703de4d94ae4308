import os
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

from accelerando.audio import io as audio_io
from accelerando.audio import load_audio, resample, save_audio


def sine(freq: float, sr: int, seconds: float = 0.5, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(sr * seconds)) / sr)).astype(np.float32)


def peak_hz(wav: np.ndarray, sr: int) -> float:
    return float(np.argmax(np.abs(np.fft.rfft(wav))) * sr / len(wav))


@pytest.mark.parametrize("suffix, atol", [(".wav", 1 / 32768), (".flac", 1 / 32768)])
def test_round_trip_mono(tmp_path, suffix, atol):
    wav = torch.from_numpy(sine(440, 22050))
    path = save_audio(tmp_path / f"a{suffix}", wav, 22050)
    assert path == tmp_path / f"a{suffix}" and sf.info(path).subtype == "PCM_16"
    back = load_audio(path, 22050)
    assert back.dtype == torch.float32 and back.shape == wav.shape
    torch.testing.assert_close(back, wav, atol=atol, rtol=0)


def test_round_trip_float_subtype_is_exact_and_numpy_accepted(tmp_path):
    wav = sine(440, 16000)
    save_audio(tmp_path / "f.wav", wav, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(tmp_path / "f.wav", 16000).numpy(), wav)


def test_ogg_vorbis_round_trip_keeps_pitch(tmp_path):
    save_audio(tmp_path / "v.ogg", sine(440, 22050), 22050)
    assert sf.info(tmp_path / "v.ogg").subtype == "VORBIS"
    assert peak_hz(load_audio(tmp_path / "v.ogg", 22050).numpy(), 22050) == pytest.approx(440, abs=3)


def test_stereo_channels_and_mono_mixdown(tmp_path):
    left, right = sine(440, 16000), sine(660, 16000, amp=0.25)
    stereo = np.stack([left, right])  # (C, T)
    save_audio(tmp_path / "s.wav", stereo, 16000, subtype="FLOAT")
    both = load_audio(tmp_path / "s.wav", 16000, mono=False)
    assert both.shape == (2, len(left))
    np.testing.assert_array_equal(both.numpy(), stereo)
    np.testing.assert_allclose(load_audio(tmp_path / "s.wav", 16000).numpy(), stereo.mean(axis=0), atol=1e-7)


def test_load_resamples_with_soxr(tmp_path):
    save_audio(tmp_path / "r.wav", sine(1000, 16000), 16000, subtype="FLOAT")
    wav = load_audio(tmp_path / "r.wav", 22050)
    assert abs(len(wav) - 11025) <= 1
    assert peak_hz(wav.numpy(), 22050) == pytest.approx(1000, abs=3)
    stereo = load_audio(tmp_path / "r.wav", 8000, mono=False)
    assert stereo.shape[0] == 1 and abs(stereo.shape[1] - 4000) <= 1


def test_resample_batched_keeps_leading_dims_and_identity():
    x = torch.from_numpy(np.stack([sine(300, 16000), sine(500, 16000)]))[None]  # (1, 2, T)
    y = resample(x, 16000, 24000)
    assert y.shape[:2] == (1, 2) and abs(y.shape[-1] - 12000) <= 1 and y.dtype == torch.float32
    assert peak_hz(y[0, 1].numpy(), 24000) == pytest.approx(500, abs=3)
    assert resample(x, 16000, 16000) is x
    assert resample(x.double(), 16000, 8000).dtype == torch.float64


def test_missing_file_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        load_audio(tmp_path / "nope.wav", 22050)


def test_unreadable_file_names_path_and_formats(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"this is not audio" * 10)
    with pytest.raises(ValueError, match=r"bad\.wav.*soundfile reads: .*WAV"):
        load_audio(bad, 22050)


def test_empty_and_non_finite_files_rejected(tmp_path):
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="no samples"):
        load_audio(tmp_path / "empty.wav", 16000)
    sf.write(tmp_path / "nan.wav", np.array([0.0, np.nan, 0.1], dtype=np.float32), 16000, subtype="FLOAT")
    with pytest.raises(ValueError, match="NaN or Inf"):
        load_audio(tmp_path / "nan.wav", 16000)


@pytest.mark.parametrize("sr", [0, -1, 22050.5, True])
def test_bad_sample_rate(tmp_path, sr):
    with pytest.raises(ValueError, match="positive int sample rate"):
        save_audio(tmp_path / "x.wav", np.zeros(10, dtype=np.float32), sr)
    with pytest.raises(ValueError, match="positive int sample rate"):
        load_audio(tmp_path / "x.wav", sr)


@pytest.mark.parametrize(
    "name, wav, match",
    [
        ("x.wav", np.array([0.0, np.nan], dtype=np.float32), "NaN or Inf"),
        ("x.wav", np.array([0.0, np.inf], dtype=np.float32), "NaN or Inf"),
        ("x.mp4", np.zeros(10, dtype=np.float32), r"unsupported suffix '\.mp4'"),
        ("x.wav", np.zeros((100, 2), dtype=np.float32), r"is it \(T, C\)"),
        ("x.wav", np.zeros(0, dtype=np.float32), "non-empty"),
        ("x.wav", np.zeros(10, dtype=np.int16), "floating-point"),
    ],
)
def test_save_rejects_bad_input(tmp_path, name, wav, match):
    with pytest.raises(ValueError, match=match):
        save_audio(tmp_path / name, wav, 16000)
    assert list(tmp_path.iterdir()) == []


def test_save_rejects_bad_subtype(tmp_path):
    with pytest.raises(ValueError, match="not valid for WAV"):
        save_audio(tmp_path / "x.wav", np.zeros(10, dtype=np.float32), 16000, subtype="VORBIS")


def test_clipping_warns_and_clips(tmp_path):
    wav = np.array([0.0, 1.5, -2.0, 0.5], dtype=np.float32)
    with pytest.warns(UserWarning, match="peak"):
        save_audio(tmp_path / "c.wav", wav, 16000, subtype="PCM_24")
    np.testing.assert_allclose(
        load_audio(tmp_path / "c.wav", 16000).numpy(), [0.0, 1.0, -1.0, 0.5], atol=1e-6
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_audio(tmp_path / "f.wav", wav, 16000, subtype="FLOAT")  # float files keep the range, no warning
    np.testing.assert_array_equal(load_audio(tmp_path / "f.wav", 16000).numpy(), wav)


def test_creates_parents_and_leaves_no_temp_files(tmp_path):
    path = save_audio(tmp_path / "a" / "b" / "x.flac", torch.zeros(2, 100), 16000)
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["x.flac"]
    assert os.stat(path).st_mode & 0o777 == 0o644


def test_failed_write_keeps_old_file_and_cleans_up(tmp_path, monkeypatch):
    path = save_audio(tmp_path / "x.wav", sine(440, 16000), 16000)
    before = path.read_bytes()

    def broken_write(file, *args, **kwargs):
        with open(file, "wb") as handle:
            handle.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(audio_io.sf, "write", broken_write)
    with pytest.raises(RuntimeError, match="disk full"):
        save_audio(path, np.zeros(100, dtype=np.float32), 16000)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]
