"""pca_projection (bundlerl.candidates.projection): uncentred = top eigenbasis of the second moment (search),
centred = principal components (observation coordinates); orthonormal, ordered, signs fixed; errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bundlerl.candidates.projection import ProjectionError, pca_projection


def _rows(n, d, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    # anisotropic rows so the spectrum is spread; ``shift`` moves their mean
    return (rng.standard_normal((n, d)) * np.linspace(3, 0.2, d) + shift).astype(np.float32)


def _is_top_eigenbasis(W, M, r):
    """W's columns span M's top-r eigenvectors, largest first (Rayleigh quotients = top eigenvalues)."""
    np.testing.assert_allclose(W.T @ W, np.eye(r), atol=1e-4)
    lam = np.einsum("dr,de,er->r", W, M, W)
    assert (np.diff(lam) <= 1e-4 * max(lam.max(), 1)).all()  # largest first
    top = np.sort(np.linalg.eigvalsh(M))[::-1][:r]
    np.testing.assert_allclose(lam, top, rtol=1e-3, atol=1e-4 * max(top.max(), 1))


def _signs_fixed(W):
    return (W[np.abs(W).argmax(axis=0), np.arange(W.shape[1])] > 0).all()


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), d=st.integers(2, 12), seed=st.integers(0, 2**16), data=st.data())
def test_uncentred_is_the_top_eigenbasis_of_the_second_moment(n, d, seed, data):
    r = data.draw(st.integers(1, d))
    E = _rows(n, d, seed, shift=1.0)
    W = pca_projection(E, r, center=False)
    assert W.shape == (d, r) and W.dtype == np.float32 and W.flags.c_contiguous
    _is_top_eigenbasis(W, E.T.astype(np.float64) @ E / n, r)
    assert _signs_fixed(W)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 40), d=st.integers(2, 12), seed=st.integers(0, 2**16), data=st.data())
def test_centred_is_the_top_eigenbasis_of_the_covariance(n, d, seed, data):
    r = data.draw(st.integers(1, min(d, n - 1)))  # a centred sample of n rows has rank <= n - 1
    E = _rows(n, d, seed, shift=1.0)
    W = pca_projection(E, r, center=True)
    assert W.shape == (d, r) and W.dtype == np.float32
    x = E.astype(np.float64) - E.mean(0, dtype=np.float64)
    _is_top_eigenbasis(W, x.T @ x / n, r)
    assert _signs_fixed(W)


def test_centring_ignores_the_common_mean_and_uncentred_does_not():
    E = _rows(200, 8, 0)
    shifted = E + np.float32(5.0) * np.ones(8, np.float32) / np.sqrt(8)
    np.testing.assert_allclose(pca_projection(shifted, 3, center=True), pca_projection(E, 3, center=True), atol=1e-4)
    first = pca_projection(shifted, 1, center=False)[:, 0]
    assert abs(first @ (np.ones(8) / np.sqrt(8))) > 0.99  # the uncentred first direction is the shared mean


def test_centred_with_fewer_items_than_r_completes_an_orthonormal_basis():
    E = _rows(3, 10, 1)
    W = pca_projection(E, 6, center=True)
    assert W.shape == (10, 6)
    np.testing.assert_allclose(W.T @ W, np.eye(6), atol=1e-5)
    assert _signs_fixed(W)


@pytest.mark.parametrize("center", [False, True])
def test_errors(center):
    with pytest.raises(ProjectionError, match="non-empty"):
        pca_projection(np.zeros((0, 4), np.float32), 2, center=center)
    with pytest.raises(ProjectionError, match=r"1 <= r <= 4"):
        pca_projection(np.ones((3, 4), np.float32), 5, center=center)
    with pytest.raises(TypeError):
        pca_projection(np.ones((3, 4), np.float32), 2)  # centring is always the caller's explicit choice
