"""ItemIndex: exact search, exclusion, cold start, persistence, approximate recall, errors."""

from __future__ import annotations

import os

import numpy as np
import pytest
from _search_ref import brute

from bundlerl.candidates.index import EXACT_UP_TO, SERIAL_BELOW, IndexConfig, IndexError_, ItemIndex


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return unit(rng, 600, 16), unit(rng, 40, 16)


def test_flat_equals_brute_force(data):
    E, Q = data
    scores, items = ItemIndex(E).search(Q, 10)
    ref_s, ref_i = brute(E, Q, 10)
    assert items.dtype == np.int64 and scores.dtype == np.float32 and items.shape == (40, 10)
    np.testing.assert_array_equal(items, ref_i)
    np.testing.assert_allclose(scores, ref_s, atol=1e-5)


def test_exclusion_never_returns_excluded_and_matches_brute_force(data):
    E, Q = data
    rng = np.random.default_rng(1)
    ref_top = brute(E, Q, 5)[1]
    # exclude each row's own true top-5 plus random items: the answer must be the next ones
    exclude = [np.concatenate([ref_top[r], rng.integers(0, 600, rng.integers(0, 30))]) for r in range(len(Q))]
    exclude[3] = None
    exclude[4] = np.array([], dtype=int)
    scores, items = ItemIndex(E).search(Q, 10, exclude=exclude)
    for r, ex in enumerate(exclude):
        if ex is not None:
            assert not np.isin(items[r], ex).any()
    ref_s, ref_i = brute(E, Q, 10, [e if e is not None else [] for e in exclude])
    np.testing.assert_array_equal(items, ref_i)


def test_k_larger_than_catalogue_pads():
    E = unit(np.random.default_rng(2), 5, 8)
    scores, items = ItemIndex(E).search(E[:2], 8, exclude=[[0], None])
    assert items.shape == (2, 8)
    assert (items[0, :4] >= 0).all() and (items[0, 4:] == -1).all() and np.isneginf(scores[0, 4:]).all()
    assert (items[1, :5] >= 0).all() and (items[1, 5:] == -1).all()
    assert 0 not in items[0]


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_cold_start_add_is_retrievable_at_once(data, kind):
    E, _ = data
    index = ItemIndex(E, IndexConfig(kind=kind, nlist=8, nprobe=8))
    new = unit(np.random.default_rng(3), 2, 16)
    pos = index.add(new)
    np.testing.assert_array_equal(pos, [600, 601])
    assert index.n_items == 602
    _, items = index.search(new, 1)
    np.testing.assert_array_equal(items[:, 0], pos)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_save_load_round_trip(tmp_path, data, kind):
    E, Q = data
    cfg = IndexConfig(kind=kind, nlist=8, nprobe=4, ef_search=40)
    index = ItemIndex(E, cfg)
    path = index.save(tmp_path / "items.faiss")
    assert (tmp_path / "items.faiss.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left
    back = ItemIndex.load(path)
    assert back.config == cfg and back.n_items == 600 and back.dim == 16
    for a, b in zip(index.search(Q, 7, exclude=[[1, 2]] * 40), back.search(Q, 7, exclude=[[1, 2]] * 40)):
        np.testing.assert_array_equal(a, b)


def test_load_missing_or_mismatched(tmp_path, data):
    with pytest.raises(IndexError_, match="missing"):
        ItemIndex.load(tmp_path / "nope.faiss")
    E, _ = data
    path = ItemIndex(E).save(tmp_path / "a.faiss")
    side = tmp_path / "a.faiss.json"
    side.write_text(side.read_text().replace('"n_items": 600', '"n_items": 601'))
    with pytest.raises(IndexError_, match="sidecar"):
        ItemIndex.load(path)


@pytest.mark.parametrize("kind,cfg", [("hnsw", dict(ef_search=64)), ("ivf", dict(nlist=32, nprobe=16))])
def test_approximate_recall_sanity(kind, cfg):
    rng = np.random.default_rng(4)
    # clustered data, like text embeddings
    centres = unit(rng, 40, 32)
    E = centres[rng.integers(0, 40, 4000)] + 0.35 * rng.standard_normal((4000, 32)).astype(np.float32)
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    Q = E[rng.integers(0, 4000, 200)]
    exact = ItemIndex(E).search(Q, 20)[1]
    approx = ItemIndex(E, IndexConfig(kind=kind, **cfg)).search(Q, 20)[1]
    recall = np.mean([len(np.intersect1d(a, b)) / 20 for a, b in zip(exact, approx)])
    assert recall >= 0.85, recall


def test_for_size_picks_exact_for_small_catalogues():
    assert IndexConfig.for_size(1000).kind == "flat"
    assert IndexConfig.for_size(10_000).kind == "flat"  # exact BLAS search beats HNSW at ef 96 here
    assert IndexConfig.for_size(EXACT_UP_TO).kind == "flat"
    assert IndexConfig.for_size(EXACT_UP_TO + 1).kind == "hnsw"
    assert IndexConfig.for_size(100_000).kind == "hnsw"
    assert IndexConfig.for_size(100_000, ef_search=128).ef_search == 128


@pytest.mark.parametrize("n_threads", [1, 3, None])
def test_threads_apply_inside_build_and_search_and_are_restored(data, n_threads):
    """IndexConfig.n_threads holds while faiss builds and searches a large batch (small batches run on one
    thread), and the process-wide OpenMP setting is the caller's again afterwards."""
    import faiss

    E, _ = data
    Q = unit(np.random.default_rng(1), SERIAL_BELOW + 1, E.shape[1])
    before = faiss.omp_get_max_threads()
    index = ItemIndex(E, IndexConfig(n_threads=n_threads))
    assert faiss.omp_get_max_threads() == before
    seen = []
    inner = index._index

    class Recording:  # a stand-in forwarding search, recording faiss's thread count at the call
        def search(self, *args):
            seen.append(faiss.omp_get_max_threads())
            return inner.search(*args)

        def __getattr__(self, name):
            return getattr(inner, name)

    index._index = Recording()
    index.search(Q, 3)
    index.search(Q[:2], 3)
    assert seen == [before if n_threads is None else n_threads, 1]
    assert faiss.omp_get_max_threads() == before


def test_errors(data):
    E, Q = data
    index = ItemIndex(E)
    with pytest.raises(IndexError_, match="dimension"):
        index.search(Q[:, :8], 3)
    bad = Q.copy()
    bad[2, 0] = np.nan
    with pytest.raises(IndexError_, match=r"queries\[2\].*NaN"):
        index.search(bad, 3)
    with pytest.raises(IndexError_, match="norm"):
        index.search(Q * 2, 3)
    with pytest.raises(IndexError_, match="k=0"):
        index.search(Q, 0)
    with pytest.raises(IndexError_, match="boolean mask"):
        index.search(Q, 3, exclude=np.zeros((40, 600), bool))
    with pytest.raises(IndexError_, match="rows for 40"):
        index.search(Q, 3, exclude=[[1]])
    with pytest.raises(IndexError_, match="outside"):
        index.search(Q, 3, exclude=[[600]] * 40)
    with pytest.raises(IndexError_, match="norm"):
        ItemIndex(E * 3)
    with pytest.raises(IndexError_, match="dimension"):
        index.add(np.ones((1, 4), np.float32) / 2)
    with pytest.raises(IndexError_, match="kind"):
        IndexConfig(kind="lsh")
    with pytest.raises(IndexError_, match="nprobe"):
        IndexConfig(nprobe=0)



def test_serial_numpy_blas_limits_numpy_blas_only_and_restores():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import faiss

    from bundlerl.utils.threads import _non_faiss_blas, serial_numpy_blas

    np.ones((2, 2)) @ np.ones((2, 2))  # numpy's BLAS is loaded
    limited = {lib.filepath for lib in _non_faiss_blas().lib_controllers}
    assert limited and not any("faiss" in p for p in limited)
    numpy_libs = os.path.realpath(os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs"))
    if os.path.isdir(numpy_libs):  # a wheel install: numpy's own OpenBLAS must be among them
        assert any(os.path.realpath(p).startswith(numpy_libs) for p in limited)

    def threads():
        return {d["filepath"]: d["num_threads"] for d in threadpoolctl.threadpool_info()}

    before = threads()
    omp = faiss.omp_get_max_threads()
    with serial_numpy_blas():
        inside = threads()
        assert faiss.omp_get_max_threads() == omp  # faiss's OpenMP untouched
    for path, n in inside.items():
        assert n == (1 if path in limited else before[path]), path
    assert threads() == before
