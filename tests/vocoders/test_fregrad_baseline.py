"""PriorGradBaseline: the raw-waveform DiffWave / PriorGrad model FreGrad is compared against."""

from __future__ import annotations

import pytest
import torch

from accelerando.vocoders.fregrad import FreGrad
from accelerando.vocoders.fregrad.baseline import PriorGradBaseline

PRIORGRAD_64_PARAMS = 2_619_923  # PriorGrad with 64 residual channels (FreGrad paper / REFERENCES.md)


@pytest.fixture(scope="module")
def model() -> PriorGradBaseline:
    torch.manual_seed(0)
    return PriorGradBaseline().eval()


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a loaded shared CPU, OpenMP spinning makes 2 threads far slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_parameter_count_matches_priorgrad(model: PriorGradBaseline) -> None:
    count = model.num_parameters()
    assert abs(count - PRIORGRAD_64_PARAMS) / PRIORGRAD_64_PARAMS < 0.02
    # FreGrad's claim: about 0.6x the size of this baseline.
    assert 0.6 < FreGrad().num_parameters() / count < 0.75


def test_architecture(model: PriorGradBaseline) -> None:
    assert len(model.blocks) == 30
    assert [b.dilated_conv.dilation[0] for b in model.blocks[:11]] == [2**i for i in range(10)] + [1]
    assert model.blocks[0].dilated_conv.in_channels == 64
    assert [c.stride[1] for c in model.mel_upsampler.convs] == [16, 16]


def test_synthesize_shape_and_determinism(model: PriorGradBaseline) -> None:
    mel = torch.randn(2, 80, 5) - 5.0
    # Non-zero output projection so the network's prediction matters in the samples.
    with torch.no_grad():
        model.output_projection.weight.normal_(0.0, 0.1)
    a = model.synthesize(mel, num_steps=6, generator=torch.Generator().manual_seed(0))
    b = model.synthesize(mel, num_steps=6, generator=torch.Generator().manual_seed(0))
    c = model.synthesize(mel, num_steps=6, generator=torch.Generator().manual_seed(1))
    assert a.shape == (2, 5 * 256)
    assert torch.isfinite(a).all() and a.abs().max() <= 1.0
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert model.synthesize(mel[0], num_steps=2).shape == (1, 5 * 256)


def test_forward_and_bad_inputs(model: PriorGradBaseline) -> None:
    mel = torch.randn(1, 80, 3) - 5.0
    out = model(torch.randn(1, 1, 3 * 256), torch.tensor([2.5]), mel)
    assert out.shape == (1, 1, 3 * 256)
    with pytest.raises(ValueError, match="frames"):
        model(torch.randn(1, 1, 100), torch.tensor([1.0]), mel)
    with pytest.raises(ValueError, match="shape"):
        model.synthesize(torch.randn(1, 40, 3))
    with pytest.raises(ValueError, match="num_steps"):
        model.synthesize(mel, num_steps=7)
