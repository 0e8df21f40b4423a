"""Recommender-side user history vectors: the clicked-items history the environment keeps and observes.

A user's history vector is the direction of the summed embeddings of the items of every bundle they
clicked this session (an item clicked twice counts twice; no recency weighting)::

    sum_u     = Σ_{clicked bundles B of u} Σ_{i in B} e_i
    history_u = sum_u / ||sum_u||            (the zero vector before the first click)

The environment (``bundlerl.env.session``) keeps ``sum_u`` per user and updates it with :func:`add_clicked`
after each click; the candidate builder queries with :func:`history_vectors`. The observation's ``history``
entry is the same direction projected on P principal directions ``W`` (d, P): the projected sums ``sum_u @ W``
are accumulated item by item alongside (an (n_items, P) table of projected items), so
:func:`projected_history` costs O(P) per user instead of a (d, P) product.

Observable data only (item embeddings and the user's own clicks), never simulator truth. Batched over users;
numpy only.
"""

from __future__ import annotations

import numpy as np

from bundlerl.encoders.base import EncoderError
from bundlerl.utils.args import shown

__all__ = ["add_clicked", "history_vectors", "projected_history"]


def _arrays(where: str, **arrays) -> None:
    """Each ``name=(value, ndim, dtype kinds)`` is a numpy array of that rank and kind (a cheap check: these run every
    env step); else EncoderError naming the argument."""
    for name, (value, ndim, kinds) in arrays.items():
        if not isinstance(value, np.ndarray) or value.ndim != ndim or value.dtype.kind not in kinds:
            kind = {"f": "float", "iu": "integer", "fiu": "numeric"}[kinds]
            raise EncoderError(f"{where}({name}={shown(value)}): {name} must be a {ndim}-d {kind} numpy array")


def add_clicked(sums: np.ndarray, rows: np.ndarray, bundles: np.ndarray, table: np.ndarray) -> None:
    """Add the clicked bundles to the running sums, in place: ``sums[rows[j]] += Σ_k table[bundles[j, k]]``.

    :param sums: (N, D) running sums (D = d for embeddings, P for projected items).
    :param rows: (n,) distinct row indices of the users who clicked.
    :param bundles: (n, K_max) int item ids of their clicked bundles, -1 in empty slots.
    :param table: (n_items + 1, D) item vectors with a zero last row (``bundlerl.utils.arrays.zero_padded``):
        the -1 slots gather it, so no masking pass is needed.
    """
    _arrays("add_clicked", sums=(sums, 2, "f"), rows=(rows, 1, "iu"), bundles=(bundles, 2, "iu"),
            table=(table, 2, "f"))
    if rows.size != bundles.shape[0] or table.shape[1] != sums.shape[1]:
        raise EncoderError(f"add_clicked: rows {rows.shape} and bundles {bundles.shape} must have one row each per "
                           f"clicked user, table {table.shape} the width of sums {sums.shape}")
    sums[rows] += table[bundles].sum(axis=1)


def history_vectors(sums: np.ndarray) -> np.ndarray:
    """(n, d) float32 history vectors of (n, d) running sums: unit rows, zero rows where the sum is zero."""
    _arrays("history_vectors", sums=(sums, 2, "fiu"))
    nrm = np.linalg.norm(sums, axis=1, keepdims=True)
    return np.where(nrm > 0, sums / np.maximum(nrm, 1e-12), 0.0).astype(np.float32)


def projected_history(sums: np.ndarray, projected_sums: np.ndarray) -> np.ndarray:
    """(n, P) float32 ``history_vectors(sums) @ W`` from the accumulated ``projected_sums`` = ``sums @ W``, clipped to
    [-1, 1] against rounding (W has orthonormal columns); zero rows where the sum is zero.

    normalize(h) @ W == (h @ W) / ||h||: only the norm of the (n, d) sums is computed here.
    """
    _arrays("projected_history", sums=(sums, 2, "f"), projected_sums=(projected_sums, 2, "f"))
    if projected_sums.shape[0] != sums.shape[0]:
        raise EncoderError(f"projected_history: projected_sums {projected_sums.shape} needs a row per row of sums "
                           f"{sums.shape}")
    nrm = np.sqrt(np.einsum("nd,nd->n", sums, sums))[:, None]
    return np.clip(projected_sums / np.maximum(nrm, 1e-12), -1.0, 1.0)
