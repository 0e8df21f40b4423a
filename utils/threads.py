"""Scoped thread limits for numpy's BLAS, faiss's OpenMP and torch's intra-op pool.

Library code never changes a process-wide thread setting for good: each context manager here restores the
previous value on exit. Setting torch's global thread count for a whole process is the command line's job
(``bundlerl.scripts``).
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from functools import lru_cache
from typing import Iterator

__all__ = ["faiss_threads", "serial_numpy_blas", "torch_threads"]


class faiss_threads:
    """Context: faiss's OpenMP thread count set to ``n`` (None = leave it) and restored on exit.

    Small batches run on one thread: a parallel region over a few dozen queries costs more in
    fork/barrier than it saves, and on a shared machine a descheduled worker stalls the whole
    region (measured: 64-query calls 5-20x slower with 2 threads while another process held a core).
    """

    def __init__(self, n: int | None):
        self.n, self.prev = n, None

    def __enter__(self):
        if self.n is not None:
            import faiss

            self.prev = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(int(self.n))
        return self

    def __exit__(self, *exc):
        if self.prev is not None:
            import faiss

            faiss.omp_set_num_threads(self.prev)
        return False


@lru_cache(maxsize=1)
def _non_faiss_blas():
    """threadpoolctl controller of the BLAS libraries loaded at the first call, except those shipped inside
    faiss (by path); None without threadpoolctl or when there are none. numpy's BLAS is always among them
    (numpy is imported by then); a BLAS loaded later (scipy's own OpenBLAS, say) is not, which is fine for
    the numpy-only work this serves (hot paths, and numpy's LAPACK in PCA fits). Cached: finding the libraries costs ~1.6 ms."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # optional: only a speed matter
        return None
    ctl = ThreadpoolController()
    paths = [lib.filepath for lib in ctl.lib_controllers if lib.user_api == "blas" and "faiss" not in lib.filepath]
    return ctl.select(filepath=paths) if paths else None


def serial_numpy_blas():
    """Context: numpy's BLAS runs on one thread inside; faiss's own BLAS and OpenMP are untouched.

    Why: OpenBLAS's pthreads workers busy-wait for a long while (~0.1 s) after every multi-threaded
    call, so a numpy matmul just before a faiss search leaves a core spinning through the search.
    On the 2-core VM that made the builder's searches ~1.6x slower than alone (BENCHMARKS.md, "Bundle
    builder"); the numpy products in the builder and the env step are small enough for one thread.
    Limiting faiss's OpenBLAS too would reset faiss's OpenMP threads to one, hence "except faiss's".
    Entering and leaving costs ~25 us. A no-op without threadpoolctl.
    """
    ctl = _non_faiss_blas()
    return nullcontext() if ctl is None else ctl.limit(limits=1)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Context: torch's intra-op thread count set to ``max(1, n)`` (None = leave it), restored on exit.

    Code inside may change the count again (a fit that runs some steps on one thread); the value from before
    the ``with`` is restored all the same.
    """
    import torch

    prev = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(prev)
