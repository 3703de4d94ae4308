"""Fixtures of the streaming-engine and speech-server tests (helpers live in ``tts_helpers.py``)."""

from __future__ import annotations

import pytest
from tts_helpers import LocalVocoder, tiny_fastpitch

from accelerando.tts import StreamingSynthesizer


@pytest.fixture(scope="session")
def tiny_engine() -> StreamingSynthesizer:
    """A tiny random engine with a deterministic local vocoder, shared by the tests."""
    return StreamingSynthesizer(tiny_fastpitch(), LocalVocoder(), queue_size=2)
