import math

import pytest
import torch

from accelerando.audio import dwt_haar, idwt_haar

S = 1 / math.sqrt(2)


def test_known_answer_even_and_odd():
    y = dwt_haar(torch.tensor([[[1.0, 2.0, 3.0, 4.0]]]))
    torch.testing.assert_close(y, torch.tensor([[[3 * S, 7 * S], [-S, -S]]]))
    y = dwt_haar(torch.tensor([[[1.0, 2.0, 3.0]]]))  # zero-padded to [1, 2, 3, 0]
    torch.testing.assert_close(y, torch.tensor([[[3 * S, 3 * S], [-S, 3 * S]]]))


def test_channel_layout_low_then_high():
    x = torch.randn(2, 3, 10)
    y = dwt_haar(x)
    assert y.shape == (2, 6, 5)
    torch.testing.assert_close(y[:, :3], (x[..., 0::2] + x[..., 1::2]) * S)
    torch.testing.assert_close(y[:, 3:], (x[..., 0::2] - x[..., 1::2]) * S)


@pytest.mark.parametrize("length", [64, 65, 1, 2])
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
def test_perfect_reconstruction(length, dtype, tol):
    x = torch.randn(3, 4, length, dtype=dtype, generator=torch.Generator().manual_seed(length))
    y = dwt_haar(x)
    assert y.shape == (3, 8, math.ceil(length / 2)) and y.dtype == dtype
    torch.testing.assert_close(idwt_haar(y, length=length), x, atol=tol, rtol=0)
    assert idwt_haar(y).shape[-1] == 2 * math.ceil(length / 2)


@pytest.mark.parametrize("length", [128, 127])
def test_energy_preserved(length):
    x = torch.randn(2, 5, length, dtype=torch.float64)
    torch.testing.assert_close(dwt_haar(x).square().sum(), x.square().sum())


def test_inverse_then_forward_is_identity_and_gradients_flow():
    y = torch.randn(2, 4, 16, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(dwt_haar(idwt_haar(y)), y)
    assert torch.autograd.gradcheck(
        lambda t: idwt_haar(dwt_haar(t), length=15),
        torch.randn(1, 2, 15, dtype=torch.float64, requires_grad=True),
    )


def test_half_precision_keeps_dtype():
    x = torch.randn(1, 2, 33).half()
    assert dwt_haar(x).dtype == torch.float16
    assert idwt_haar(dwt_haar(x), 33).dtype == torch.float16


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_round_trip():
    x = torch.randn(2, 3, 101, device="cuda")
    torch.testing.assert_close(idwt_haar(dwt_haar(x), 101), x, atol=1e-6, rtol=0)


def test_errors():
    with pytest.raises(ValueError, match=r"\(B, C, T\); got shape \(8,\)"):
        dwt_haar(torch.zeros(8))
    with pytest.raises(ValueError, match="even channel count; got"):
        idwt_haar(torch.zeros(1, 3, 4))
    with pytest.raises(ValueError, match="between 1 and 2 \\* T2 = 8; got 9"):
        idwt_haar(torch.zeros(1, 2, 4), length=9)
