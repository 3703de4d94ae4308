import numpy as np
import pytest
import torch

from accelerando.audio import MelConfig, extract_f0, extract_loudness, mel_spectrogram, normalize_loudness

SR, HOP = 22050, 256


def sine(freq: float, num_samples: int, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(num_samples) / SR)).astype(np.float32)


@pytest.fixture(scope="module")
def sine_f0():
    wav = sine(220.0, SR // 2 + 100)  # length not a multiple of the hop
    return wav, extract_f0(wav, SR)


def test_f0_of_sine(sine_f0):
    wav, (f0, voiced, prob) = sine_f0
    assert len(f0) == len(voiced) == len(prob) == len(wav) // HOP
    assert f0.dtype == np.float32 and voiced.dtype == bool and prob.dtype == np.float32
    assert voiced.mean() > 0.9
    assert np.median(f0[voiced]) == pytest.approx(220.0, rel=0.01)
    assert np.all(f0[~voiced] == 0.0)


def test_f0_of_silence_is_unvoiced():
    f0, voiced, prob = extract_f0(torch.zeros(SR // 4), SR)  # a torch tensor is accepted too
    assert len(f0) == (SR // 4) // HOP
    assert not voiced.any() and np.all(f0 == 0.0) and np.all(np.isfinite(prob))


def test_loudness_tracks_gain_and_lengths():
    wav = sine(440.0, SR // 2 + 100)
    loud, quiet = extract_loudness(wav, SR), extract_loudness(wav / 10, SR)
    assert len(loud) == len(wav) // HOP == mel_spectrogram(torch.from_numpy(wav), MelConfig()).shape[-1]
    assert loud.dtype == np.float32
    np.testing.assert_allclose(loud - quiet, 20.0, atol=0.5)


def test_loudness_of_silence_is_the_floor_and_normalises_to_zero():
    db = extract_loudness(np.zeros(4096, dtype=np.float32), SR)
    np.testing.assert_array_equal(db, -80.0)
    np.testing.assert_array_equal(normalize_loudness(db), 0.0)


def test_loudness_weights_low_frequencies_down():
    # A-weighting: a 50 Hz tone reads far quieter than a 1 kHz tone of the same amplitude.
    assert (
        np.median(extract_loudness(sine(1000.0, 8192), SR))
        - np.median(extract_loudness(sine(50.0, 8192), SR))
        > 20
    )


def test_loudness_custom_hop_and_fft():
    assert len(extract_loudness(sine(440.0, 16000), 16000, hop_length=128, n_fft=512)) == 16000 // 128


def test_normalize_loudness_values():
    assert normalize_loudness(-80.0) == 0.0 and normalize_loudness(0.0) == 1.0
    torch.testing.assert_close(normalize_loudness(torch.tensor([-40.0])), torch.tensor([0.5]))


@pytest.mark.parametrize("fn", [extract_f0, extract_loudness])
def test_feature_errors(fn):
    with pytest.raises(ValueError, match=r"1-D waveform \(T,\); got shape \(2, 4096\)"):
        fn(np.zeros((2, 4096), dtype=np.float32), SR)
    with pytest.raises(ValueError, match="NaN or Inf"):
        fn(np.full(4096, np.nan, dtype=np.float32), SR)
    with pytest.raises(ValueError, match="at least"):
        fn(np.zeros(100, dtype=np.float32), SR)


def test_cached_f0_computes_once_then_reads_the_cache(tmp_path, monkeypatch):
    import accelerando.audio.features as features
    from accelerando.audio import cached_f0

    sr = 22050
    t = np.arange(sr // 2) / sr
    wav = (0.5 * np.sin(2 * np.pi * 200.0 * t)).astype(np.float32)
    path = tmp_path / "cache" / "a.npy"
    first = cached_f0(wav, sr, path, fmin=50.0, fmax=600.0)
    assert path.is_file() and first.dtype == np.float32
    assert np.median(first[first > 0]) == pytest.approx(200.0, rel=0.02)

    def fail(*args, **kwargs):
        raise AssertionError("pYIN ran again although the cache exists")

    monkeypatch.setattr(features, "extract_f0", fail)
    again = cached_f0(None, sr, path, num_frames=len(first) + 3)  # the cache alone: no audio needed
    np.testing.assert_array_equal(again[: len(first)], first)
    assert (again[len(first) :] == 0).all() and len(again) == len(first) + 3
    assert [p.name for p in path.parent.iterdir()] == ["a.npy"]  # no temporary file left behind
    with pytest.raises(ValueError, match="needs the waveform: there is no cache file"):
        cached_f0(None, sr, tmp_path / "missing.npy")
