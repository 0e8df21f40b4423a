"""Catalogue generation speed (10k / 100k items), persona + basket generation, centroid accuracy.

    .venv/bin/python benchmarks/bench_catalog.py [--repeats 3] [--no-encode]

Baseline (same process): a per-item Python loop that draws the same fields with scalar rng calls
and f-strings, run on 10k items; the ratio shows what vectorising the string assembly buys.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from bundlerl.sim_data.basket_gen import generate_baskets
from bundlerl.sim_data.personas_gen import sample_personas
from bundlerl.sim_data.synthetic import CatalogConfig, category_centroid_accuracy, generate_catalog
from bundlerl.sim_data.taxonomy import load_taxonomy


def _timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def _loop_baseline(n: int, seed: int) -> list[str]:
    """Per-item scalar draws + f-strings (what a straightforward generator would do)."""
    tax = load_taxonomy()
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        spec = tax.categories[int(rng.integers(tax.n_categories))]
        brand = spec.brands[int(rng.integers(len(spec.brands)))]
        prod = spec.product_types[int(rng.integers(len(spec.product_types)))]
        sp = spec.attributes["spec"][int(rng.integers(len(spec.attributes["spec"])))]
        size = spec.attributes["size"][int(rng.integers(len(spec.attributes["size"])))]
        lo, hi = np.log(spec.price_range)
        price = float(np.exp(lo + rng.random() * (hi - lo)))
        out.append(f"{brand} {sp} {prod} ({size}) {price:.2f}. {sp} {prod.lower()} from {brand}. Category: {spec.name}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--encode", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args()
    load_taxonomy()  # parse once, outside the timings
    t_base, _ = _timed(lambda: _loop_baseline(10_000, 0), args.repeats)
    print(f"baseline per-item loop, 10k items: {t_base:.3f} s")
    for n in (10_000, 100_000):
        t, cat = _timed(lambda: generate_catalog(CatalogConfig(n_items=n, seed=0)), args.repeats)
        distinct = len(set(cat.titles.tolist())) / n
        print(f"generate_catalog {n:>7,} items: {t:.3f} s ({n / t:,.0f} items/s; distinct titles {distinct:.3f})"
              + (f"; vs loop baseline per item: {t_base / t:.1f}x" if n == 10_000 else
                 f"; vs loop baseline per item: {(t_base * 10) / t:.1f}x"))
    cat = generate_catalog(CatalogConfig(n_items=10_000, seed=0))
    t_p, personas = _timed(lambda: sample_personas(cat, 10_000, np.random.default_rng(0)), args.repeats)
    print(f"sample_personas 10k personas (10k-item catalogue): {t_p:.3f} s")
    t_b, b = _timed(lambda: generate_baskets(cat, personas, 100_000, np.random.default_rng(0)), args.repeats)
    print(f"generate_baskets 100k baskets: {t_b:.3f} s (mean size {b.sizes.mean():.2f}, {b.items.size:,} items)")
    if args.encode:
        from bundlerl.encoders import default_encoder

        cat5 = generate_catalog(CatalogConfig(n_items=5_000, seed=0))
        t = time.perf_counter()
        emb = default_encoder().encode(cat5.item_texts())
        t_enc = time.perf_counter() - t
        acc = category_centroid_accuracy(cat5, emb)
        acc_plain = category_centroid_accuracy(cat5, emb, leave_one_out=False)
        acc_titles = category_centroid_accuracy(cat5, default_encoder().encode(cat5.titles.tolist()))
        print(f"centroid accuracy, 5k items, MiniLM on title+description: {acc:.3f} leave-one-out, "
              f"{acc_plain:.3f} plain; titles only: {acc_titles:.3f} (encode {t_enc:.1f} s, disk cache may hit)")


if __name__ == "__main__":
    main()
