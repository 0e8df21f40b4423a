"""Array helpers shared by the layers: tables padded for gathers with -1 (an empty slot)."""

from __future__ import annotations

import weakref

import numpy as np

__all__ = ["zero_padded"]

_PADDED: dict[int, tuple[weakref.ref, np.ndarray]] = {}


def zero_padded(table: np.ndarray) -> np.ndarray:
    """``table`` (n, d) with a zero row appended, (n + 1, d): gathering it with index -1 (an empty bundle slot)
    yields zeros, so sums over a bundle's slots need no masking pass.

    One copy per source array, shared by every caller (each env of a process holds a shopper and a session
    over the same embeddings; a 50k-item catalogue would otherwise cost 76 MB per env) and dropped with the
    source. The result is read-only.
    """
    key = id(table)
    hit = _PADDED.get(key)
    if hit is not None and hit[0]() is table:
        return hit[1]
    out = np.concatenate([table, np.zeros((1, table.shape[1]), table.dtype)])
    out.flags.writeable = False  # shared between envs: a write through one would change them all
    _PADDED[key] = (weakref.ref(table, lambda _, k=key: _PADDED.pop(k, None)), out)
    return out
