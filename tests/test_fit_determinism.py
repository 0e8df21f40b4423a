"""The same inputs give the same complementarity model whatever the calling process's thread settings, so a
world is the same whichever command builds it first (``bundlerl train`` runs torch on one thread, a plain script
on all cores; the model used to differ by ~2e-5 between them)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _fit_data import fit_data
from threadpoolctl import threadpool_limits

from bundlerl.candidates.complementarity import ComplementConfig, fit
from bundlerl.candidates.cooccurrence import PairCounts, ppmi_embeddings
from bundlerl.utils.threads import torch_threads

FAST = ComplementConfig(eta=0.25, rank=8, n_pairs=4_000, epochs=2, batch_size=1024, lr=0.02, top_k=6,
                        pool_size=200)


@pytest.fixture(scope="module")
def data():
    return fit_data(240, 60, 3000, 32)


def _arrays(model) -> dict[str, np.ndarray]:
    return {k: v for k, v in vars(model).items() if isinstance(v, np.ndarray)}


def test_fit_is_bit_identical_under_any_caller_thread_settings(data):
    """One thread for torch and numpy's BLAS (as in ``bundlerl train``) vs two for both (a plain script on this
    2-core machine): every array of the model bit for bit."""
    cat, baskets, emb = data
    with torch_threads(1), threadpool_limits(1):
        ref = _arrays(fit(cat, baskets, emb, np.random.default_rng(9), FAST, use_cache=False))
    with torch_threads(2), threadpool_limits(2):
        got = _arrays(fit(cat, baskets, emb, np.random.default_rng(9), FAST, use_cache=False))
    assert sorted(got) == sorted(ref)
    for k in ref:
        assert np.array_equal(ref[k], got[k]), f"{k} differs (max {np.max(np.abs(ref[k] - got[k]))})"


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_ppmi_embeddings_ignore_the_callers_torch_threads(data, threads):
    _, baskets, _ = data
    counts = PairCounts.from_baskets(baskets)
    with torch_threads(1):
        ref = ppmi_embeddings(counts, 16, np.random.default_rng(3))
    before = torch.get_num_threads()
    with torch_threads(threads):
        got = ppmi_embeddings(counts, 16, np.random.default_rng(3))
        assert torch.get_num_threads() == threads  # restored to the caller's setting
    assert torch.get_num_threads() == before
    assert np.array_equal(ref, got)
