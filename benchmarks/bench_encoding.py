"""Encoding throughput: raw SentenceEncoder vs CachedEncoder cold vs cached, on Instacart product names.

    .venv/bin/python benchmarks/bench_encoding.py [--n 49688] [--repeats 3] [--baseline-n N]

Prints titles/s for: the raw encoder (no cache, baseline), a cold cache (fresh temp folder:
every title is a miss and gets written), and a warm cache, both through a fresh
``CachedEncoder`` (reads the shards from disk, as a second run of a job would) and through
the same object (in-memory index). Model loading is done once before any timing.
Cold and raw runs are single (they are long); cached figures are medians of ``--repeats``.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_PRODUCTS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "instacart" / "products.csv"


def load_titles(path: Path) -> list[str]:
    """Product names from an Instacart ``products.csv`` (column ``product_name``), blanks dropped."""
    with open(path, newline="", encoding="utf-8") as f:
        return [row["product_name"] for row in csv.DictReader(f) if row["product_name"].strip()]


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--products", type=Path, default=Path(os.environ.get("BUNDLERL_SHARED_DATA", DEFAULT_PRODUCTS.parents[1])) / "instacart" / "products.csv")
    ap.add_argument("--n", type=int, default=None, help="subsample this many titles (seeded); default all")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the cached runs (median reported)")
    ap.add_argument("--baseline-n", type=int, default=None, help="titles for the raw-encoder baseline (default: same as --n)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args(argv)

    from bundlerl.encoders import CachedEncoder, SentenceEncoder

    if not args.products.is_file():
        print(f"products file not found: {args.products} (set BUNDLERL_SHARED_DATA or --products)", file=sys.stderr)
        return 2
    titles = load_titles(args.products)
    if args.n is not None and args.n < len(titles):
        rng = np.random.default_rng(args.seed)
        titles = [titles[i] for i in np.sort(rng.choice(len(titles), size=args.n, replace=False))]
    n = len(titles)
    base_titles = titles if args.baseline_n is None else titles[: args.baseline_n]

    enc = SentenceEncoder(batch_size=args.batch_size)
    t_load, _ = timed(lambda: enc.encode(titles[: 2 * args.batch_size], progress=False))  # load + a couple of full batches
    import torch

    print(f"titles: {n}  model: {enc.identity}  device: {enc.device}  torch threads: {torch.get_num_threads()}  "
          f"load+warmup: {t_load:.1f}s")

    t_raw, v_raw = timed(lambda: enc.encode(base_titles, progress=False))
    print(f"raw SentenceEncoder (baseline, 1 run): {len(base_titles)} titles in {t_raw:.2f}s = {len(base_titles) / t_raw:,.0f} titles/s")

    with tempfile.TemporaryDirectory(prefix="bench_enc_") as tmp:
        cold = CachedEncoder(enc, cache_dir=tmp)
        t_cold, v_cold = timed(lambda: cold.encode(titles, progress=False))
        print(f"cached, cold (1 run): {t_cold:.2f}s = {n / t_cold:,.0f} titles/s")

        fresh_t, same_t = [], []
        for _ in range(args.repeats):
            fresh = CachedEncoder(enc, cache_dir=tmp)
            t, v = timed(lambda: fresh.encode(titles))
            assert fresh.misses == 0 and np.array_equal(v, v_cold), "warm cache must return the cold vectors"
            fresh_t.append(t)
            t, v = timed(lambda: cold.encode(titles))
            same_t.append(t)
        t_fresh, t_same = statistics.median(fresh_t), statistics.median(same_t)
        print(f"cached, warm, new CachedEncoder (median of {args.repeats}): {t_fresh:.3f}s = {n / t_fresh:,.0f} titles/s")
        print(f"cached, warm, same CachedEncoder (median of {args.repeats}): {t_same:.3f}s = {n / t_same:,.0f} titles/s")

    raw_rate = len(base_titles) / t_raw
    print(f"ratio cold/warm (new object): {t_cold / t_fresh:,.0f}x   (same object): {t_cold / t_same:,.0f}x")
    print(f"ratio warm (new object) vs raw encoder, per title: {(n / t_fresh) / raw_rate:,.0f}x")
    print(f"cold cache overhead vs raw, per title: {(raw_rate / (n / t_cold) - 1) * 100:+.1f}%")
    if base_titles is titles:
        print(f"max |raw - cached| = {float(np.abs(v_raw - v_cold).max()):.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
