"""Shared, expensive test fixtures (add yours below; keep each one cheap to skip)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def minilm():
    """The real packaged all-MiniLM-L6-v2 SentenceEncoder (384-d, CPU/GPU as available), loaded once.

    Not cached on disk; wrap it in ``encoders.CachedEncoder(minilm, tmp_path)`` when a test needs a cache.
    """
    from encoders import SentenceEncoder

    enc = SentenceEncoder()
    enc.encode(["load the model once per session"])
    return enc
