"""Synthetic catalogues drawn from a :class:`~bundlerl.sim_data.taxonomy.Taxonomy`.

    >>> from bundlerl.sim_data.synthetic import CatalogConfig, generate_catalog
    >>> cat = generate_catalog(CatalogConfig(n_items=5000, seed=0))   # ~0.1 s, no encoding

Every item gets a category (spread evenly over all categories), a brand from its category's
brand list, a price inside its category's range (logit-normal in log-price, shifted by the
brand's price tier), a Zipf-like popularity, and a title / description assembled from the
category vocabulary ("Lumara ZX-450 24MP Mirrorless Camera, Black"). The true complement graph
``G = taxonomy.complement_matrix()`` goes on the catalogue as ``complement_graph`` (SIMULATOR
TRUTH). String assembly is vectorised with ``numpy.strings``; 100k items take about a second.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from bundlerl.sim_data.catalog import Catalog, CatalogError
from bundlerl.sim_data.taxonomy import Taxonomy, load_taxonomy
from bundlerl.utils.args import need_array, need_instance
from bundlerl.utils.config_io import check_field_types

if TYPE_CHECKING:  # pragma: no cover
    from bundlerl.encoders.base import TextEncoder

__all__ = ["CatalogConfig", "generate_catalog", "category_centroid_accuracy"]

_S = np.dtypes.StringDType()


@dataclass(frozen=True)
class CatalogConfig:
    """How to draw a synthetic catalogue; validated on construction (CatalogError on bad values)."""

    n_items: int = 5000
    """Number of items, >= 1. With n_items >= C every category gets at least one item."""
    seed: int = 0
    """Seed of the catalogue's own ``np.random.default_rng(seed)``; same seed -> identical catalogue."""
    price_noise: float = 1.0
    """Std-dev of the item-level noise on the logit of the price's position in its category's
    log-price range (0 = every item of a brand tier at the same price). > 0 spreads prices."""
    brand_tier_shift: float = 0.9
    """Shift of that logit per brand tier step (tiers -1 budget, 0 mid, +1 premium), >= 0."""
    zipf_exponent: float = 1.0
    """Popularity = (rank + 1) ** -zipf_exponent over a structured random ranking, > 0."""
    model_code_prob: float = 0.6
    """Probability that an item in a durable-goods category (price high >= 100) gets a model code
    in its title ("ZX-450"), in [0, 1]; makes titles distinct and realistic."""
    id_prefix: str = "SKU"
    """Item ids are ``f"{id_prefix}{row:07d}"``."""
    name: str = "synthetic"
    """Catalogue name (recorded in manifests)."""

    def __post_init__(self) -> None:
        check_field_types(self, CatalogError)  # None / a wrong type named, before the range checks
        if not isinstance(self.n_items, (int, np.integer)) or self.n_items < 1:
            raise CatalogError(f"CatalogConfig.n_items={self.n_items!r}; give an integer >= 1")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise CatalogError(f"CatalogConfig.seed={self.seed!r}; give a non-negative integer")
        if not self.price_noise > 0:
            raise CatalogError(f"CatalogConfig.price_noise={self.price_noise}; it must be > 0")
        if not self.brand_tier_shift >= 0:
            raise CatalogError(f"CatalogConfig.brand_tier_shift={self.brand_tier_shift}; it must be >= 0")
        if not self.zipf_exponent > 0:
            raise CatalogError(f"CatalogConfig.zipf_exponent={self.zipf_exponent}; it must be > 0")
        if not 0 <= self.model_code_prob <= 1:
            raise CatalogError(f"CatalogConfig.model_code_prob={self.model_code_prob}; it must be in [0, 1]")
        if not self.id_prefix.strip():
            raise CatalogError("CatalogConfig.id_prefix is empty; give a prefix such as 'SKU'")


def _vocab(tax: Taxonomy, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flattened per-category vocabulary: (values StringDType, offset (C,), count (C,)).

    A category with an empty list gets one empty-string entry, so every draw is defined.
    """
    values: list[str] = []
    offset = np.zeros(tax.n_categories, dtype=np.int64)
    count = np.zeros(tax.n_categories, dtype=np.int64)
    for c, spec in enumerate(tax.categories):
        if key == "brands":
            vals = list(spec.brands)
        elif key == "product_types":
            vals = list(spec.product_types)
        else:
            vals = list(spec.attributes.get(key, ()))
        vals = vals or [""]
        offset[c] = len(values)
        count[c] = len(vals)
        values.extend(vals)
    return np.array(values, dtype=_S), offset, count


def _pick(rng: np.random.Generator, cat: np.ndarray, offset: np.ndarray, count: np.ndarray) -> np.ndarray:
    """(n,) int64 positions into a flattened vocabulary: uniform within each item's category list."""
    return offset[cat] + np.floor(rng.random(cat.size) * count[cat]).astype(np.int64)


def _join(*parts: np.ndarray | str) -> np.ndarray:
    out = parts[0]
    for p in parts[1:]:
        out = np.strings.add(out, p)
    return out


def generate_catalog(config: CatalogConfig | None = None, taxonomy: Taxonomy | None = None) -> Catalog:
    """Draw a synthetic :class:`Catalog` from ``taxonomy`` (default: the built-in general store).

    Deterministic: all draws come from ``np.random.default_rng(config.seed)``.
    Returns a Catalog with ``n_items`` rows: ids ``SKU0000000..``, titles, descriptions, brand,
    price (float32, inside the category's (low, high) range), popularity (float32 > 0, Zipf-like),
    all C taxonomy categories (each used once n_items >= C), and ``complement_graph`` = the
    taxonomy's (C, C) G. No embeddings (encode ``catalog.item_texts()`` and use ``with_embeddings``).
    """
    cfg = config if config is not None else CatalogConfig()
    need_instance(cfg, "config", "generate_catalog", CatalogConfig, "a CatalogConfig", error=CatalogError)
    need_instance(taxonomy, "taxonomy", "generate_catalog", Taxonomy, "a Taxonomy (load_taxonomy)", optional=True,
                  error=CatalogError)
    tax = taxonomy if taxonomy is not None else load_taxonomy()
    rng = np.random.default_rng(cfg.seed)
    n, C = int(cfg.n_items), tax.n_categories

    # categories: an even spread over all categories, in random order
    cat = rng.permutation(np.arange(n) % C if n >= C else rng.choice(C, n, replace=False)).astype(np.int64)
    dept = tax.category_department()[cat]

    brand_v, brand_o, brand_n = _vocab(tax, "brands")
    b_idx = _pick(rng, cat, brand_o, brand_n)
    # a price tier per (category, brand) slot: -1 budget, 0 mid-range, +1 premium
    tier = rng.integers(-1, 2, size=brand_v.size)
    # prices: logit-normal position inside the category's log-price range, shifted by brand tier
    ranges = tax.price_ranges()
    lo, hi = np.log(ranges[cat, 0]), np.log(ranges[cat, 1])
    z = cfg.brand_tier_shift * tier[b_idx] + cfg.price_noise * rng.standard_normal(n)
    u = 1.0 / (1.0 + np.exp(-z))
    raw = np.exp(lo + u * (hi - lo))
    # retail-style endings (.99 / .49 / whole) while staying inside (low, high)
    ending = np.array([0.99, 0.49, 0.0])[rng.integers(0, 3, n)]
    price = np.floor(raw) + ending
    price = np.where((price < ranges[cat, 0]) | (price > ranges[cat, 1]) | (price <= 0), np.round(raw, 2), price)
    price = np.clip(price, ranges[cat, 0], ranges[cat, 1]).astype(np.float32)

    # popularity: Zipf over a ranking that favours popular categories, big brands and lower prices
    cat_effect = rng.normal(0.0, 0.7, C)[cat]
    brand_effect = rng.normal(0.0, 0.5, brand_v.size)[b_idx]
    price_effect = -0.5 * (u - 0.5)
    score = cat_effect + brand_effect + price_effect + rng.gumbel(size=n)
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(-score, kind="stable")] = np.arange(n)
    popularity = (1000.0 * (rank + 1.0) ** -cfg.zipf_exponent).astype(np.float32)

    # ---------------------------------------------------------------- text
    prod_v, prod_o, prod_n = _vocab(tax, "product_types")
    spec_v, spec_o, spec_n = _vocab(tax, "spec")
    size_v, size_o, size_n = _vocab(tax, "size")
    col_v, col_o, col_n = _vocab(tax, "colour")
    mat_v, mat_o, mat_n = _vocab(tax, "material")
    feat_v, feat_o, feat_n = _vocab(tax, "feature")
    brand = brand_v[b_idx]
    product = prod_v[_pick(rng, cat, prod_o, prod_n)]
    spec = spec_v[_pick(rng, cat, spec_o, spec_n)]
    size = size_v[_pick(rng, cat, size_o, size_n)]
    colour = col_v[_pick(rng, cat, col_o, col_n)]
    material = mat_v[_pick(rng, cat, mat_o, mat_n)]
    f1 = _pick(rng, cat, feat_o, feat_n)
    # second feature: a different entry of the same list (wraps within the category's list)
    step = 1 + np.floor(rng.random(n) * np.maximum(feat_n[cat] - 1, 1)).astype(np.int64)
    f2 = feat_o[cat] + (f1 - feat_o[cat] + step) % feat_n[cat]
    feature1, feature2 = feat_v[f1], feat_v[f2]

    # model codes for durable goods ("ZX-450"), so titles read like real listings and stay distinct
    letters = np.array(list("ABCDEFGHJKLMNPRSTVXZ"), dtype=_S)
    code = _join(
        letters[rng.integers(0, letters.size, n)],
        letters[rng.integers(0, letters.size, n)],
        "-",
        (rng.integers(1, 100, n) * 10 * rng.choice([1, 10], n)).astype(_S),
        " ",
    )
    durable = ranges[cat, 1] >= 100
    code = np.where(durable & (rng.random(n) < cfg.model_code_prob), code, np.array("", dtype=_S))
    brand_code = _join(brand, " ", code)

    has_col = colour != ""
    tail = np.where(has_col, colour, size)  # colour-less categories (food, toiletries) end with the size
    t = rng.integers(0, 5, n)
    titles = np.where(
        t == 0, _join(brand_code, spec, " ", product, ", ", tail),
        np.where(
            t == 1, _join(brand_code, product, " ", spec, " - ", size),
            np.where(
                t == 2, _join(spec, " ", product, " by ", brand, ", ", size),
                np.where(t == 3, _join(brand_code, product, ", ", spec, ", ", tail),
                         _join(brand_code, spec, " ", product, " (", size, ")")),
            ),
        ),
    )
    cat_names = np.array(tax.category_names, dtype=_S)
    dept_names = np.array(list(tax.departments), dtype=_S)
    made = np.where(material != "", _join(" Made of ", material, "."), np.array("", dtype=_S))
    col_txt = np.where(has_col, _join(" Colour: ", colour, "."), np.array("", dtype=_S))
    feat_txt = np.where(
        feature1 != "",
        _join(" ", np.strings.upper(np.strings.slice(feature1, 0, 1)), np.strings.slice(feature1, 1, None),
              np.where(feature2 != feature1, _join(", ", feature2), np.array("", dtype=_S)), "."),
        np.array("", dtype=_S),
    )
    descriptions = _join(
        spec, " ", np.strings.lower(product), " from ", brand, ", ", size, ".", feat_txt, made, col_txt,
        " Category: ", cat_names[cat], " (", dept_names[dept], ").",
    )
    ids = _join(cfg.id_prefix, np.strings.zfill(np.arange(n).astype(_S), 7))

    return Catalog(
        item_ids=ids.astype(object),
        titles=titles.astype(object),
        descriptions=descriptions.astype(object),
        category=cat.astype(np.int32),
        category_names=np.array(tax.category_names, dtype=object),
        category_department=tax.category_department(),
        department_names=np.array(list(tax.departments), dtype=object),
        brand=brand.astype(object),
        price=price,
        popularity=popularity,
        complement_graph=tax.complement_matrix(),
        name=cfg.name,
        meta={"generator": "bundlerl.sim_data.synthetic.generate_catalog", "config": asdict(cfg), "taxonomy": tax.name},
    )


def category_centroid_accuracy(
    catalog: Catalog,
    embeddings: np.ndarray | None = None,
    encoder: "TextEncoder | None" = None,
    leave_one_out: bool = True,
) -> float:
    """Share of items whose nearest category centroid (cosine) is their own category, in [0, 1].

    :param embeddings: (n, d) unit rows; default ``catalog.embeddings``, else ``encoder`` (default
        ``bundlerl.encoders.default_encoder()``, loaded lazily) applied to ``catalog.item_texts()``.
    :param leave_one_out: compare each item with its own category's centroid computed *without* it
        (honest for small categories); items alone in their category are then skipped.
    Raises CatalogError when embeddings do not match the catalogue or no item can be scored.
    """
    need_instance(catalog, "catalog", "category_centroid_accuracy", Catalog, "a Catalog", error=CatalogError)
    if not isinstance(leave_one_out, (bool, np.bool_)):
        raise CatalogError(f"category_centroid_accuracy(leave_one_out={leave_one_out!r}): leave_one_out must be True "
                           "or False")
    E = embeddings if embeddings is not None else catalog.embeddings
    if E is None:
        if encoder is None:
            from bundlerl.encoders import default_encoder

            encoder = default_encoder()
        E = encoder.encode(catalog.item_texts())
    E = need_array(E, "embeddings", "category_centroid_accuracy", np.float64, error=CatalogError)
    if E.ndim != 2 or E.shape[0] != catalog.n_items:
        raise CatalogError(f"embeddings have shape {E.shape}; expected ({catalog.n_items}, d)")
    cat = catalog.category.astype(np.int64)
    C = catalog.n_categories
    S = np.zeros((C, E.shape[1]))
    np.add.at(S, cat, E)
    counts = np.bincount(cat, minlength=C)
    norms = np.linalg.norm(S, axis=1)
    Sn = np.divide(S, norms[:, None], out=np.zeros_like(S), where=norms[:, None] > 0)
    sims = E @ Sn.T  # (n, C) cosine to each (plain) centroid direction
    sims[:, counts == 0] = -np.inf
    rows = np.arange(catalog.n_items)
    keep = np.ones(catalog.n_items, dtype=bool)
    if leave_one_out:
        own = S[cat] - E  # own category's sum without the item
        own_norm = np.linalg.norm(own, axis=1)
        keep = counts[cat] > 1
        sims[rows, cat] = np.where(keep, np.einsum("ij,ij->i", E, own) / np.maximum(own_norm, 1e-12), -np.inf)
    if not keep.any():
        raise CatalogError("no category has two or more items; leave-one-out accuracy is undefined")
    hit = sims.argmax(axis=1) == cat
    return float(hit[keep].mean())
