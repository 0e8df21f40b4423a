"""The synthetic generators' and the loaders' output for small fixed inputs, and its snapshot.

``bundlerl.sim_data.versions`` holds GENERATOR_VERSION and LOADER_VERSION; cached worlds are keyed by them.
The snapshot records the versions it was made at. When the output changes and the versions do not, cached
worlds would be silently stale: ``tests/test_generator_version.py`` fails and says to bump the version.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SNAPSHOT = HERE / "generators.npz"
META = HERE / "generators.json"
FIXTURES = HERE.parent / "fixtures"

#: Float tolerance: the generators draw from numpy Generators and do float64 arithmetic, identical across
#: machines in practice; the tolerance only absorbs the last-bit differences of libm / SIMD paths.
RTOL, ATOL = 1e-6, 1e-9


def versions() -> dict[str, int]:
    from bundlerl.sim_data.versions import GENERATOR_VERSION, LOADER_VERSION

    return {"generator": GENERATOR_VERSION, "loader": LOADER_VERSION}


def compute() -> dict[str, dict[str, np.ndarray]]:
    """``{"generator": arrays, "loader": arrays}`` of the current code (strings as unicode arrays)."""
    from bundlerl.sim_data import CatalogConfig, generate_baskets, generate_catalog, sample_personas
    from bundlerl.sim_data.loaders import load_instacart

    cat = generate_catalog(CatalogConfig(n_items=300, seed=3))
    rng = np.random.default_rng([3, 7919])
    personas = sample_personas(cat, 40, rng)
    baskets = generate_baskets(cat, personas, 300, rng)
    gen = {
        "cat.titles": np.asarray(cat.titles, dtype=str),
        "cat.descriptions": np.asarray(cat.descriptions, dtype=str),
        "cat.category": np.asarray(cat.category),
        "cat.brand": np.asarray(cat.brand, dtype=str),
        "cat.price": np.asarray(cat.price, dtype=np.float64),
        "cat.popularity": np.asarray(cat.popularity, dtype=np.float64),
        "cat.complement_graph": np.asarray(cat.complement_graph, dtype=np.float64),
        "personas.texts": np.asarray(personas.texts, dtype=str),
        "personas.interests": np.asarray(personas.interests, dtype=np.float64),
        "personas.needs": np.asarray(personas.needs, dtype=np.float64),
        "personas.budget": np.asarray(personas.budget, dtype=np.float64),
        "personas.price_sensitivity": np.asarray(personas.price_sensitivity, dtype=np.float64),
        "baskets.indptr": np.asarray(baskets.indptr),
        "baskets.items": np.asarray(baskets.items),
    }
    ic_cat, ic_baskets = load_instacart(FIXTURES / "instacart")
    load = {
        "instacart.item_ids": np.asarray(ic_cat.item_ids, dtype=str),
        "instacart.titles": np.asarray(ic_cat.titles, dtype=str),
        "instacart.category": np.asarray(ic_cat.category),
        "instacart.price": np.asarray(ic_cat.price, dtype=np.float64),
        "instacart.baskets.indptr": np.asarray(ic_baskets.indptr),
        "instacart.baskets.items": np.asarray(ic_baskets.items),
    }
    return {"generator": gen, "loader": load}


def write(out: dict[str, dict[str, np.ndarray]] | None = None) -> None:
    """Write the snapshot of the current code (and the versions it was made at)."""
    from bundlerl.utils.atomic import atomic_write, write_text

    out = compute() if out is None else out
    flat = {f"{part}/{k}": v for part, arrays in out.items() for k, v in arrays.items()}
    with atomic_write(SNAPSHOT) as tmp:
        np.savez_compressed(tmp, **flat)
    write_text(META, json.dumps({"versions": versions(), "rtol": RTOL, "atol": ATOL}, indent=2) + "\n")


def load() -> tuple[dict[str, int], dict[str, dict[str, np.ndarray]]]:
    meta = json.loads(META.read_text())
    out: dict[str, dict[str, np.ndarray]] = {}
    with np.load(SNAPSHOT, allow_pickle=False) as z:
        for key in z.files:
            part, name = key.split("/", 1)
            out.setdefault(part, {})[name] = z[key]
    return meta["versions"], out


def differences(want: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> list[str]:
    """Names of the arrays that differ (shape, exact for ints and strings, RTOL / ATOL for floats)."""
    bad = []
    for name in sorted(set(want) | set(got)):
        a, b = want.get(name), got.get(name)
        if a is None or b is None or a.shape != b.shape:
            bad.append(f"{name} (missing or shape {None if a is None else a.shape} -> {None if b is None else b.shape})")
        elif a.dtype.kind == "f":
            if not np.allclose(a, b, rtol=RTOL, atol=ATOL):
                bad.append(f"{name} (max abs diff {np.max(np.abs(a - b)):.3g})")
        elif not np.array_equal(a, b):
            bad.append(f"{name} ({int(np.sum(a != b))} of {a.size} entries)")
    return bad
