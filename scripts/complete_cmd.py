"""``bundlerl complete``: complete a bundle from one item with the completion learned from bundles or baskets,
showing each signal's contribution for every proposed item (the basis of recommendation reasons).

    bundlerl complete --item ITEM_ID                       # the built-in synthetic store (the 'default' world)
    bundlerl complete --catalog items.csv --bundles bundles.csv --item 440 --k 5
    bundlerl complete --catalog items.csv --baskets baskets.csv --item milk --skip-unknown
"""

from __future__ import annotations

import argparse

from bundlerl.scripts.flags import ExistingFile, Integer, Text

HELP = "complete a bundle from one item, with each signal's contribution per proposed item"
DESCRIPTION = (
    "Fit (or load from the cache) the bundle completion learned from a catalogue's own bundles or baskets "
    "(weights fitted by a ranking objective on a held-out part of them, falling back to text cosine / co-occurrence "
    "where there is too little data), then print the K items that best complete a bundle holding --item, each with "
    "its probability and the contribution of every signal (text cosine, co-occurrence, PMI, category lift, price fit, "
    "popularity, ...) to its score. Without --catalog: the built-in synthetic store and its simulated baskets (the "
    "'default' world; the first run builds it, a few minutes)."
)
EPILOG = "example: bundlerl complete --catalog items.csv --bundles bundles.csv --item 440 --k 5"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("complete", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--catalog", metavar="FILE", type=ExistingFile(), default=None,
                   help="items CSV (item_id,title,category[,price,description,...]; default: the built-in synthetic store)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--bundles", metavar="FILE", type=ExistingFile(), default=None,
                   help="bundles CSV (bundle_id,item_id), with --catalog")
    g.add_argument("--baskets", metavar="FILE", type=ExistingFile(), default=None,
                   help="baskets CSV (basket_id,item_id), with --catalog")
    p.add_argument("--item", required=True, metavar="ID", type=Text("item id"), help="item id (as in the catalogue) that starts the bundle")
    p.add_argument("--k", type=Integer(1), default=10, help="items to propose (default: 10)")
    p.add_argument("--skip-unknown", action="store_true",
                   help="skip bundle / basket rows naming an item the catalogue lacks (counted) instead of stopping")
    p.set_defaults(func=run)


def load_inputs(args):
    """``(catalog with embeddings, baskets, name)`` the flags name; raises BundlerlError for bad combinations."""
    from bundlerl.utils.errors import BundlerlError

    if args.catalog is None:
        if args.bundles or args.baskets:
            raise BundlerlError("--bundles / --baskets go with --catalog (the items they name); give --catalog FILE")
        from bundlerl.env.world import build_world

        world = build_world("default")
        return world.observable_catalog, world.baskets, "the built-in synthetic store ('default' world)"
    if not (args.bundles or args.baskets):
        raise BundlerlError("--catalog needs the bundles or baskets to learn from: add --bundles FILE or --baskets FILE")
    import warnings

    from bundlerl.encoders import default_encoder
    from bundlerl.sim_data.loaders import load_baskets_csv, load_bundles_csv, load_items_csv

    catalog = load_items_csv(args.catalog)
    load = load_bundles_csv if args.bundles else load_baskets_csv
    stats: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the skipped rows are reported below, in one line
        baskets = load(args.bundles or args.baskets, catalog, skip_unknown=args.skip_unknown, stats=stats)
    if stats.get("skipped_rows"):
        print(f"skipped {stats['skipped_rows']} row(s) naming {stats['unknown_items']} unknown item(s) (e.g. "
              f"{', '.join(map(repr, stats['unknown_examples']))}); {stats['dropped_empty']} left empty")
    catalog = catalog.with_embeddings(default_encoder().encode(catalog.item_texts()))
    return catalog, baskets, f"{args.catalog} + {args.bundles or args.baskets}"


def completion_table(model, catalog, item_pos: int, k: int) -> list[str]:
    """The lines ``bundlerl complete`` prints for a completion of ``item_pos``: one per proposed item with its
    probability and the signals' contributions (largest first)."""
    rows = model.explain([item_pos], k)
    lines = []
    for rank, r in enumerate(rows, 1):
        parts = sorted(r["contributions"].items(), key=lambda kv: -abs(kv[1]))
        why = ", ".join(f"{name} {v:+.2f}" for name, v in parts if abs(v) >= 0.005)
        i = r["item"]
        lines.append(f"{rank:>3}. {catalog.item_ids[i]}  {catalog.titles[i][:50]:<50}  p={r['score']:.3f}  [{why}]")
    return lines


def run(args) -> int:
    import numpy as np

    from bundlerl.candidates.learned import fit_completion
    from bundlerl.utils.errors import BundlerlError

    catalog, baskets, name = load_inputs(args)
    try:
        pos = int(catalog.index_of([args.item])[0])
    except KeyError:
        raise BundlerlError(f"--item {args.item!r} is not in {name} ({catalog.n_items} items); use an item_id of "
                            f"the catalogue, e.g. {catalog.item_ids[0]!r}") from None
    model = fit_completion(catalog, baskets, catalog.embeddings, np.random.default_rng(0))
    regime = "seen in the bundles / baskets" if model.regime([pos])[0] else "never in a bundle / basket (cold)"
    print(f"{name}: {catalog.n_items} items, {len(baskets)} bundles / baskets; completion "
          f"{'loaded from the cache' if model.cache_hit else 'fitted'}")
    for info in model.report["regimes"]:
        how = f"fitted (chose {info['chosen']})" if info.get("fitted") else f"baseline row: {info['chosen']}"
        print(f"  {info['regime']}: {how}")
    print(f"bundle of {args.item} ({catalog.titles[pos]}; {regime}), the {args.k} best completions:")
    for line in completion_table(model, catalog, int(pos), args.k):
        print(line)
    return 0
