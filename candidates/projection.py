"""Projections of item vectors onto their principal directions: :func:`pca_projection`, the one definition.

Two uses, which differ in centring (``center`` is a required argument, so every caller says which):

- **uncentred** (``center=False``): the top eigenvectors of the second moment ``E^T E / n``. Then
  ``(x @ W) . (y @ W)`` is the best rank-r approximation of the inner products ``x . y`` over these rows,
  which is what a search that ranks by inner product needs: the item index's reduced-dimension search
  (``bundlerl.candidates.index``) and the builder's reduced relevance during completion
  (``bundlerl.candidates.builder``). Centring would add an item-dependent term and change rankings
  (recall@50 0.902 centred vs 0.947 uncentred, 10k MiniLM items, r = 64).
- **centred** (``center=True``): the principal components of the rows minus their mean, i.e. the
  directions along which items differ most. Right for compact *coordinates* of a vector (the env's
  observation of profile and history, ``bundlerl.env.world``): sentence embeddings share a large
  mean direction, which uncentred would spend the first coordinate on.

Both return orthonormal float32 columns, largest variance first, each column's sign fixed so that its
largest-magnitude entry is positive (the same basis whatever the LAPACK build). A column's sign never
changes an inner product ``(x @ W) . (y @ W)``: both factors flip.

The two are computed differently, as they were before they shared this home (changing either would change
the env's observations or the builder's candidates): uncentred from the (d, d) moment of a float32 GEMM and
a symmetric eigen-decomposition (cheap for 100k+ rows; only the order of directions matters there),
centred from an SVD of the centred rows in float64, completed with an orthonormal basis of the rest when
there are fewer directions than ``r`` (fewer items than ``r``).
"""

from __future__ import annotations

import numpy as np

from bundlerl.utils.errors import BundlerlError
from bundlerl.utils.threads import serial_numpy_blas

__all__ = ["pca_projection", "ProjectionError"]


class ProjectionError(BundlerlError):
    """Bad input to a projection (empty or non-2-D vectors, a rank outside [1, d])."""


def pca_projection(vectors: np.ndarray, r: int, *, center: bool) -> np.ndarray:
    """(d, r) float32 orthonormal columns: the top-``r`` principal directions of ``vectors`` (n, d).

    :param vectors: (n, d) float array, n >= 1.
    :param r: number of directions, 1 <= r <= d.
    :param center: False: eigenvectors of the uncentred second moment (approximating inner products, for
        search); True: principal components of the centred rows (coordinates, for observations). See the
        module docstring for when each is right.
    :returns: W with ``W.T @ W = I``, largest (uncentred moment or variance) first, each column's
        largest-magnitude entry positive.
    Raises :class:`ProjectionError` unless ``vectors`` is 2-D, non-empty and ``1 <= r <= d``.
    """
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[0] == 0:
        raise ProjectionError(f"vectors has shape {vectors.shape}; pca_projection needs a non-empty (n, d) array")
    n, d = vectors.shape
    if not 1 <= int(r) <= d:
        raise ProjectionError(f"projection rank r={r}; use 1 <= r <= {d} (the vector dimension)")
    r = int(r)
    if center:
        x = vectors.astype(np.float64) - vectors.mean(axis=0, dtype=np.float64)
        with serial_numpy_blas():  # multi-threaded OpenBLAS LAPACK is ~100x slower on a busy 2-core VM
            _, _, vt = np.linalg.svd(x, full_matrices=False)
        v = vt[:r].T
        if v.shape[1] < r:  # fewer items than r: complete with an orthonormal basis of the rest
            q, _ = np.linalg.qr(np.concatenate([v, np.eye(d)[:, :r]], axis=1))
            v = q[:, :r]
    else:
        with serial_numpy_blas():
            e = np.asarray(vectors, dtype=np.float32)
            m2 = (e.T @ e).astype(np.float64) / n  # float32 GEMM; the moment only orders directions
            _, v = np.linalg.eigh(m2)
        v = v[:, ::-1][:, :r]
    sign = np.sign(v[np.abs(v).argmax(axis=0), np.arange(r)])
    return np.ascontiguousarray(v * sign, dtype=np.float32)
