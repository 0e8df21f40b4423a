"""Text -> unit vectors: the offline sentence-transformers encoder, its on-disk cache, user vectors.

``import encoders`` is light: torch and sentence_transformers load on the first ``encode``.

    >>> from encoders import default_encoder
    >>> enc = default_encoder()                 # cached, packaged all-MiniLM-L6-v2, 384-d
    >>> vecs = enc.encode(["digital camera"])   # (1, 384) float32, unit norm
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .base import EncoderError, TextEncoder

if TYPE_CHECKING:  # pragma: no cover
    from .cache import CachedEncoder
    from .sentence import SentenceEncoder
    from .user_vectors import EventWeights, blend, decay_and_add, history_vectors

__all__ = [
    "TextEncoder",
    "EncoderError",
    "SentenceEncoder",
    "CachedEncoder",
    "default_encoder",
    "EventWeights",
    "history_vectors",
    "decay_and_add",
    "blend",
]

_LAZY = {
    "SentenceEncoder": "sentence",
    "CachedEncoder": "cache",
    "EventWeights": "user_vectors",
    "history_vectors": "user_vectors",
    "decay_and_add": "user_vectors",
    "blend": "user_vectors",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def default_encoder(cache_dir: str | os.PathLike | None = None, device: str | None = None) -> "CachedEncoder":
    """The project's encoder: the packaged all-MiniLM-L6-v2 (384-d, offline) behind the disk cache.

    :param cache_dir: cache root (default ``$BUNDLERL_CACHE`` or ``~/.cache/bundlerl``; vectors
        go under its ``embeddings/``).
    :param device: torch device; None = CUDA when available, else CPU.
    Returns a :class:`CachedEncoder` (a :class:`TextEncoder`); construction is cheap, the model
    loads on the first cache miss.
    """
    from .cache import CachedEncoder
    from .sentence import SentenceEncoder

    return CachedEncoder(SentenceEncoder(device=device), cache_dir=cache_dir)
