"""Complementarity model: held-out pair-ranking AUC on Instacart vs baselines, fit time, and
agreement with the true graph on synthetic baskets.

    .venv/bin/python benchmarks/bench_complementarity.py [--data DIR] [--repeats 3] [--max-pairs 100000]
        [--skip-synthetic] [--skip-instacart] [--set eta=0.0 --set rank=64 ...]

Instacart: baskets split 80/20 by order (seeded); positives = distinct directed pairs co-purchased
in the held-out orders, negatives = popularity-matched random pairs (``bundlerl.candidates.comp_eval``).
Baselines in the same run: item PMI, raw aisle lift. Fit time: median of ``--repeats`` uncached fits.
Synthetic: the synthetic catalogue / personas / basket generators when present, else skipped.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(os.environ.get("BUNDLERL_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def load_instacart(folder: Path):
    """(Catalog, Baskets) of an Instacart-format folder, via ``bundlerl.sim_data.loaders.load_instacart``."""
    from bundlerl.sim_data.loaders import load_instacart as loader

    return loader(folder)


def instacart(args, overrides: dict) -> None:
    from bundlerl.candidates import comp_eval
    from bundlerl.candidates.complementarity import ComplementConfig, fit
    from bundlerl.encoders import default_encoder

    folder = Path(args.data) / "instacart"
    if not folder.exists():
        print(f"Instacart folder {folder} absent: skipped")
        return
    t = time.perf_counter()
    catalog, baskets = load_instacart(folder)
    print(f"loaded {catalog.n_items} items, {len(baskets)} baskets, {baskets.items.size} rows in {time.perf_counter() - t:.1f}s")
    t = time.perf_counter()
    emb = catalog.embeddings if catalog.embeddings is not None else default_encoder().encode(catalog.item_texts())
    print(f"embeddings {emb.shape} in {time.perf_counter() - t:.1f}s (disk cache)")
    train, test = baskets.split(0.2, np.random.default_rng(args.seed))
    pairs = comp_eval.heldout_pairs(train, test, np.random.default_rng(args.seed + 1), args.max_pairs)
    cfg = ComplementConfig(**overrides)
    print(f"config overrides: {overrides or 'none'}")
    times = []
    model = None
    with tempfile.TemporaryDirectory() as tmp:
        # every repeat is a cache miss (fresh sub-folder); then one hit on the last folder
        for r in range(args.repeats):
            t = time.perf_counter()
            model = fit(catalog, train, emb, np.random.default_rng(args.seed + 2), cfg, cache_dir=Path(tmp) / str(r))
            times.append(time.perf_counter() - t)
            assert not model.cache_hit
        t = time.perf_counter()
        hit = fit(catalog, train, emb, np.random.default_rng(args.seed + 2), cfg, cache_dir=Path(tmp) / str(r))
        t_hit = time.perf_counter() - t
        assert hit.cache_hit
    results = {
        "comp model": comp_eval.pair_ranking_auc(model.score, pairs),
        "item PMI (baseline)": comp_eval.pair_ranking_auc(comp_eval.pmi_scorer(train), pairs),
        "aisle lift (baseline)": comp_eval.pair_ranking_auc(
            comp_eval.category_lift_scorer(train, catalog.category, catalog.n_categories), pairs
        ),
    }
    # ablations from the same fit: category prior only, and prior (category x text) without counts
    cat_only = lambda i, j: model.cat_log_lift[model.category[i], model.category[j]]  # noqa: E731
    results["  ablation: category prior only"] = comp_eval.pair_ranking_auc(cat_only, pairs)
    results["  ablation: text/id prior only"] = comp_eval.pair_ranking_auc(model._prior_log_lift, pairs)
    print(f"\npairs: {pairs.pos_i.size} positives, never seen in training: {int((~pairs.pos_seen).sum())} pos / "
          f"{int((~pairs.neg_seen).sum())} neg")
    print(f"{'scorer':36s} {'AUC all':>8s} {'never-seen':>10s} {'seen':>6s}")
    for k, v in results.items():
        print(f"{k:36s} {v['overall']:8.3f} {v['never_seen']:10.3f} {v['seen']:6.3f}")
    base = results["item PMI (baseline)"]["overall"]
    print(f"ratio comp/PMI overall: {results['comp model']['overall'] / base:.2f}")
    print(f"\nfit time (uncached, incl. top-{cfg.top_k} lists for {catalog.n_items} items): "
          f"median {statistics.median(times):.1f}s over {len(times)} runs {['%.1f' % x for x in times]}; "
          f"cache hit {t_hit:.2f}s")


def synthetic(args, overrides: dict) -> None:
    try:
        from bundlerl.sim_data.basket_gen import generate_baskets  # type: ignore
        from bundlerl.sim_data.personas_gen import sample_personas  # type: ignore
        from bundlerl.sim_data.synthetic import CatalogConfig, generate_catalog  # type: ignore
    except ImportError as err:
        print(f"synthetic generators not available ({err}): skipped")
        return
    from bundlerl.candidates import comp_eval
    from bundlerl.candidates.complementarity import ComplementConfig, fit
    from bundlerl.encoders import default_encoder

    rng = np.random.default_rng(args.seed)
    catalog = generate_catalog(CatalogConfig(n_items=5000, seed=args.seed))
    personas = sample_personas(catalog, 1000, rng)
    baskets = generate_baskets(catalog, personas, 20_000, rng)
    emb = catalog.embeddings if catalog.embeddings is not None else default_encoder().encode(catalog.item_texts())
    obs = catalog.observable()  # the model must not see the truth
    t = time.perf_counter()
    model = fit(obs, baskets, emb, np.random.default_rng(args.seed), ComplementConfig(**overrides), use_cache=False)
    dt = time.perf_counter() - t
    G = catalog.complement_graph
    agree = comp_eval.graph_agreement(model.category_scores, G)
    L = np.exp(model.cat_log_lift)
    agree_lift = comp_eval.graph_agreement(L, G)
    print(f"\nsynthetic: {catalog.n_items} items, {catalog.n_categories} categories, {len(baskets)} baskets; fit {dt:.1f}s")
    print(f"agreement with true G (off-diagonal, {agree['n_edges']} edges): comp AUC edges-vs-non-edges {agree['auc']:.3f}, "
          f"Spearman {agree['spearman']:.3f} (on edges {agree['spearman_edges']:.3f}); "
          f"symmetric category lift: AUC {agree_lift['auc']:.3f}, Spearman {agree_lift['spearman']:.3f}")
    # item level vs comp* without the m(i,j) term: G[c(i), c(j)]
    r = np.random.default_rng(args.seed + 5)
    i = r.integers(0, catalog.n_items, 50_000)
    j = r.integers(0, catalog.n_items, 50_000)
    keep = catalog.category[i] != catalog.category[j]
    g = G[catalog.category[i[keep]], catalog.category[j[keep]]]
    s = model.score(i[keep], j[keep])
    print(f"item level, random cross-category pairs: AUC (G>0 vs G=0) {comp_eval.auc(s[g > 0], s[g == 0]):.3f}, "
          f"Spearman with G {comp_eval.spearman(s, g):.3f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-pairs", type=int, default=100_000)
    p.add_argument("--skip-synthetic", action="store_true")
    p.add_argument("--skip-instacart", action="store_true")
    p.add_argument("--set", action="append", default=[], help="config override key=value (python literal)")
    args = p.parse_args(argv)
    import ast

    overrides = {}
    for kv in args.set:
        k, v = kv.split("=", 1)
        overrides[k] = ast.literal_eval(v)
    if not args.skip_instacart:
        instacart(args, overrides)
    if not args.skip_synthetic:
        synthetic(args, overrides)
    return 0


if __name__ == "__main__":
    sys.exit(main())
