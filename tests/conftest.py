"""Shared pytest set-up: deterministic, single-threaded-by-default, offline."""

from __future__ import annotations

import os

# Tests must never reach a hub; these make diffusers / huggingface_hub fail fast if anything tries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MPLBACKEND", "Agg")
