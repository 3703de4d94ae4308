"""Tiny MelDiT fixtures for the generation tests (CPU, a few ms per forward)."""

from __future__ import annotations

import pytest
import torch
from meldit_tiny import TINY, randomize

from accelerando.generation import MelDiT


@pytest.fixture
def tiny_model() -> MelDiT:
    torch.manual_seed(0)
    return MelDiT(**TINY).eval()


@pytest.fixture
def random_model(tiny_model: MelDiT) -> MelDiT:
    return randomize(tiny_model)
