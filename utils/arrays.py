"""Array helpers shared by the layers: tables padded for gathers with -1 (an empty slot); the layout check of
arrays read back from a file."""

from __future__ import annotations

import weakref

import numpy as np

__all__ = ["zero_padded", "check_layout"]

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


def check_layout(arrays: dict, layout: dict, sizes: dict) -> dict:
    """Raise ValueError unless ``arrays`` (name -> array, as read from a file) match ``layout`` (name -> (dtype,
    shape)); a shape entry is a number or a letter bound to the first size seen (``sizes`` pre-binds some, e.g.
    ``{"n": n_items}``). Returns the bound sizes. The check a saved model runs before it is used, so a file of
    another version or a damaged writer fails here, naming the array, not later."""
    sizes = dict(sizes)
    for name, (dtype, shape) in layout.items():
        if name not in arrays:
            raise ValueError(f"array {name!r} is missing")
        x = arrays[name]
        if x.dtype != np.dtype(dtype) or x.ndim != len(shape):
            raise ValueError(f"array {name!r} is {x.dtype} with {x.ndim} dimensions, expected {np.dtype(dtype)} {shape}")
        for axis, (got, want) in enumerate(zip(x.shape, shape)):
            want = sizes.setdefault(want, got) if isinstance(want, str) else want
            if got != want:
                raise ValueError(f"array {name!r} has shape {x.shape}, expected {shape} with {sizes} (axis {axis})")
    return sizes
