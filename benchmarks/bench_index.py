"""Item index: queries/s (batch of 1,024) flat vs HNSW vs IVF at 10k and 100k items, with and
without reduced-dimension search (``IndexConfig.reduce_dim`` + exact re-ranking) and IVF with 4-bit
PQ codes (``IndexConfig.pq_m`` + exact re-ranking), and recall@k of each against exact search, on
real MiniLM embeddings.

    .venv/bin/python benchmarks/bench_index.py [--sizes 10000 100000] [--repeats 5] [--threads 2]
        [--k 50] [--reduce 32 64 96] [--rerank 2 3 4] [--pq 96 192] [--no-full]

Vectors: Instacart product names encoded with all-MiniLM-L6-v2 (10k = the most ordered
products; 100k = the 49,688 real vectors tiled with jittered copies, see _candidates_data.py).
Queries: 1,024 'user' vectors, each the normalised mean of 3 random item vectors. k = 50.
Each line: build time, median of ``--repeats`` timed searches of all 1,024 queries, the ratio
to exact flat search timed in the same process (re-timed at the end of each size, so load
drift on a shared machine shows), and recall@k against exact search.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace

import numpy as np
from _candidates_data import instacart, name_embeddings, tiled, user_queries


def variants(reduce_dims: list[int], reranks: list[int], full: bool, pq_ms: list[int] = ()) -> list[tuple[str, dict, list[dict]]]:
    """(kind, build kwargs, query-time variants): one build per entry, knobs varied on it."""
    out = [("flat", {}, [{}])]
    if full:
        out += [
            ("hnsw", dict(hnsw_m=32, ef_construction=80), [dict(ef_search=32), dict(ef_search=64), dict(ef_search=128)]),
            ("ivf", {}, [dict(nprobe=4), dict(nprobe=8), dict(nprobe=16), dict(nprobe=32)]),
        ]
    for m in pq_ms:
        out.append(("ivf", dict(pq_m=m), [dict(nprobe=p, rerank=rr) for p in (8, 16, 32) for rr in reranks]))
    for r in reduce_dims:
        red = [dict(rerank=rr) for rr in reranks]
        out += [
            ("flat", dict(reduce_dim=r), red),
            # ef_search=1: efSearch is then k_fetch * rerank, the least that returns enough candidates
            ("hnsw", dict(reduce_dim=r, hnsw_m=32, ef_construction=80, ef_search=1), red),
            ("ivf", dict(reduce_dim=r), [dict(nprobe=p, **v) for p in (16, 32, 64) for v in red]),
        ]
    return out


def time_search(index, Q, k: int, repeats: int) -> tuple[float, np.ndarray]:
    """(median seconds for one search of all Q, the items of the last search)."""
    index.search(Q[:64], k)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        _, items = index.search(Q, k)
        times.append(time.perf_counter() - t)
    return statistics.median(times), items


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--reduce", type=int, nargs="*", default=[32, 64, 96], help="reduce_dim values (none: skip)")
    ap.add_argument("--rerank", type=int, nargs="+", default=[2, 3, 4])
    ap.add_argument("--pq", type=int, nargs="*", default=[96, 192], help="IVF pq_m values (none: skip)")
    ap.add_argument("--no-full", action="store_true", help="skip the full-dimension HNSW/IVF rows")
    ap.add_argument("--kinds", nargs="+", default=["flat", "hnsw", "ivf"], help="structures for the reduce_dim rows")
    args = ap.parse_args()
    from bundlerl.candidates.index import IndexConfig, ItemIndex

    catalog, _ = instacart()
    E_all = name_embeddings(catalog)
    order = np.lexsort((np.arange(catalog.n_items), -catalog.popularity))
    rng = np.random.default_rng(0)
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    for n in args.sizes:
        E = E_all[order[:n]] if n <= E_all.shape[0] else tiled(E_all, n, rng)[0]
        Q = user_queries(E, 1024, np.random.default_rng(1))
        print(f"\n== {n} items x {E.shape[1]} (queries: 1024, k={args.k}, threads={args.threads})")
        exact = flat_qps = flat_index = None
        for kind, build_kw, knobs in variants(args.reduce, args.rerank, not args.no_full, args.pq):
            if "reduce_dim" in build_kw and kind not in args.kinds:
                continue
            cfg = IndexConfig(kind=kind, n_threads=args.threads, **build_kw)
            t = time.perf_counter()
            index = ItemIndex(E, cfg)
            build_s = time.perf_counter() - t
            for kw in knobs:
                index.config = replace(cfg, **kw)
                sec, items = time_search(index, Q, args.k, args.repeats)
                qps = 1024 / sec
                if exact is None:
                    exact, flat_qps, flat_index = items, qps, index
                recall = np.mean([np.intersect1d(a, b).size / args.k for a, b in zip(exact, items)])
                name = kind + (f" r={cfg.reduce_dim}" if cfg.reduce_dim else "") + (f" pq={cfg.pq_m}" if cfg.pq_m else "")
                extra = f"nlist={index._structure.nlist} " if kind == "ivf" else ""
                print(
                    f"{name:10s} {extra}{kw!s:28s} build {build_s:6.1f}s  {sec * 1e3:7.1f} ms {qps:8.0f} q/s  "
                    f"x{qps / flat_qps:5.2f} vs flat  recall@{args.k} {recall:.3f}",
                    flush=True,
                )
        sec, _ = time_search(flat_index, Q, args.k, args.repeats)
        print(f"flat re-timed at the end: {sec * 1e3:.1f} ms ({1024 / sec:.0f} q/s); load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
