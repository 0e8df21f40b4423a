"""Re-ranked ItemIndex (IndexConfig.reduce_dim and/or pq_m): PCA projection or 4-bit PQ codes, exact
re-ranking, exclusion, cold start, persistence, errors (the projection itself: tests/test_projection.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _search_ref import brute

from bundlerl.candidates.index import IndexConfig, IndexError_, ItemIndex, blas_flat_search

KINDS = ["flat", "hnsw", "ivf", "ivf-pq", "ivf-pq-reduced"]


def variant(name: str, r: int) -> dict:
    """Config of a re-ranked structure: PCA-reduced flat / HNSW / IVF (to r dims), IVF with 4-bit PQ codes of
    the full 24-d vectors, or PQ codes of the r-dim projection."""
    if name == "ivf-pq":
        return dict(kind="ivf", pq_m=8)
    if name == "ivf-pq-reduced":
        return dict(kind="ivf", reduce_dim=r, pq_m=r)
    return dict(kind=name, reduce_dim=r)


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    return unit(rng.standard_normal((300, 24))), unit(rng.standard_normal((30, 24)))


def covering(kind: str, n: int, k: int, **kw) -> IndexConfig:
    """A reduced config whose candidate pool covers the whole catalogue (so the result is exact)."""
    return IndexConfig(**variant(kind, 6), rerank=-(-n // k), nlist=8, nprobe=8, **kw)


@pytest.mark.parametrize("kind", KINDS)
def test_scores_are_exact_inner_products_in_exact_order(data, kind):
    E, Q = data
    # rerank=2: the candidate pool is approximate, but whatever is returned is scored exactly
    index = ItemIndex(E, IndexConfig(**variant(kind, 6), rerank=2, nlist=8, nprobe=2))
    exclude = [np.arange(r % 4) for r in range(len(Q))]
    scores, items = index.search(Q, 10, exclude=exclude)
    assert items.shape == (30, 10) and items.dtype == np.int64 and scores.dtype == np.float32
    assert (items >= 0).all()
    np.testing.assert_allclose(scores, np.einsum("nd,nkd->nk", Q, E[items]), atol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()
    for r, ex in enumerate(exclude):
        assert not np.isin(items[r], ex).any()
        assert np.unique(items[r]).size == 10


@pytest.mark.parametrize("kind", KINDS)
def test_covering_rerank_equals_exact_search_with_exclusion(data, kind):
    E, Q = data
    exclude = [np.array([r, r + 1, 299]) for r in range(len(Q))]
    scores, items = ItemIndex(E, covering(kind, 300, 12, ef_search=400)).search(Q, 12, exclude=exclude)
    ref_s, ref_i = brute(E, Q, 12, exclude)
    np.testing.assert_array_equal(items, ref_i)
    np.testing.assert_allclose(scores, ref_s, atol=1e-5)


def test_k_larger_than_catalogue_pads(data):
    E, _ = data
    scores, items = ItemIndex(E[:20], IndexConfig(reduce_dim=4, rerank=3)).search(E[:2], 25, exclude=[[0, 1], None])
    assert (items[0, :18] >= 0).all() and (items[0, 18:] == -1).all() and np.isneginf(scores[0, 18:]).all()
    assert (items[1, :20] >= 0).all() and (items[1, 20:] == -1).all()
    assert sorted(items[1, :20]) == list(range(20))


@pytest.mark.parametrize("kind", KINDS)
def test_cold_start_add_is_projected_and_retrievable(data, kind):
    E, Q = data
    index = ItemIndex(E, covering(kind, 302, 5, ef_search=400))
    new = unit(np.random.default_rng(8).standard_normal((2, 24)))
    pos = index.add(new)
    np.testing.assert_array_equal(pos, [300, 301])
    assert index.n_items == 302
    scores, items = index.search(new, 1)
    np.testing.assert_array_equal(items[:, 0], pos)
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    np.testing.assert_allclose(index.reconstruct(pos), new, atol=1e-6)
    # the extended catalogue searches exactly like brute force over it
    ref_s, ref_i = brute(np.vstack([E, new]), Q, 5)
    s, i = index.search(Q, 5)
    np.testing.assert_array_equal(i, ref_i)
    np.testing.assert_allclose(s, ref_s, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(tmp_path, data, kind):
    E, Q = data
    cfg = IndexConfig(**variant(kind, 8), rerank=2, nlist=8, nprobe=3, ef_search=20)
    index = ItemIndex(E, cfg)
    index.add(unit(np.random.default_rng(9).standard_normal((3, 24))))
    path = index.save(tmp_path / "items.faiss")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left
    back = ItemIndex.load(path)
    assert back.config == cfg and back.n_items == 303 and back.dim == 24
    ex = [[1, 2]] * len(Q)
    for a, b in zip(index.search(Q, 7, exclude=ex), back.search(Q, 7, exclude=ex)):
        np.testing.assert_array_equal(a, b)
    added = back.add(unit(np.random.default_rng(10).standard_normal((1, 24))))
    # retrievable at once (among the top 3: 4-bit codes of an 8-d projection may rank a few look-alikes first)
    assert added[0] in back.search(back.reconstruct(added), 3)[1][0]


def test_load_rejects_a_sidecar_that_disagrees_on_reduction(tmp_path, data):
    E, _ = data
    side = tmp_path / "a.faiss.json"
    path = ItemIndex(E, IndexConfig(reduce_dim=8)).save(tmp_path / "a.faiss")
    meta = json.loads(side.read_text())
    meta["config"]["reduce_dim"] = None
    side.write_text(json.dumps(meta))
    with pytest.raises(IndexError_, match="re-ranked"):
        ItemIndex.load(path)
    path = ItemIndex(E).save(tmp_path / "a.faiss")
    meta = json.loads(side.read_text())
    meta["config"]["reduce_dim"] = 8
    side.write_text(json.dumps(meta))
    with pytest.raises(IndexError_, match="re-ranked"):
        ItemIndex.load(path)
    meta["config"].update(reduce_dim=None, kind="ivf", pq_m=8)  # a PQ sidecar over an exact index
    side.write_text(json.dumps(meta))
    with pytest.raises(IndexError_, match="re-ranked"):
        ItemIndex.load(path)


def test_low_rank_data_keeps_recall():
    # text-like: most energy in a few directions, so a small projection ranks almost exactly
    rng = np.random.default_rng(11)
    E = unit(rng.standard_normal((3000, 8)) @ rng.standard_normal((8, 64)) + 0.05 * rng.standard_normal((3000, 64)))
    Q = E[rng.integers(0, 3000, 200)]
    exact = ItemIndex(E).search(Q, 20)[1]
    for kind in KINDS:
        approx = ItemIndex(E, IndexConfig(**{**variant(kind, 12), "pq_m": 16} if kind == "ivf-pq" else variant(kind, 12), rerank=3, nprobe=16)).search(Q, 20)[1]
        recall = np.mean([np.intersect1d(a, b).size / 20 for a, b in zip(exact, approx)])
        assert recall >= 0.9, (kind, recall)


def test_config_errors(data):
    E, _ = data
    for bad in (0, -3, 2.5, "8"):
        with pytest.raises(IndexError_, match="reduce_dim"):
            IndexConfig(reduce_dim=bad)
    for bad in (0, 1.5):
        with pytest.raises(IndexError_, match="rerank"):
            IndexConfig(reduce_dim=8, rerank=bad)
    for r in (24, 25):
        with pytest.raises(IndexError_, match=r"reduce_dim=\d+ >= vector dimension 24"):
            ItemIndex(E, IndexConfig(reduce_dim=r))
    with pytest.raises(IndexError_, match="dimension"):
        ItemIndex(E, IndexConfig(reduce_dim=8)).search(np.ones((1, 8), np.float32) / np.sqrt(8), 3)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(IndexError_, match="pq_m"):
            IndexConfig(kind="ivf", pq_m=bad)
    for kind in ("flat", "hnsw"):
        with pytest.raises(IndexError_, match="kind='ivf'"):
            IndexConfig(kind=kind, pq_m=8)
    with pytest.raises(IndexError_, match="does not divide the searched dimension 24"):
        ItemIndex(E, IndexConfig(kind="ivf", pq_m=5))
    with pytest.raises(IndexError_, match="does not divide the searched dimension 8"):
        ItemIndex(E, IndexConfig(kind="ivf", reduce_dim=8, pq_m=3))


def test_blas_flat_search_restores_the_threshold():
    import faiss

    before = faiss.cvar.distance_compute_blas_threshold
    with blas_flat_search(5):
        assert faiss.cvar.distance_compute_blas_threshold == 5
    assert faiss.cvar.distance_compute_blas_threshold == before
