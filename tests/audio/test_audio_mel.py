import dataclasses

import librosa
import numpy as np
import pytest
import torch

from accelerando.audio import MelConfig, MelSpectrogram, mel_spectrogram
from accelerando.audio import mel as mel_module

CONFIGS = [
    MelConfig(),
    # odd n_fft - hop (asymmetric padding), win_length < n_fft, f_max = Nyquist
    MelConfig(
        sample_rate=16000, n_fft=512, hop_length=125, win_length=400, n_mels=64, f_min=20.0, f_max=None
    ),
]


def librosa_log_mel(y: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """The documented frame rule written with librosa/NumPy only."""
    total = cfg.n_fft - cfg.hop_length
    padded = np.pad(y, (total // 2, total - total // 2), mode="reflect")
    spec = np.abs(
        librosa.stft(
            padded,
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length,
            window="hann",
            center=False,
        )
    )
    basis = librosa.filters.mel(
        sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.f_min, fmax=cfg.f_max, norm="slaney"
    )
    return np.log(np.maximum(basis @ spec, cfg.clamp_min))


def make_signal(num_samples: int, sr: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / sr
    return (0.3 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(num_samples)).astype(np.float32)


@pytest.mark.parametrize("cfg", CONFIGS, ids=["default", "16k-odd"])
def test_matches_librosa_reference(cfg):
    y = make_signal(cfg.hop_length * 40 + 17, cfg.sample_rate)
    ours = mel_spectrogram(torch.from_numpy(y), cfg)
    ref = librosa_log_mel(y, cfg)
    assert ours.shape == (1, cfg.n_mels, len(y) // cfg.hop_length) == (1, *ref.shape)
    assert ours.dtype == torch.float32
    np.testing.assert_allclose(ours[0].numpy(), ref, atol=1e-4, rtol=0)


@pytest.mark.parametrize("cfg", CONFIGS, ids=["default", "16k-odd"])
def test_frame_rule(cfg):
    hop = cfg.hop_length
    for num_samples in (hop * 8, hop * 8 + 1, hop * 9 - 1, cfg.min_num_samples()):
        frames = mel_spectrogram(torch.zeros(num_samples), cfg).shape[-1]
        assert frames == num_samples // hop == cfg.num_frames(num_samples)
    assert mel_spectrogram(torch.zeros(hop * 8), cfg).shape[-1] * hop == hop * 8


def test_batched_equals_per_item_and_1d_gives_batch_of_one():
    cfg = MelConfig()
    batch = torch.from_numpy(np.stack([make_signal(8192, 22050, seed) for seed in range(3)]))
    together = mel_spectrogram(batch, cfg)
    assert together.shape == (3, 80, 32)
    for i in range(3):
        alone = mel_spectrogram(batch[i], cfg)
        assert alone.shape == (1, 80, 32)
        torch.testing.assert_close(together[i : i + 1], alone, atol=1e-5, rtol=0)


def test_module_equals_functional_and_has_non_persistent_buffers():
    cfg = MelConfig()
    module = MelSpectrogram(cfg)
    wav = torch.from_numpy(make_signal(4096, 22050))
    torch.testing.assert_close(module(wav), mel_spectrogram(wav, cfg))
    names = {name for name, _ in module.named_buffers()}
    assert names == {"window", "mel_basis"}
    assert module.mel_basis.shape == (80, 513)
    assert module.state_dict() == {}  # buffers move with .to() but never enter checkpoints
    double = module.double()(wav.double())
    assert double.dtype == torch.float64


def test_float64_input_gives_float64_and_half_is_upcast():
    wav = torch.from_numpy(make_signal(4096, 22050))
    assert mel_spectrogram(wav.double()).dtype == torch.float64
    assert mel_spectrogram(wav.half()).dtype == torch.float32


def test_mel_basis_built_once_never_in_forward(monkeypatch):
    module = MelSpectrogram(MelConfig())
    mel_spectrogram(torch.zeros(4096))  # warm the functional cache for the default config

    def fail(*args, **kwargs):
        raise AssertionError("librosa.filters.mel called during forward")

    monkeypatch.setattr(librosa.filters, "mel", fail)
    module(torch.zeros(4096))
    before = mel_module._cached_module.cache_info().hits
    mel_spectrogram(torch.zeros(4096))
    mel_spectrogram(torch.zeros(2048))
    assert mel_module._cached_module.cache_info().hits == before + 2


def test_gradients_flow():
    wav = torch.from_numpy(make_signal(4096, 22050)).requires_grad_(True)
    mel_spectrogram(wav).mean().backward()
    assert torch.isfinite(wav.grad).all() and wav.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "wav, match",
    [
        (torch.zeros(1, 1, 4096), r"shape \(T,\) or \(B, T\); got shape \(1, 1, 4096\)"),
        (torch.zeros(100), r"at least 385 samples .* got 100"),
        (torch.zeros(4096, dtype=torch.int16), "floating-point"),
        (torch.tensor([0.0, float("nan")] * 2048), "NaN or Inf"),
        (torch.tensor([0.0, float("inf")] * 2048), "NaN or Inf"),
    ],
)
def test_bad_inputs_raise_clear_errors(wav, match):
    with pytest.raises(ValueError, match=match):
        mel_spectrogram(wav)
    with pytest.raises(ValueError, match=match):
        MelSpectrogram()(wav)


def test_numpy_input_is_a_type_error():
    with pytest.raises(TypeError, match="torch.Tensor"):
        mel_spectrogram(np.zeros(4096, dtype=np.float32))


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"hop_length": 0}, "hop_length must be a positive int"),
        ({"win_length": 2048}, r"win_length \(2048\) must be <= n_fft \(1024\)"),
        ({"f_max": 12000.0}, "f_max <= sample_rate / 2"),
        ({"clamp_min": 0.0}, "clamp_min must be > 0"),
    ],
)
def test_config_validation(changes, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(MelConfig(), **changes)


def test_num_frames_and_min_samples():
    cfg = MelConfig()
    assert cfg.num_frames(22050) == 86
    assert cfg.num_frames(256 * 10) == 10
    assert cfg.min_num_samples() == 385
    with pytest.raises(ValueError):
        cfg.num_frames(-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    wav = torch.from_numpy(np.stack([make_signal(8192, 22050, seed) for seed in range(2)]))
    module = MelSpectrogram().to("cuda")
    assert module.mel_basis.device.type == "cuda"
    on_gpu = mel_spectrogram(wav.cuda())
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), mel_spectrogram(wav), atol=1e-4, rtol=0)
    torch.testing.assert_close(module(wav.cuda()), on_gpu)
