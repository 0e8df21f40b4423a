"""Steam bundle completion: given one item of a real Steam bundle, Recall@10 of its other items.

    .venv/bin/python benchmarks/bench_steam_completion.py [--folds 5] [--seeds-per-bundle 3]

615 real Steam bundles (Pathak et al. 2017). 5-fold cross-validation over bundles: the
complementarity model (``bundlerl.candidates.complementarity.fit``) is fitted on the other folds'
bundles used as baskets; for each held-out bundle with >= 2 items, up to ``--seeds-per-bundle``
of its items (seeded choice) are given as the seed and the other items are the targets.
Recall@10 = |top-10 ∩ targets| / min(10, |targets|), averaged over (bundle, seed).
Compared in the same run: text similarity only (nearest item embeddings to the seed) and
``complete_bundle`` with the substitute penalty off (Steam bundles are mostly one franchise,
so same-genre look-alikes are often the answer rather than substitutes).
Item text: "name. genre"; category: the genre string; catalogue: the 2,798 bundled items.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _candidates_data import DATA


def load_steam():
    """(Catalog, Baskets) of the bundled Steam items, via ``bundlerl.sim_data.loaders.load_steam_bundles``."""
    from bundlerl.sim_data.loaders import load_steam_bundles

    catalog, bundles, _ = load_steam_bundles(DATA / "steam_bundles")
    return catalog, bundles


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seeds-per-bundle", type=int, default=3)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from bundlerl.candidates.builder import BuilderConfig, BundleBuilder
    from bundlerl.candidates.complementarity import fit
    from bundlerl.candidates.index import ItemIndex
    from bundlerl.encoders import default_encoder
    from bundlerl.sim_data.baskets import Baskets

    catalog, baskets = load_steam()
    E = default_encoder().encode(catalog.item_texts(), progress=False)
    catalog = catalog.with_embeddings(E)
    index = ItemIndex(E)
    rng = np.random.default_rng(args.seed)
    B = len(baskets.indptr) - 1
    fold = rng.permutation(B) % args.folds
    bl = [baskets.items[baskets.indptr[b] : baskets.indptr[b + 1]] for b in range(B)]
    variants = {
        "complete_bundle (default)": BuilderConfig(),
        "complete_bundle (w_sub=0)": BuilderConfig(w_sub=0.0),
        "complete_bundle (w_sub=0, w_comp=0.25)": BuilderConfig(w_sub=0.0, w_comp=0.25),
        "complete_bundle (w_sub=0, w_comp=0.1)": BuilderConfig(w_sub=0.0, w_comp=0.1),
    }
    methods = {"text similarity only": [], **{k: [] for k in variants}}
    t0 = time.perf_counter()
    for f in range(args.folds):
        train = [bl[b] for b in range(B) if fold[b] != f]
        tb = Baskets(np.concatenate([[0], np.cumsum([len(x) for x in train])]), np.concatenate(train), catalog.n_items)
        model = fit(catalog, tb, E, np.random.default_rng(args.seed + f))
        builders = {k: BundleBuilder(catalog, index, model, c) for k, c in variants.items()}
        for b in np.flatnonzero(fold == f):
            items = bl[b]
            if items.size < 2:
                continue
            for s in rng.choice(items, size=min(args.seeds_per_bundle, items.size), replace=False):
                targets = np.setdiff1d(items, [s])
                denom = min(args.k, targets.size)
                _, nn = index.search(E[[s]], args.k, exclude=[[s]])
                methods["text similarity only"].append(np.isin(nn[0], targets).sum() / denom)
                for name, bld in builders.items():
                    got = bld.complete_bundle([s], args.k)
                    methods[name].append(np.isin(got, targets).sum() / denom)
    print(f"Steam: {catalog.n_items} items, {B} bundles, {args.folds}-fold, {len(methods['text similarity only'])} (bundle, seed) queries, {time.perf_counter() - t0:.0f}s")
    base = np.mean(methods["text similarity only"])
    for name, v in methods.items():
        v = np.asarray(v)
        se = v.std(ddof=1) / np.sqrt(v.size)
        print(f"{name:40s} Recall@{args.k} = {v.mean():.3f} ± {se:.3f} (x{v.mean() / base:.2f} vs text)")


if __name__ == "__main__":
    main()
