"""Bundle builder speed: users/s of ``BundleBuilder.build`` for N = 1,024 users per call at 10k and
100k items, against FAISS flat search alone (k = pool_size) in the same process.

    .venv/bin/python benchmarks/bench_builder.py [--sizes 10000 100000] [--repeats 5] [--threads 2]

Catalogues: Instacart products with their real MiniLM name embeddings (10k = the most ordered
products, baskets restricted to them; 100k = the real vectors tiled with jittered copies, see
_candidates_data.py). Complementarity: ``candidates.complementarity.fit`` on the real Instacart
orders (for 100k, copy t of item i uses the fitted model of i: top lists mapped into the same copy).
Users: profile = mean of 3 random item vectors; half the users also have a history vector; each
user has 0-5 bought items and 10 shown items; price cap 3x the median price.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from _candidates_data import instacart, name_embeddings, tiled, user_queries


class TiledComp:
    """A fitted model over n0 items lifted to n = copies x n0 items (copy t of item i behaves like i)."""

    def __init__(self, base, n: int):
        n0 = base.top_items.shape[0]
        self.base, self.n0 = base, n0
        src = np.arange(n) % n0
        tile = np.arange(n) // n0
        top = base.top_items[src].astype(np.int64)
        shifted = top + (tile * n0)[:, None]
        self.top_items = np.where((top >= 0) & (shifted < n), shifted, np.where(top >= 0, top, -1)).astype(np.int32)
        self.top_scores = base.top_scores[src]

    def score(self, i, j):
        return self.base.score(np.asarray(i) % self.n0, np.asarray(j) % self.n0)


def restrict(catalog, baskets, keep: np.ndarray):
    """Catalogue rows ``keep`` and the baskets re-indexed onto them (other items dropped)."""
    from dataclasses import replace

    from sim_data.baskets import Baskets

    lut = np.full(catalog.n_items, -1, np.int64)
    lut[keep] = np.arange(keep.size)
    items = lut[baskets.items]
    b_of = np.repeat(np.arange(len(baskets.indptr) - 1), np.diff(baskets.indptr))
    ok = items >= 0
    counts = np.bincount(b_of[ok], minlength=len(baskets.indptr) - 1)
    sub = replace(
        catalog,
        item_ids=catalog.item_ids[keep], titles=catalog.titles[keep], descriptions=catalog.descriptions[keep],
        category=catalog.category[keep], brand=catalog.brand[keep], price=catalog.price[keep],
        popularity=catalog.popularity[keep], embeddings=None if catalog.embeddings is None else catalog.embeddings[keep],
    )
    return sub, Baskets(np.concatenate([[0], np.cumsum(counts)]), items[ok], keep.size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--users", type=int, default=1024)
    args = ap.parse_args()
    from dataclasses import replace

    from candidates.builder import BuilderConfig, BundleBuilder
    from candidates.complementarity import fit
    from candidates.index import IndexConfig, ItemIndex

    catalog, baskets = instacart()
    E_all = name_embeddings(catalog)
    catalog = catalog.with_embeddings(E_all)
    order = np.lexsort((np.arange(catalog.n_items), -catalog.popularity))
    cfg = BuilderConfig()
    N = args.users
    for n in args.sizes:
        rng = np.random.default_rng(0)
        t = time.perf_counter()
        if n <= catalog.n_items:
            cat_n, bk = restrict(catalog, baskets, np.sort(order[:n]))
            comp = fit(cat_n, bk, cat_n.embeddings, np.random.default_rng(1))
        else:
            base = fit(catalog, baskets, E_all, np.random.default_rng(1))
            E, src = tiled(E_all, n, rng)
            cat_n = replace(
                catalog,
                item_ids=np.array([f"{catalog.item_ids[s]}#{k // catalog.n_items}" for k, s in enumerate(src)], dtype=object),
                titles=catalog.titles[src], descriptions=catalog.descriptions[src], category=catalog.category[src],
                brand=catalog.brand[src], price=catalog.price[src] * rng.uniform(0.5, 2.0, n).astype(np.float32),
                popularity=catalog.popularity[src], embeddings=E,
            )
            comp = TiledComp(base, n)
        fit_s = time.perf_counter() - t
        E = cat_n.embeddings
        prof = user_queries(E, N, np.random.default_rng(2))
        hist = user_queries(E, N, np.random.default_rng(3))
        hist[N // 2 :] = 0
        r = np.random.default_rng(4)
        bought = [r.integers(0, n, r.integers(0, 6)) for _ in range(N)]
        shown = [r.integers(0, n, 10) for _ in range(N)]
        cap = np.full(N, 3 * float(np.median(cat_n.price)))
        print(f"\n== {n} items (comp model ready in {fit_s:.0f}s), N={N}, threads={args.threads}, K={cfg.n_candidates}, K_max={cfg.max_bundle_size}", flush=True)
        flat = ItemIndex(E, IndexConfig(kind="flat", n_threads=args.threads))
        flat.search(prof[:64], cfg.pool_size)
        base_t = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            flat.search(prof, cfg.pool_size)
            base_t.append(time.perf_counter() - t)
        base_ups = N / statistics.median(base_t)
        print(f"baseline FAISS flat search alone (k={cfg.pool_size}): {base_ups:8.0f} queries/s", flush=True)
        for kind, kw in [("flat", {}), ("hnsw", dict(ef_search=64)), ("ivf", dict(nprobe=16))]:
            t = time.perf_counter()
            index = flat if kind == "flat" else ItemIndex(E, IndexConfig(kind=kind, n_threads=args.threads, **kw))
            builder = BundleBuilder(cat_n, index, comp, cfg)
            setup_s = time.perf_counter() - t
            builder.build(prof[:64], hist[:64], bought[:64], shown[:64], cap[:64])
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                cs = builder.build(prof, hist, bought=bought, shown=shown, price_cap=cap)
                times.append(time.perf_counter() - t)
            ups = N / statistics.median(times)
            sizes = np.bincount(cs.sizes[cs.mask], minlength=cfg.max_bundle_size + 1)[1:]
            print(
                f"builder over {kind:4s} {kw!s:20s} index+tables {setup_s:5.1f}s  {ups:8.0f} users/s  "
                f"x{ups / base_ups:4.2f} vs flat search alone  valid/user {cs.mask.sum(1).mean():.1f}  sizes 1..K_max {sizes.tolist()}", flush=True
            )


if __name__ == "__main__":
    main()
