"""Bundle builder speed: users/s of ``BundleBuilder.build`` for N = 1,024 users per call (and in
calls of 64 users, the env's small-batch case) at 10k and 100k items, against FAISS flat search
alone (k = pool_size) in the same process; and the quality cost of approximate retrieval as the
overlap of candidate items / bundles with the exact (flat-index) builder's.

    .venv/bin/python benchmarks/bench_builder.py [--sizes 10000 100000] [--repeats 7] [--threads 2]

Catalogues: Instacart products with their real MiniLM name embeddings (10k = the most ordered
products, baskets restricted to them; 100k = the real vectors tiled with jittered copies, see
_candidates_data.py). Complementarity: ``bundlerl.candidates.complementarity.fit`` on the real Instacart
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

#: Indexes the builder is timed over: exact flat first (the reference), then approximate ones; ``reduce_dim``
#: variants search a PCA projection and ``pq_m`` ones 4-bit PQ codes, both re-ranked exactly (bundlerl.candidates.index).
VARIANTS = [
    ("flat", {}),
    ("hnsw", dict(ef_search=32)),
    ("hnsw", dict(ef_search=64)),
    ("ivf", dict(nprobe=16)),
    ("ivf", dict(nprobe=16, pq_m=96, rerank=3)),
    ("ivf", dict(nprobe=32, pq_m=96, rerank=3)),
    ("ivf", dict(nprobe=16, pq_m=192, rerank=2)),
    ("flat", dict(reduce_dim=96, rerank=2)),
]


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

    from bundlerl.sim_data.baskets import Baskets

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


def _timed(fn, repeats: int) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _bundle_items(cs) -> list[set]:
    """Per user: the set of items in its valid candidate bundles."""
    return [set(row[row >= 0].tolist()) for row in np.where(cs.mask[..., None], cs.items, -1).reshape(cs.items.shape[0], -1)]


def quality(cs, ref) -> tuple[float, float, float]:
    """(item overlap, bundle overlap, relevance ratio) of ``cs`` against the exact builder's ``ref``:
    mean over users of |items in cs bundles & items in ref bundles| / |items in ref bundles|;
    the same for whole bundles (item sets); mean rel_profile of valid bundles, cs / ref."""
    from bundlerl.candidates.features import COL

    a, b = _bundle_items(cs), _bundle_items(ref)
    item_ov = float(np.mean([len(x & y) / max(len(y), 1) for x, y in zip(a, b)]))

    def bundles(c):
        return [
            {tuple(sorted(c.items[u, k, : c.sizes[u, k]].tolist())) for k in np.flatnonzero(c.mask[u])}
            for u in range(c.items.shape[0])
        ]

    bundle_ov = float(np.mean([len(x & y) / max(len(y), 1) for x, y in zip(bundles(cs), bundles(ref))]))
    f = COL.rel_profile
    rel = float(cs.features[..., f][cs.mask].mean() / ref.features[..., f][ref.mask].mean())
    return item_ov, bundle_ov, rel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--users", type=int, default=1024)
    ap.add_argument("--small", type=int, default=64, help="rows per call for the small-batch figure")
    args = ap.parse_args()
    from dataclasses import replace

    from bundlerl.candidates.builder import BuilderConfig, BundleBuilder
    from bundlerl.candidates.complementarity import fit
    from bundlerl.candidates.index import IndexConfig, ItemIndex

    catalog, baskets = instacart()
    E_all = name_embeddings(catalog)
    catalog = catalog.with_embeddings(E_all)
    order = np.lexsort((np.arange(catalog.n_items), -catalog.popularity))
    cfg = BuilderConfig()
    N, n_small = args.users, args.small
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
        print(f"\n== {n} items (comp model ready in {fit_s:.0f}s), N={N} (small batches: {n_small}), threads={args.threads}, "
              f"K={cfg.n_candidates}, K_max={cfg.max_bundle_size}", flush=True)
        flat = ItemIndex(E, IndexConfig(kind="flat", n_threads=args.threads))
        base_ups = N / _timed(lambda: flat.search(prof, cfg.pool_size), args.repeats)
        print(f"baseline FAISS flat search alone (k={cfg.pool_size}): {base_ups:8.0f} queries/s", flush=True)
        chunks = [slice(i, i + n_small) for i in range(0, N, n_small)]
        ref = None
        for kind, kw in VARIANTS:
            t = time.perf_counter()
            index = flat if kind == "flat" else ItemIndex(E, IndexConfig(kind=kind, n_threads=args.threads, **kw))
            builder = BundleBuilder(cat_n, index, comp, cfg)
            setup_s = time.perf_counter() - t
            ups = N / _timed(lambda: builder.build(prof, hist, bought=bought, shown=shown, price_cap=cap), args.repeats)
            cs = builder.build(prof, hist, bought=bought, shown=shown, price_cap=cap)

            def small_calls():
                for c in chunks:
                    builder.build(prof[c], hist[c], bought[c], shown[c], cap[c])

            ups_small = N / _timed(small_calls, max(3, args.repeats // 2))
            if kind == "flat":
                ref = cs
            item_ov, bundle_ov, rel = quality(cs, ref)
            sizes = np.bincount(cs.sizes[cs.mask], minlength=cfg.max_bundle_size + 1)[1:]
            print(
                f"builder over {kind:4s} {kw!s:44s} index+tables {setup_s:5.1f}s  N={N}: {ups:7.0f} users/s x{ups / base_ups:5.2f} vs flat search  "
                f"N={n_small}: {ups_small:7.0f} users/s  | vs exact builder: items {item_ov:.3f} bundles {bundle_ov:.3f} rel {rel:.3f}  "
                f"valid/user {cs.mask.sum(1).mean():.1f}  sizes {sizes.tolist()}", flush=True
            )


if __name__ == "__main__":
    main()
