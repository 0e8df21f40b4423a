"""How to build and query an item index (:class:`IndexConfig`) and the index's error class.

The measurements behind the defaults are in the field docstrings; the index itself is
``bundlerl.candidates.index.ItemIndex``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bundlerl.utils.args import need_int
from bundlerl.utils.config_io import check_field_types
from bundlerl.utils.errors import BundlerlError

__all__ = ["IndexConfig", "IndexError_", "EXACT_UP_TO"]

_KINDS = ("flat", "hnsw", "ivf")

#: :meth:`IndexConfig.for_size` searches catalogues up to this many items exactly.
EXACT_UP_TO = 20_000


class IndexError_(BundlerlError):
    """Bad index configuration, input vectors or file; the message says what and how to fix it."""


@dataclass(frozen=True)
class IndexConfig:
    """How to build and query an :class:`~bundlerl.candidates.index.ItemIndex`."""

    kind: str = "flat"
    """"flat" (exact inner product), "hnsw" (graph, approximate) or "ivf" (inverted lists, approximate)."""
    hnsw_m: int = 32
    """HNSW: neighbours per node (memory and recall grow with it). >= 4."""
    ef_construction: int = 80
    """HNSW: candidate list size while building (build time and recall grow with it). >= hnsw_m."""
    ef_search: int = 96
    """HNSW: candidate list size at query time; raised to k automatically when k is larger. >= 1."""
    nlist: int | None = None
    """IVF: number of k-means cells; None = 4*sqrt(n) clipped to [1, n // 39] (faiss wants >= 39 points per cell)."""
    nprobe: int = 16
    """IVF: cells visited per query (recall and time grow with it). >= 1."""
    n_threads: int | None = None
    """OpenMP threads for faiss (``faiss.omp_set_num_threads`` before build and search); None = faiss default."""
    train_seed: int = 1234
    """IVF: seed of faiss k-means, so that the same vectors give the same index."""
    reduce_dim: int | None = None
    """None = search the full vectors. r >= 1: build ``kind`` over the uncentred PCA projection to
    r dims and re-rank its candidates exactly with the full vectors (module docstring). Must be
    smaller than the vector dimension (checked when the index is built: r >= d is an error, not a
    silent "no reduction", so a config never means something other than it says).
    Measured on MiniLM vectors, 1,024 queries, k=50, one thread (bench_index.py): flat with
    r=96, rerank=2 is 1.65x exact flat at 10k items (recall@50 0.970); flat r=128, rerank=2
    2.1x at 49,688 (0.964); at 100k, ivf r=128, nprobe=64, rerank=3 3.8x (0.935). Memory: the
    full vectors are kept (for re-ranking) next to the reduced structure."""
    rerank: int = 3
    """With ``reduce_dim`` or ``pq_m``: candidates fetched from the approximate structure per neighbour wanted
    (``k_fetch * rerank``), then re-scored exactly; recall and time grow with it. >= 1."""
    pq_m: int | None = None
    """IVF only. None = the cells hold full float32 vectors. m >= 1: they hold 4-bit product-quantiser codes
    of m sub-vectors (``faiss.IndexIVFPQFastScan``; m must divide the searched dimension, i.e. ``reduce_dim`` or
    the vector dimension), and ``rerank`` candidates per neighbour wanted are re-scored exactly with the full
    vectors, which are kept as well. Measured in the bundle builder (BENCHMARKS.md, "Bundle builder"; 1,024
    users per call, 2 cores): m = 96, nprobe 16, rerank 3 gave 11.3k users/s at 10k MiniLM items against 8.8k
    over IVF-flat nprobe 16 at the same overlap with the exact builder (0.90), and 7.3k against 5.2k at 100k.
    Caveat: 16 centroids per sub-vector is coarse. On 384-d MiniLM vectors recall holds (recall@50 0.93 at 10k,
    m = 192, nprobe 32, rerank 2), but on dense low-dimensional data it can collapse: 20.5k synthetic 16-d
    vectors, recall@10 0.12-0.59 at m = 8, nprobe 64, rerank 2, where HNSW and IVF-flat reach 0.98-1.0. That is
    why :meth:`for_size` does not pick it: measure recall on your own vectors (``benchmarks/bench_index.py``)."""

    def __post_init__(self) -> None:
        check_field_types(self, IndexError_)  # None / a wrong type named, before the range checks
        if self.kind not in _KINDS:
            raise IndexError_(f"IndexConfig.kind={self.kind!r}; choose one of {_KINDS}")
        if self.hnsw_m < 4:
            raise IndexError_(f"IndexConfig.hnsw_m={self.hnsw_m}; use >= 4 (32 is a good default)")
        if self.ef_construction < self.hnsw_m:
            raise IndexError_(f"IndexConfig.ef_construction={self.ef_construction} < hnsw_m={self.hnsw_m}; raise it")
        if self.ef_search < 1:
            raise IndexError_(f"IndexConfig.ef_search={self.ef_search}; use >= 1")
        if self.nlist is not None and self.nlist < 1:
            raise IndexError_(f"IndexConfig.nlist={self.nlist}; use >= 1 or None for automatic")
        if self.nprobe < 1:
            raise IndexError_(f"IndexConfig.nprobe={self.nprobe}; use >= 1")
        if self.n_threads is not None and self.n_threads < 1:
            raise IndexError_(f"IndexConfig.n_threads={self.n_threads}; use >= 1 or None")
        if self.reduce_dim is not None and (not isinstance(self.reduce_dim, (int, np.integer)) or self.reduce_dim < 1):
            raise IndexError_(
                f"IndexConfig.reduce_dim={self.reduce_dim!r}; use an int >= 1 (below the vector dimension) or None for full vectors"
            )
        if not isinstance(self.rerank, (int, np.integer)) or self.rerank < 1:
            raise IndexError_(f"IndexConfig.rerank={self.rerank!r}; use an int >= 1 (3 is a good default)")
        if self.pq_m is not None:
            if self.kind != "ivf":
                raise IndexError_(f"IndexConfig.pq_m={self.pq_m!r} needs kind='ivf' (got {self.kind!r}); drop pq_m or use kind='ivf'")
            if not isinstance(self.pq_m, (int, np.integer)) or isinstance(self.pq_m, bool) or self.pq_m < 1:
                raise IndexError_(f"IndexConfig.pq_m={self.pq_m!r}; use an int >= 1 that divides the dimension, or None")

    @property
    def refined(self) -> bool:
        """True when an approximate structure's candidates are re-scored exactly (``reduce_dim`` or ``pq_m``)."""
        return self.reduce_dim is not None or self.pq_m is not None

    @classmethod
    def for_size(cls, n_items: int, **overrides) -> "IndexConfig":
        """Default kind for a catalogue of ``n_items``: exact up to :data:`EXACT_UP_TO` items, HNSW above.

        Measured on MiniLM vectors, 1,024-query batches, 2 threads (BENCHMARKS.md, "Item index"): exact
        search through BLAS runs 17k queries/s at 10k items, faster than HNSW at the default
        ``ef_search`` = 96 (18.8k at ef 64, 10.0k at ef 128); at 20k about as fast (9.3k against 12.0k
        at ef 64 and 7.0k at ef 128); at 30k HNSW ef 96 is ~1.6x faster (5.1k against 10.3k / 6.3k), and
        x3.6-8 at 100k.
        """
        need_int(n_items, "n_items", "IndexConfig.for_size", minimum=1, error=IndexError_)
        kind = "flat" if n_items <= EXACT_UP_TO else "hnsw"
        return cls(**{"kind": kind, **overrides})
