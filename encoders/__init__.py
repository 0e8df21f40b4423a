"""Text -> unit vectors: the offline sentence-transformers encoder, its on-disk cache, user history vectors.

``import encoders`` is light: torch and sentence_transformers load on the first ``encode``.

    >>> from encoders import default_encoder
    >>> enc = default_encoder()                 # cached, packaged all-MiniLM-L6-v2, 384-d
    >>> vecs = enc.encode(["digital camera"])   # (1, 384) float32, unit norm
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from bundlerl.encoders.base import EncoderError, TextEncoder
from bundlerl.utils.lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from bundlerl.encoders.cache import CachedEncoder
    from bundlerl.encoders.sentence import SentenceEncoder
    from bundlerl.encoders.user_vectors import add_clicked, history_vectors, projected_history

__all__ = [
    "TextEncoder",
    "EncoderError",
    "SentenceEncoder",
    "CachedEncoder",
    "default_encoder",
    "add_clicked",
    "history_vectors",
    "projected_history",
]

__getattr__, __dir__, _ = lazy_exports(__name__, {
    ".sentence": "SentenceEncoder",
    ".cache": "CachedEncoder",
    ".user_vectors": "add_clicked history_vectors projected_history",
})


def default_encoder(cache_dir: str | os.PathLike | None = None, device: str | None = None) -> "CachedEncoder":
    """The project's encoder: the packaged all-MiniLM-L6-v2 (384-d, offline) behind the disk cache.

    :param cache_dir: cache root (default ``$BUNDLERL_CACHE`` or ``~/.cache/bundlerl``; vectors
        go under its ``embeddings/``).
    :param device: torch device; None = CUDA when available, else CPU.
    Returns a :class:`CachedEncoder` (a :class:`TextEncoder`); construction is cheap, the model
    loads on the first cache miss.
    """
    from bundlerl.encoders.cache import CachedEncoder
    from bundlerl.encoders.sentence import SentenceEncoder

    return CachedEncoder(SentenceEncoder(device=device), cache_dir=cache_dir)
