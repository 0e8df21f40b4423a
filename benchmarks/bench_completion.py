"""Bundle completion on real data: Recall@10 and NDCG@10 (95% CIs) of the learned completion against the exact
baselines, overall and by seed seen / unseen in training, on the fixed splits of ``bundlerl.sim_data.splits``.

    .venv/bin/python benchmarks/bench_completion.py [--datasets steam,instacart,groceries] [--folds 5]
        [--skip-old] [--fit-cost] [--max-queries N]

Per dataset (``../shared/data``): Steam bundles 5-fold by bundle (pool = the bundled items), Instacart orders 80/20
(held-out orders of 2-6 items; pool = every product), Groceries baskets 80/20 (pool = its 169 items). Methods, all
in the same process on the same queries: the learned completion (``bundlerl.candidates.learned.fit_completion``,
fitted on the training part only), text cosine, co-occurrence count (ties by popularity), popularity, and the old
``complete_bundle`` defaults (the complementarity model + fixed weights; ``--skip-old`` leaves it out, it needs a
complementarity fit per split). Targets (issue 16): learned >= the better of text / co-occurrence on seen and on
unseen seeds (unseen where >= 200 unseen seeds), and >= 1.15x it overall. Also printed: the fitted weights and the
fit report per dataset, and for Instacart the pair AUC of the learned score (``comp_eval``, for continuity).
``--fit-cost``: fit time on 50k items / 20k baskets (Instacart), as ``bench_complementarity.py`` measures its fit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("BUNDLERL_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def load(name: str):
    """(catalog with embeddings, baskets, splits) of one dataset."""
    from bundlerl.encoders import default_encoder
    from bundlerl.sim_data import splits
    from bundlerl.sim_data.loaders import load_groceries, load_instacart, load_steam_bundles

    if name == "steam":
        catalog, baskets, _ = load_steam_bundles(DATA / "steam_bundles")
        sp = splits.steam_splits(baskets)
    elif name == "instacart":
        catalog, baskets = load_instacart(DATA / "instacart")
        sp = [splits.instacart_split(baskets)]
    elif name == "groceries":
        catalog, baskets = load_groceries(DATA / "groceries" / "groceries.csv")
        sp = [splits.groceries_split(baskets)]
    else:
        raise SystemExit(f"unknown dataset {name!r}; use steam, instacart or groceries")
    E = default_encoder().encode(catalog.item_texts(), progress=False)
    return catalog.with_embeddings(E), baskets, sp


def splits_of(name: str, baskets) -> list:
    """The protocol's splits of a dataset (``bundlerl.sim_data.splits``)."""
    from bundlerl.sim_data import splits

    return {"steam": splits.steam_splits, "instacart": lambda b: [splits.instacart_split(b)],
            "groceries": lambda b: [splits.groceries_split(b)]}[name](baskets)


def old_complete_bundle_rows(catalog, train, E, seed: int):
    """Score rows of the old ``complete_bundle`` (complementarity model + BuilderConfig defaults): its ranked list
    gets descending scores, the rest -inf."""
    from bundlerl.candidates.builder import BuilderConfig, BundleBuilder
    from bundlerl.candidates.complementarity import fit
    from bundlerl.candidates.index import ItemIndex

    model = fit(catalog, train, E, np.random.default_rng(seed))
    bld = BundleBuilder(catalog, ItemIndex(E), model, BuilderConfig())

    def rows(seeds):
        out = np.full((len(seeds), catalog.n_items), -np.inf)
        for r, s in enumerate(seeds):
            got = bld.complete_bundle([int(s)], 10)
            got = got[got >= 0]
            out[r, got] = -np.arange(got.size, dtype=np.float64)
        return out

    return rows, model


def run_dataset(name: str, args) -> dict:
    from bundlerl.candidates.learned import cooccurrence_scorer, fit_completion, popularity_scorer, text_scorer
    from bundlerl.evaluation.stats import mean_ci
    from bundlerl.sim_data.ranking_metrics import evaluate_ranking

    t0 = time.perf_counter()
    catalog, baskets, sp = load(name)
    E = catalog.embeddings
    per = {}  # method -> {"recall": [...], "ndcg": [...], "seen": [...]}
    reports = []
    fit_s = []
    if args.max_splits:
        sp = sp[: args.max_splits]
    for k, split in enumerate(sp):
        q = split.queries()
        if args.max_queries and len(q) > args.max_queries:
            q = q.subset(np.sort(np.random.default_rng(k).choice(len(q), args.max_queries, replace=False)))
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            model = fit_completion(catalog, split.train, E, np.random.default_rng(100 + k), cache_dir=tmp)
        fit_s.append(time.perf_counter() - t)
        reports.append(model.report)
        methods = {"learned completion": model.score_rows, "text cosine": text_scorer(E),
                   "co-occurrence": cooccurrence_scorer(split.train), "popularity": popularity_scorer(split.train)}
        if not args.skip_old:
            methods["old complete_bundle defaults"] = old_complete_bundle_rows(catalog, split.train, E, 200 + k)[0]
        for m, fn in methods.items():
            res = evaluate_ranking(fn, q, split.pool, k=10)
            d = per.setdefault(m, {"recall": [], "ndcg": [], "seen": []})
            d["recall"].append(res["recall"]), d["ndcg"].append(res["ndcg"]), d["seen"].append(q.seen)
    out = {"dataset": name, "items": catalog.n_items, "baskets": len(baskets), "splits": len(sp),
           "splits_of": len(splits_of(name, baskets)),
           "fit_seconds": [round(x, 1) for x in fit_s], "methods": {}, "reports": reports}
    for m, d in per.items():
        rec, nd, seen = (np.concatenate(d[x]) for x in ("recall", "ndcg", "seen"))
        out["methods"][m] = {
            sub: {"recall": mean_ci(rec[mask]).to_dict(), "ndcg": mean_ci(nd[mask]).to_dict()}
            for sub, mask in (("overall", np.ones(rec.size, bool)), ("seen", seen), ("unseen", ~seen))
        }
    # paired ratio (same queries) of the learned completion to the better baseline of each subset, delta-method CI
    from bundlerl.evaluation.stats import ratio_ci

    out["ratios"] = {}
    for metric in ("recall", "ndcg"):
        cat = {m: np.concatenate(per[m][metric]) for m in ("learned completion", "text cosine", "co-occurrence")}
        seen = np.concatenate(per["learned completion"]["seen"])
        for sub, mask in (("overall", np.ones(seen.size, bool)), ("seen", seen), ("unseen", ~seen)):
            if not mask.any():
                continue
            best = max(("text cosine", "co-occurrence"), key=lambda m: cat[m][mask].mean())
            out["ratios"][f"{metric} {sub}"] = {"vs": best, **ratio_ci(cat["learned completion"][mask], cat[best][mask]).to_dict()}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def print_dataset(out: dict) -> None:
    from bundlerl.evaluation.stats import Estimate

    def fmt(e):
        return Estimate(e["mean"], e["low"], e["high"], e["n"]).format(3)

    print(f"\n## {out['dataset']}: {out['items']} items, {out['baskets']} bundles/baskets, {out['splits']} of "
          f"{out['splits_of']} split(s), "
          f"{out['seconds']}s (fits {out['fit_seconds']} s)")
    print("| method | Recall@10 overall | seen | unseen | NDCG@10 overall | seen | unseen |")
    print("|---|---|---|---|---|---|---|")
    for m, v in out["methods"].items():
        print(f"| {m} | " + " | ".join(fmt(v[s]["recall"]) for s in ("overall", "seen", "unseen")) + " | "
              + " | ".join(fmt(v[s]["ndcg"]) for s in ("overall", "seen", "unseen")) + " |")
    M = out["methods"]
    n_seen, n_unseen = M["text cosine"]["seen"]["recall"]["n"], M["text cosine"]["unseen"]["recall"]["n"]
    print(f"queries: {n_seen} seen seeds, {n_unseen} unseen seeds")
    for metric in ("recall", "ndcg"):
        for sub in ("overall", "seen", "unseen"):
            best = max(M["text cosine"][sub][metric]["mean"], M["co-occurrence"][sub][metric]["mean"])
            got = M["learned completion"][sub][metric]["mean"]
            need = 1.15 * best if sub == "overall" else best
            applies = sub != "unseen" or n_unseen >= 200
            verdict = "n/a (< 200 unseen seeds)" if not applies else ("MET" if got >= need - 1e-12 else "MISSED")
            rc = out.get("ratios", {}).get(f"{metric} {sub}")
            ci = f" (paired 95% CI [{rc['low']:.3f}, {rc['high']:.3f}])" if rc else ""
            print(f"target {metric} {sub}: learned {got:.3f} vs {'1.15 x ' if sub == 'overall' else ''}better baseline "
                  f"{best:.3f} -> ratio {got / best if best > 0 else float('nan'):.3f}{ci}: {verdict}")
    for k, r in enumerate(out["reports"]):
        if k == 0 or len(out["reports"]) <= 1:
            print("fit report (split 1):", json.dumps({x: r[x] for x in ("validation", "regimes", "weights", "calibration")
                                                        if x in r}, indent=None))


def instacart_auc(args) -> None:
    """Pair AUC of the learned score on Instacart (bench_complementarity's protocol), for continuity."""
    from bundlerl.candidates import comp_eval
    from bundlerl.candidates.learned import fit_completion

    catalog, baskets, _ = load("instacart")
    train, test = baskets.split(0.2, np.random.default_rng(0))
    pairs = comp_eval.heldout_pairs(train, test, np.random.default_rng(1), 100_000)
    with tempfile.TemporaryDirectory() as tmp:
        model = fit_completion(catalog, train, catalog.embeddings, np.random.default_rng(2), cache_dir=tmp)
    res = comp_eval.pair_ranking_auc(model.score, pairs)
    print(f"\nInstacart pair AUC of the learned score: overall {res['overall']:.3f}, never seen {res['never_seen']:.3f}, "
          f"seen {res['seen']:.3f} ({res['n_pos']} positives)")


def fit_cost(args) -> None:
    """Fit seconds on Instacart's 49,688 items / 19,989 baskets, uncached, beside the complementarity fit timed the
    same way in the same process (``bench_complementarity.py``'s measure; machine load moves both alike)."""
    from bundlerl.candidates.complementarity import fit
    from bundlerl.candidates.learned import fit_completion

    catalog, baskets, _ = load("instacart")
    ours, comp = [], []
    for r in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            fit(catalog, baskets, catalog.embeddings, np.random.default_rng(2), cache_dir=tmp)
            comp.append(time.perf_counter() - t)
            t = time.perf_counter()
            m = fit_completion(catalog, baskets, catalog.embeddings, np.random.default_rng(2), cache_dir=tmp)
            ours.append(time.perf_counter() - t)
    print(f"\nfit cost on {catalog.n_items} items / {len(baskets)} baskets (uncached): learned completion "
          f"{['%.1f' % x for x in ours]} s (median {float(np.median(ours)):.1f} s; before its top lists "
          f"{m.report['fit_seconds_before_top_lists']} s); complementarity fit in the same process "
          f"{['%.1f' % x for x in comp]} s (median {float(np.median(comp)):.1f} s); ratio "
          f"{float(np.median(ours)) / float(np.median(comp)):.2f}")


def builder_speed(args) -> None:
    """The env builder's hot path with the learned completion against the complementarity model it replaced (same
    world, same process): construction (pair tables) and ``build`` for 1,024 users (median of 5)."""
    from bundlerl.candidates.builder import BundleBuilder
    from bundlerl.env.world import build_world

    w = build_world(args.preset, progress=False)
    rng = np.random.default_rng(0)
    users = w.persona_vecs[rng.integers(0, len(w.persona_vecs), 1024)]
    bought = [rng.integers(0, w.n_items, 3) for _ in range(1024)]
    for name, model in (("complementarity model (before)", w.comp_model), ("learned completion (after)", w.completion)):
        t = time.perf_counter()
        b = BundleBuilder(w.observable_catalog, w.index, model, w.builder.config)
        t_make = time.perf_counter() - t
        times = []
        for _ in range(5):
            t = time.perf_counter()
            b.build(users, None, bought)
            times.append(time.perf_counter() - t)
        print(f"builder on '{args.preset}' ({w.n_items} items) with the {name}: construction {t_make:.2f} s, "
              f"build(1024 users) median {1000 * float(np.median(times)):.0f} ms {['%.0f' % (1000 * x) for x in times]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="steam,instacart,groceries")
    ap.add_argument("--skip-old", action="store_true")
    ap.add_argument("--max-queries", type=int, default=0, help="subsample queries per split (0 = all)")
    ap.add_argument("--max-splits", type=int, default=0, help="only the first N splits of each dataset (0 = all)")
    ap.add_argument("--auc", action="store_true", help="Instacart pair AUC of the learned score")
    ap.add_argument("--fit-cost", action="store_true")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--builder", action="store_true", help="builder speed before / after on --preset's world")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--json", default="", help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    if not DATA.exists():
        print(f"{DATA} absent: skipped")
        return 0
    results = []
    for name in [x for x in args.datasets.split(",") if x]:
        out = run_dataset(name, args)
        print_dataset(out)
        results.append(out)
    if args.auc:
        instacart_auc(args)
    if args.fit_cost:
        fit_cost(args)
    if args.builder:
        builder_speed(args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
