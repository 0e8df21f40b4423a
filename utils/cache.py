"""The root folder of bundlerl's on-disk caches (embeddings, complementarity fits, worlds)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_root"]

CACHE_ENV = "BUNDLERL_CACHE"
"""Environment variable naming the cache root."""


def cache_root() -> Path:
    """``$BUNDLERL_CACHE`` (``~`` expanded) if set, else ``~/.cache/bundlerl``. Read at each call, so a test or a
    user may point it elsewhere at any time; each cache keeps its own subfolder (``embeddings/``,
    ``complementarity/``, ``worlds/``)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "bundlerl"
