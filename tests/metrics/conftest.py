"""Fixtures of the metrics tests."""

from __future__ import annotations

import numpy as np
import pytest
from metrics_signals import speechlike


@pytest.fixture(scope="session")
def clean() -> np.ndarray:
    """1.5 s of speech-like audio at 22.05 kHz."""
    return speechlike()
