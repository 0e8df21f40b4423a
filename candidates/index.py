"""Nearest-neighbour item index over catalogue embeddings (FAISS, inner product).

Rows are unit-norm, so inner product = cosine. Three kinds:

- ``"flat"`` (default): exact search, ``faiss.IndexFlatIP`` (batches through BLAS). As fast as HNSW up to
  ~20k items (:data:`EXACT_UP_TO`, used by :meth:`IndexConfig.for_size`).
- ``"hnsw"``: ``faiss.IndexHNSWFlat`` with ``METRIC_INNER_PRODUCT``; approximate, no training.
- ``"ivf"``: ``faiss.IndexIVFFlat`` (inner product) with ``nlist`` k-means cells, ``nprobe``
  visited per query; approximate, needs training (done on the vectors given at construction).
  With ``IndexConfig.pq_m`` the cells hold 4-bit product-quantised codes scanned with SIMD look-up
  tables (``faiss.IndexIVFPQFastScan``, ~1/8 of the bytes per item at ``pq_m = d / 4``) and the
  candidates are re-ranked exactly, as below: the scan stays in cache where full vectors do not.

Reduced-dimension search (``IndexConfig.reduce_dim = r``): the chosen structure is built over
the uncentred PCA projection ``x @ W`` (``W`` = top-r eigenvectors of ``E^T E / n``, see
:func:`bundlerl.candidates.projection.pca_projection`), asked for ``rerank`` candidates per wanted neighbour, and those are
re-scored exactly with the full vectors. Returned scores are therefore exact inner products and
the order is by exact score; only *which* items reach the re-ranking is approximate. It is
faiss's ``IndexRefineFlat(IndexPreTransform(LinearTransform(W^T), structure))``: one faiss
object, so add, save/load and reconstruct work unchanged (the same refine step serves ``pq_m``). Not ``faiss.PCAMatrix``: it centres
the data, which changes inner-product rankings (an item-dependent ``-<Am, Ax>`` term) and
measured recall@50 0.902 vs 0.947 uncentred (10k MiniLM items, r=64, rerank 3).

Exclusion (items a user already bought) is given as a **sequence of N int arrays** (one
ragged list of catalogue positions per query row; ``None`` or an empty array for none), or as
one (N, L) int array padded with -1. It
is applied by over-fetching ``k + max_excluded`` neighbours and filtering with one
vectorised sorted-key lookup (:class:`bundlerl.candidates.ragged.RaggedSet`), so no per-query Python loop.

Also here, as the other inner products against an item table: :func:`check_vectors` (the unit-row check of
every vector input) and :func:`inner_products_by_index` (fused gather + dot, the builder's and the env's exact
relevance features). The configuration is ``bundlerl.candidates.index_config``, the files ``bundlerl.candidates.index_file``.

``import bundlerl.candidates.index`` does not import faiss; faiss loads when an index is built.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path
from typing import Sequence

import numpy as np

from bundlerl.candidates.index_config import EXACT_UP_TO, IndexConfig, IndexError_
from bundlerl.candidates.index_file import read_index_files, write_index_files
from bundlerl.candidates.projection import pca_projection
from bundlerl.candidates.ragged import RaggedSet, RaggedSetError
from bundlerl.utils.args import need_instance
from bundlerl.utils.threads import faiss_threads

__all__ = [  # IndexConfig, IndexError_, EXACT_UP_TO live in index_config; importable from here as before
    "IndexConfig",
    "ItemIndex",
    "IndexError_",
    "UNIT_TOL",
    "SERIAL_BELOW",
    "blas_flat_search",
    "EXACT_UP_TO",
    "BLAS_FLAT_ABOVE",
    "check_vectors",
    "inner_products_by_index",
]

#: Largest tolerated deviation of a row's L2 norm from 1.
UNIT_TOL = 1e-3

#: Query batches up to this many rows are searched on one OpenMP thread (see :func:`faiss_threads`).
SERIAL_BELOW = 256


#: Query batches larger than this use faiss's BLAS path for exhaustive (flat) search; see :class:`blas_flat_search`.
BLAS_FLAT_ABOVE = 20


class blas_flat_search:
    """Context: faiss's exhaustive search uses BLAS (GEMM + heap) for batches of more than
    ``above`` queries, restored on exit. faiss 1.15's default threshold (128,000 queries) keeps
    batches of 1,024 on its one-pair-at-a-time SIMD loop, which is as fast as BLAS at d=384 for
    ~500-1,000 queries but 3.3x slower at d=64 (10k MiniLM items, one thread: 120 vs 36 ms for k=24)
    and 4.7x slower at d=384 for the env's typical 140-query batches (5k items: 45 vs 9.6 ms).
    """

    def __init__(self, above: int = BLAS_FLAT_ABOVE):
        self.above, self.prev = int(above), None

    def __enter__(self):
        import faiss

        self.prev = faiss.cvar.distance_compute_blas_threshold
        faiss.cvar.distance_compute_blas_threshold = self.above
        return self

    def __exit__(self, *exc):
        import faiss

        faiss.cvar.distance_compute_blas_threshold = self.prev
        return False


def check_vectors(x: np.ndarray, dim: int | None, name: str, allow_zero: bool = False) -> np.ndarray:
    """Return ``x`` as C-contiguous float32 (m, dim) after checking shape, finiteness and unit norm.

    Raises :class:`IndexError_` naming the first bad row. ``allow_zero`` accepts all-zero rows too.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise IndexError_(f"{name} has shape {x.shape}; expected a 2-D (rows, dim) array")
    if dim is not None and x.shape[1] != dim:
        raise IndexError_(f"{name} has dimension {x.shape[1]} but the index has {dim}; encode with the same model")
    x = np.ascontiguousarray(x, dtype=np.float32)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        raise IndexError_(f"{name}[{int(np.flatnonzero(~finite)[0])}] contains NaN or inf; fix the input vectors")
    norms = np.linalg.norm(x, axis=1)
    bad = np.abs(norms - 1) > UNIT_TOL
    if allow_zero:
        bad &= norms > 0
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise IndexError_(
            f"{name}[{i}] has L2 norm {norms[i]:.4f}; rows must be unit-norm (divide by np.linalg.norm(x, axis=1))"
        )
    return x


def inner_products_by_index(x: np.ndarray, table: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """(N, L) float32: ``out[u, l] = <x[u], table[ids[u, l]]>``, 0 where ``ids`` is -1.

    Fused gather + dot (``faiss.fvec_inner_products_by_idx``): it never materialises the
    (N, L, d) gathered block, which is what made this step memory-bound in numpy.
    """
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    table = np.ascontiguousarray(table, dtype=np.float32)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    out = np.empty(ids.shape, dtype=np.float32)
    if out.size:
        # always one thread: the gathers are memory-bound, and two OpenMP threads were no faster at any size
        # (builder, 1,024 users: x0.91-0.99) but slower in the env (x0.85) and ~3x slower when the other core is busy
        with faiss_threads(1):
            faiss.fvec_inner_products_by_idx(
                faiss.swig_ptr(out), faiss.swig_ptr(x), faiss.swig_ptr(table), faiss.swig_ptr(ids), table.shape[1], x.shape[0], ids.shape[1]
            )
    out[ids < 0] = 0.0
    return out


class ItemIndex:
    """FAISS inner-product index over unit item vectors; positions = catalogue row positions.

    :param vectors: (n, d) float32 unit-norm rows (``catalog.embeddings``).
    :param config: how to build and search; defaults to exact search.
    Raises :class:`IndexError_` on a bad shape, NaN/inf or non-unit rows.
    """

    def __init__(self, vectors: np.ndarray, config: IndexConfig | None = None) -> None:
        need_instance(config, "config", "ItemIndex", IndexConfig, "an IndexConfig", optional=True, error=IndexError_)
        self.config = config or IndexConfig()
        vectors = check_vectors(vectors, None, "vectors")
        if vectors.shape[0] == 0:
            raise IndexError_("vectors is empty; an index needs at least one item")
        self.dim = int(vectors.shape[1])
        r = self.config.reduce_dim
        if r is not None and r >= self.dim:
            raise IndexError_(
                f"IndexConfig.reduce_dim={r} >= vector dimension {self.dim}; use a smaller value or None for no reduction"
            )
        d_search = self.dim if r is None else int(r)
        if self.config.pq_m is not None and d_search % self.config.pq_m:
            raise IndexError_(
                f"IndexConfig.pq_m={self.config.pq_m} does not divide the searched dimension {d_search}; "
                f"use a divisor such as {d_search // 4 if d_search % 4 == 0 else 1}"
            )
        with self._threads():
            self._index = self._build(vectors)
        self._structure = self._find_structure(self._index)

    # ------------------------------------------------------------------ construction
    def _threads(self) -> faiss_threads:
        """Context: faiss's OpenMP threads = ``IndexConfig.n_threads`` (None = faiss's default), restored after."""
        return faiss_threads(self.config.n_threads)

    def _build(self, vectors: np.ndarray):
        import faiss

        cfg, n = self.config, vectors.shape[0]
        d = self.dim if cfg.reduce_dim is None else int(cfg.reduce_dim)
        # the inner C++ objects of a chain (quantizer, projection, wrapped index) are owned by their Python
        # wrappers: keep those alive as long as the outer index
        keep = []
        self._keep = keep
        if cfg.kind == "flat":
            index = faiss.IndexFlatIP(d)
        elif cfg.kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = cfg.ef_construction
        else:
            nlist = cfg.nlist or int(np.clip(round(4 * np.sqrt(n)), 1, max(1, n // 39)))
            if nlist > n:
                raise IndexError_(f"IndexConfig.nlist={nlist} > {n} items; lower nlist or use kind='flat'")
            quantizer = faiss.IndexFlatIP(d)
            if cfg.pq_m is None:
                index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            else:
                index = faiss.IndexIVFPQFastScan(quantizer, d, nlist, int(cfg.pq_m), 4, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = cfg.train_seed
            keep.append(quantizer)
        if cfg.reduce_dim is not None:
            proj = faiss.LinearTransform(self.dim, d, False)
            # LinearTransform computes A @ x with A (d_out, d_in) row-major, i.e. x @ W
            faiss.copy_array_to_vector(np.ascontiguousarray(pca_projection(vectors, d, center=False).T).ravel(), proj.A)
            proj.is_trained = True
            pre = faiss.IndexPreTransform(proj, index)
            keep += [proj, index]
            index = pre
        if cfg.refined:
            keep.append(index)
            index = faiss.IndexRefineFlat(index)  # stores the full vectors; scores candidates exactly
            index.k_factor = float(cfg.rerank)
        if not index.is_trained:
            index.train(vectors)  # IVF k-means (on projected vectors when reduced)
        index.add(vectors)
        return index

    @staticmethod
    def _find_structure(index):
        """The flat / HNSW / IVF index that the search parameters apply to (inside a refine chain)."""
        import faiss

        index = faiss.downcast_index(index)
        if isinstance(index, faiss.IndexRefine):
            index = faiss.downcast_index(index.base_index)
        if isinstance(index, faiss.IndexPreTransform):
            index = faiss.downcast_index(index.index)
        return index

    def _apply_search_params(self, k: int) -> None:
        """Set query-time knobs for a search of ``k`` results (HNSW needs efSearch >= what it returns)."""
        cfg = self.config
        if cfg.refined:
            self._index.k_factor = float(cfg.rerank)  # config may be replaced between searches (benchmarks)
            k = k * int(cfg.rerank)
        if cfg.kind == "hnsw":
            self._structure.hnsw.efSearch = max(cfg.ef_search, k)
        elif cfg.kind == "ivf":
            self._structure.nprobe = min(cfg.nprobe, self._structure.nlist)

    @property
    def n_items(self) -> int:
        """Number of indexed items (catalogue rows plus any added later)."""
        return int(self._index.ntotal)

    def __len__(self) -> int:
        return self.n_items

    def __repr__(self) -> str:
        cfg = self.config
        red = "" if cfg.reduce_dim is None else f", reduce_dim={cfg.reduce_dim}"
        red += "" if cfg.pq_m is None else f", pq_m={cfg.pq_m}"
        red += f", rerank={cfg.rerank}" if cfg.refined else ""
        return f"ItemIndex(kind={self.config.kind!r}, n_items={self.n_items}, dim={self.dim}{red})"

    # ------------------------------------------------------------------ queries
    def search(
        self, queries: np.ndarray, k: int, exclude: "Sequence[np.ndarray | None] | RaggedSet | None" = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items by inner product for each query row, best first.

        :param queries: (N, d) float32 unit-norm rows.
        :param k: neighbours per query, >= 1 (may exceed the item count: the tail is padded).
        :param exclude: None, or a sequence of N int arrays: catalogue positions never returned
            for that row (e.g. items already bought), or an (N, L) int array padded with -1; or a
            :class:`~bundlerl.candidates.ragged.RaggedSet` of N rows built from one.
        :returns: ``(scores (N, k) float32, items (N, k) int64)``; where fewer than k items
            qualify, items are -1 and scores -inf.
        Raises :class:`IndexError_` on wrong dim, NaN/inf, non-unit rows, k < 1 or a bad exclude.
        """
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise IndexError_(f"k={k!r}; ask for at least one neighbour")
        queries = check_vectors(queries, self.dim, "queries")
        N = queries.shape[0]
        if isinstance(exclude, RaggedSet):  # already built by the caller (the bundle builder): reuse it
            if exclude.n_rows != N or exclude.n_items != self.n_items:
                raise IndexError_(
                    f"exclude is a RaggedSet over {exclude.n_rows} rows x {exclude.n_items} items; "
                    f"expected {N} rows x {self.n_items} items"
                )
            ex = exclude
        else:
            try:
                ex = RaggedSet(exclude, N, self.n_items) if exclude is not None else None
            except RaggedSetError as err:
                raise IndexError_(str(err)) from None
        k_fetch = min(int(k) + (ex.max_len if ex is not None else 0), self.n_items)
        if N == 0:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        self._apply_search_params(k_fetch)
        # exhaustive search through BLAS only for batches: a single query is ~3x slower that way (0.55 vs 1.6 ms, 5k items)
        blas = self.config.kind == "flat" and N > BLAS_FLAT_ABOVE
        with faiss_threads(1 if N <= SERIAL_BELOW else self.config.n_threads), blas_flat_search() if blas else nullcontext():
            scores, items = self._index.search(queries, k_fetch)
        keep = items >= 0
        if ex is not None:
            keep &= ~ex.contains(items)
        # compact kept entries to the front of each row, preserving order (stable sort on ~keep)
        order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
        items = np.take_along_axis(items, order, axis=1)
        scores = np.take_along_axis(scores, order, axis=1)
        valid = np.take_along_axis(keep, order, axis=1)
        items = np.where(valid, items, -1).astype(np.int64)
        scores = np.where(valid, scores, -np.inf).astype(np.float32)
        if items.shape[1] < k:  # catalogue smaller than k
            pad = k - items.shape[1]
            items = np.pad(items, ((0, 0), (0, pad)), constant_values=-1)
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        return scores, items

    def add(self, vectors: np.ndarray) -> np.ndarray:
        """Append items (cold start: a new item encoded from its text); retrievable at once.

        :param vectors: (m, d) float32 unit-norm rows.
        :returns: (m,) int64 their positions (``n_items`` before the call, onwards). Append the
            same items to the catalogue in the same order so positions stay catalogue rows.
        """
        vectors = check_vectors(vectors, self.dim, "vectors")
        start = self.n_items
        with self._threads():
            self._index.add(vectors)
        return np.arange(start, start + vectors.shape[0], dtype=np.int64)

    def reconstruct(self, positions: np.ndarray) -> np.ndarray:
        """(m, d) float32 stored vectors of the given positions (flat and HNSW; IVF only with reduce_dim or pq_m)."""
        positions = np.asarray(positions, dtype=np.int64).reshape(-1)
        if self.config.kind == "ivf" and not self.config.refined:
            raise IndexError_("reconstruct is not available for kind='ivf'; keep catalog.embeddings instead")
        return np.stack([self._index.reconstruct(int(i)) for i in positions]) if positions.size else np.zeros((0, self.dim), np.float32)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write the faiss index to ``path`` and a sidecar ``path + '.json'`` (config, dim, n, the index file's
        SHA-256), each atomically (:func:`bundlerl.candidates.index_file.write_index_files`)."""
        return write_index_files(self._index, self.config, self.dim, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ItemIndex":
        """Read an index written by :meth:`save`. Raises :class:`IndexError_` naming the file and the fix when
        either file is missing, damaged (truncated, bit-flipped: checked against the sidecar's checksum before
        faiss reads it) or unreadable, or the two disagree (:func:`bundlerl.candidates.index_file.read_index_files`)."""
        self = cls.__new__(cls)
        self._index, self.config, self.dim = read_index_files(path)  # the concrete faiss class, owning its parts
        self._structure = self._find_structure(self._index)
        return self
