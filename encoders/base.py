"""The encoder protocol: text in, unit vectors out."""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from bundlerl.utils.errors import BundlerlError


class EncoderError(BundlerlError):
    """Bad encoder input or configuration; the message says what is wrong and what to do."""


@runtime_checkable
class TextEncoder(Protocol):
    """Maps texts to unit-norm float32 vectors.

    ``encode(texts)`` returns an array of shape (len(texts), dim), dtype float32, every row of
    L2 norm 1. Empty input list gives shape (0, dim). Empty or non-string texts raise
    :class:`EncoderError`.
    """

    @property
    def identity(self) -> str:
        """Stable identity of the model (name + weights fingerprint); cache keys depend on it."""

    @property
    def dim(self) -> int:
        """Output dimension d."""

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool | None = None) -> np.ndarray:
        """(len(texts), dim) float32 unit-norm rows. ``progress=None`` shows a bar for long lists."""
