"""Item index: queries/s (batch of 1,024) flat vs HNSW vs IVF at 10k and 100k items, and
recall@50 of the approximate kinds against exact search, on real MiniLM embeddings.

    .venv/bin/python benchmarks/bench_index.py [--sizes 10000 100000] [--repeats 5] [--threads 2]

Vectors: Instacart product names encoded with all-MiniLM-L6-v2 (10k = the most ordered
products; 100k = the 49,688 real vectors tiled with jittered copies, see _candidates_data.py).
Queries: 1,024 'user' vectors, each the normalised mean of 3 random item vectors. k = 50.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import numpy as np

from _candidates_data import instacart, name_embeddings, tiled, user_queries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--k", type=int, default=50)
    args = ap.parse_args()
    from candidates.index import IndexConfig, ItemIndex

    catalog, _ = instacart()
    E_all = name_embeddings(catalog)
    order = np.lexsort((np.arange(catalog.n_items), -catalog.popularity))
    rng = np.random.default_rng(0)
    # one build per kind; the query-time knob is varied on the built index
    kinds = [
        ("flat", {}, [{}]),
        ("hnsw", dict(hnsw_m=32, ef_construction=80), [dict(ef_search=32), dict(ef_search=64), dict(ef_search=128)]),
        ("ivf", {}, [dict(nprobe=4), dict(nprobe=8), dict(nprobe=16), dict(nprobe=32)]),
    ]
    for n in args.sizes:
        E = E_all[order[:n]] if n <= E_all.shape[0] else tiled(E_all, n, rng)[0]
        Q = user_queries(E, 1024, np.random.default_rng(1))
        print(f"\n== {n} items x {E.shape[1]} (queries: 1024, k={args.k}, threads={args.threads})")
        exact = None
        flat_qps = None
        for kind, build_kw, variants in kinds:
            cfg = IndexConfig(kind=kind, n_threads=args.threads, **build_kw)
            t = time.perf_counter()
            index = ItemIndex(E, cfg)
            build_s = time.perf_counter() - t
            for kw in variants:
                index.config = replace(cfg, **kw)
                index.search(Q[:64], args.k)  # warm-up
                times = []
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    _, items = index.search(Q, args.k)
                    times.append(time.perf_counter() - t)
                qps = 1024 / statistics.median(times)
                if kind == "flat":
                    exact, flat_qps = items, qps
                recall = np.mean([np.intersect1d(a, b).size / args.k for a, b in zip(exact, items)])
                extra = f"nlist={index._index.nlist} " if kind == "ivf" else ""
                print(
                    f"{kind:5s} {extra}{kw!s:20s} build {build_s:6.1f}s  {qps:8.0f} q/s  x{qps / flat_qps:5.2f} vs flat  recall@{args.k} {recall:.3f}",
                    flush=True,
                )

if __name__ == "__main__":
    main()
