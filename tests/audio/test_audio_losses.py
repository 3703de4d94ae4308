import librosa
import numpy as np
import pytest
import torch

from accelerando.audio import MultiResolutionSTFTLoss, MultiScaleMelLoss

LOSSES = [MultiResolutionSTFTLoss, MultiScaleMelLoss]
T = 8192


def signals(batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(T) / 22050
    clean = 0.5 * torch.sin(2 * torch.pi * 220 * t) * torch.ones(batch, 1)
    return clean, torch.randn(batch, T, generator=gen)


@pytest.mark.parametrize("loss_cls", LOSSES)
def test_zero_for_identical_and_grows_with_noise(loss_cls):
    loss = loss_cls()
    clean, noise = signals()
    assert loss(clean, clean.clone()).item() == pytest.approx(0.0, abs=1e-6)
    small = loss(clean + 0.01 * noise, clean).item()
    large = loss(clean + 0.1 * noise, clean).item()
    assert 0 < small < large


@pytest.mark.parametrize("loss_cls", LOSSES)
def test_gradients_flow_and_shapes_accepted(loss_cls):
    loss = loss_cls()
    clean, noise = signals()
    pred = (clean + 0.05 * noise).requires_grad_(True)
    value = loss(pred, clean)
    assert value.dim() == 0
    value.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    torch.testing.assert_close(loss(pred.detach().unsqueeze(1), clean.unsqueeze(1)), value.detach())
    assert list(loss.state_dict()) == []  # windows and mel bases are non-persistent buffers


@pytest.mark.parametrize("loss_cls", LOSSES)
def test_shape_errors(loss_cls):
    clean, _ = signals()
    with pytest.raises(ValueError, match="same shape"):
        loss_cls()(clean, clean[:, :-1])
    with pytest.raises(ValueError, match=r"\(B, T\) or \(B, 1, T\)"):
        loss_cls()(clean[0], clean[0])


def test_stft_loss_matches_numpy_reference_single_resolution():
    clean, noise = signals(batch=1)
    pred = clean + 0.1 * noise
    ours = MultiResolutionSTFTLoss(fft_sizes=(512,), hop_sizes=(128,), win_lengths=(400,))(pred, clean).item()

    def mag(x):
        spec = librosa.stft(
            x[0].double().numpy(), n_fft=512, hop_length=128, win_length=400, center=True, pad_mode="reflect"
        )
        return np.sqrt(np.abs(spec) ** 2 + 1e-7)

    s_pred, s_true = mag(pred), mag(clean)
    ref = (
        np.linalg.norm(s_true - s_pred) / np.linalg.norm(s_true)
        + np.abs(np.log(s_true) - np.log(s_pred)).mean()
    )
    assert ours == pytest.approx(ref, rel=1e-4)


def test_mel_loss_matches_numpy_reference_single_scale():
    clean, noise = signals(batch=1)
    pred = clean + 0.1 * noise
    loss = MultiScaleMelLoss(
        sample_rate=22050, window_lengths=(512,), n_mels=(40,), mag_weight=0.5, log_weight=2.0
    )
    ours = loss(pred, clean).item()
    basis = librosa.filters.mel(sr=22050, n_fft=512, n_mels=40)

    def mel(x):
        return basis @ np.abs(
            librosa.stft(x[0].double().numpy(), n_fft=512, hop_length=128, center=True, pad_mode="reflect")
        )

    m_pred, m_true = mel(pred), mel(clean)
    log_l1 = np.abs(np.log10(np.maximum(m_pred, 1e-5) ** 2) - np.log10(np.maximum(m_true, 1e-5) ** 2)).mean()
    ref = 2.0 * log_l1 + 0.5 * np.abs(m_pred - m_true).mean()
    assert ours == pytest.approx(ref, rel=1e-4)


def test_mel_loss_defaults_are_dacs():
    loss = MultiScaleMelLoss()
    assert loss.window_lengths == (32, 64, 128, 256, 512, 1024, 2048)
    assert loss.n_mels == (5, 10, 20, 40, 80, 160, 320)
    assert (loss.clamp_eps, loss.pow, loss.mag_weight, loss.log_weight) == (1e-5, 2.0, 1.0, 1.0)


def test_mismatched_resolution_lists_rejected():
    with pytest.raises(ValueError, match="equal length"):
        MultiResolutionSTFTLoss(fft_sizes=(1024,), hop_sizes=(120, 240), win_lengths=(600,))
    with pytest.raises(ValueError, match="longer than its fft_size"):
        MultiResolutionSTFTLoss(fft_sizes=(512,), hop_sizes=(128,), win_lengths=(1024,))
    with pytest.raises(ValueError, match="equal length"):
        MultiScaleMelLoss(window_lengths=(32, 64), n_mels=(5,))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("loss_cls", LOSSES)
def test_cuda_matches_cpu(loss_cls):
    clean, noise = signals()
    pred = clean + 0.05 * noise
    cpu = loss_cls()(pred, clean)
    torch.testing.assert_close(loss_cls().cuda()(pred.cuda(), clean.cuda()).cpu(), cpu, rtol=1e-4, atol=1e-5)
