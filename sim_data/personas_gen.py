"""Sample shoppers (:class:`~bundlerl.sim_data.personas.Personas`) for a catalogue.

    >>> personas = sample_personas(catalog, 1000, np.random.default_rng(0))

Each persona gets ``k`` coherent interest categories (a first one weighted by how much the
catalogue sells in it, then complements of what is already chosen per ``G``, categories of the
same department, or any category), needs high on those and low elsewhere, a lognormal budget
scaled to the prices of its interests, and a price sensitivity negatively correlated with the
budget. The observable ``texts`` name the interests, the main department, two style words and a
budget phrase ("budget-conscious", "premium ...") whose tier follows the hidden budget (with a
little noise), so the profile text carries real but imperfect signal.

Works on any Catalog: without ``complement_graph`` (real data) the complement step is skipped.
Vectorised over personas; the only loop is over the ``k`` interest slots.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bundlerl.sim_data.catalog import Catalog
from bundlerl.sim_data.personas import PersonaError, Personas
from bundlerl.utils.args import need_instance, shown
from bundlerl.utils.config_io import check_field_types

__all__ = ["PersonaConfig", "sample_personas", "interest_range", "BUDGET_PHRASES", "STYLE_WORDS"]

#: Budget phrases by tier (0 = low budget / high sensitivity, 1 = mid, 2 = high budget).
BUDGET_PHRASES: tuple[tuple[str, ...], ...] = (
    ("Budget-conscious and always hunting for deals.", "Budget-conscious; prefers affordable basics.",
     "Watches every penny and buys on sale.", "Budget-conscious shopper who compares prices."),
    ("Value-minded; will pay a bit more for quality.", "Balances price and quality.",
     "Value-minded, picks solid mid-range brands."),
    ("Premium buyer who prefers high-end brands.", "Premium taste; quality matters more than price.",
     "Happy to splurge on premium products.", "Premium shopper, buys the best in class."),
)

#: Generic style words (any catalogue).
STYLE_WORDS: tuple[str, ...] = (
    "practical", "minimalist", "curious", "organised", "eco-friendly", "classic", "trendy",
    "busy", "thoughtful", "spontaneous", "detail-oriented", "easygoing",
)

_S = np.dtypes.StringDType()


@dataclass(frozen=True)
class PersonaConfig:
    """How personas are drawn; validated on construction (ValueError on bad values)."""

    interests_per_persona: int = 3
    """k, number of interest categories per persona, >= 1 (and <= the number of categories)."""
    complement_interest_prob: float = 0.4
    """Chance that each further interest is drawn from the complements (per ``G``) of the interests
    chosen so far, in [0, 1]; ignored when the catalogue has no complement graph."""
    same_department_prob: float = 0.35
    """Chance that each further interest comes from the first interest's department, in [0, 1];
    the rest (1 - complement - department) is any category. The two probabilities sum to <= 1."""
    need_high: tuple[float, float] = (0.6, 1.0)
    """Uniform range of needs on interest categories, within [0, 1]."""
    need_low: tuple[float, float] = (0.0, 0.15)
    """Uniform range of needs on all other categories, within [0, 1]."""
    budget_scale: float = 2.5
    """Median budget = budget_scale x the mean price of the persona's interest categories, > 0."""
    budget_log_sigma: float = 0.6
    """Std-dev of log budget around that median, > 0."""
    price_sensitivity_log_mean: float = 0.0
    """Mean of log price sensitivity (β of SIMULATOR.md); 0 -> median β = 1."""
    price_sensitivity_log_sigma: float = 0.4
    """Std-dev of log β, > 0."""
    budget_sensitivity_corr: float = -0.6
    """Correlation of log budget and log β, in (-1, 1): richer shoppers mind price less."""
    budget_word_noise: float = 0.1
    """Chance that the budget phrase comes from a neighbouring tier instead of the true one, in [0, 1]."""

    def __post_init__(self) -> None:
        check_field_types(self, PersonaError)  # None / a wrong type named, before the range checks
        if not isinstance(self.interests_per_persona, (int, np.integer)) or self.interests_per_persona < 1:
            raise PersonaError(f"PersonaConfig.interests_per_persona={self.interests_per_persona!r}; give an integer >= 1")
        for name in ("complement_interest_prob", "same_department_prob", "budget_word_noise"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise PersonaError(f"PersonaConfig.{name}={v}; it must be in [0, 1]")
        if self.complement_interest_prob + self.same_department_prob > 1.0 + 1e-9:
            raise PersonaError(
                "PersonaConfig.complement_interest_prob + same_department_prob = "
                f"{self.complement_interest_prob + self.same_department_prob:.3f}; they must sum to <= 1"
            )
        for name in ("need_high", "need_low"):
            pair = getattr(self, name)
            if (not isinstance(pair, (tuple, list)) or len(pair) != 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair)):
                raise PersonaError(f"PersonaConfig.{name}={shown(pair)}; give a pair (low, high) of numbers in [0, 1]")
            lo, hi = pair
            if not 0.0 <= lo <= hi <= 1.0:
                raise PersonaError(f"PersonaConfig.{name}=({lo}, {hi}); need 0 <= low <= high <= 1")
        for name in ("budget_scale", "budget_log_sigma", "price_sensitivity_log_sigma"):
            if not getattr(self, name) > 0:
                raise PersonaError(f"PersonaConfig.{name}={getattr(self, name)}; it must be > 0")
        if not -1.0 < self.budget_sensitivity_corr < 1.0:
            raise PersonaError(f"PersonaConfig.budget_sensitivity_corr={self.budget_sensitivity_corr}; it must be in (-1, 1)")


def _draw_rows(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N,) int64: one column per row, drawn with probability proportional to ``weights`` (N, C) >= 0.

    Rows must have positive total (callers guarantee it).
    """
    cum = np.cumsum(weights, axis=1)
    u = rng.random(weights.shape[0]) * cum[:, -1]
    out = (cum <= u[:, None]).sum(axis=1)
    return np.minimum(out, weights.shape[1] - 1)


def _join(*parts) -> np.ndarray:
    out = parts[0]
    for p in parts[1:]:
        out = np.strings.add(out, p)
    return out


def interest_range(catalog: Catalog) -> tuple[int, int]:
    """(lowest, highest) ``interests_per_persona`` that ``catalog`` can serve: 1 and the number of categories it has
    at least one item in (a persona's interests are distinct categories with something to buy)."""
    return 1, int(np.count_nonzero(np.bincount(catalog.category, minlength=catalog.n_categories)))


def sample_personas(
    catalog: Catalog,
    n: int = 1000,
    rng: np.random.Generator | None = None,
    config: PersonaConfig | None = None,
) -> Personas:
    """Draw ``n`` personas for ``catalog``; every random draw comes from ``rng``.

    :param catalog: any Catalog; its ``complement_graph`` (if present) shapes the interests.
    :param n: number of personas, >= 1.
    :param rng: a ``numpy.random.Generator`` (required; the keyword default only allows passing it by name).
    :param config: :class:`PersonaConfig` (default ``PersonaConfig()``).
    Returns Personas with texts (n,), interests (n, k) int32 distinct per row, needs (n, C) float32,
    budget (n,) float32 > 0, price_sensitivity (n,) float32 > 0.
    Raises PersonaError (a BundlerlError) for n < 1, a missing rng, or k outside :func:`interest_range` (the message
    gives the range).
    """
    need_instance(catalog, "catalog", "sample_personas", Catalog, "a Catalog", error=PersonaError)
    need_instance(config, "config", "sample_personas", PersonaConfig, "a PersonaConfig", optional=True,
                  error=PersonaError)
    cfg = config if config is not None else PersonaConfig()
    if rng is None or not isinstance(rng, np.random.Generator):
        raise PersonaError("sample_personas needs rng=numpy.random.Generator (e.g. np.random.default_rng(seed))")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise PersonaError(f"n={n!r}; give the number of personas as an integer >= 1")
    C, k = catalog.n_categories, int(cfg.interests_per_persona)
    counts = np.bincount(catalog.category, minlength=C)
    pop = np.bincount(catalog.category, weights=catalog.popularity.astype(np.float64), minlength=C)
    sellable = counts > 0
    lo, hi = interest_range(catalog)
    if not lo <= k <= hi:
        raise PersonaError(f"PersonaConfig.interests_per_persona={k} but the catalogue sells in only {hi} "
                           f"categories; give an integer in [{lo}, {hi}]")
    # base weight of a category: how much the catalogue sells there (square-rooted so that the
    # head does not swallow everything), zero where there is nothing to buy
    base = np.where(sellable, np.sqrt(pop / max(pop.sum(), 1e-12)) + 1e-3, 0.0)
    dept_of = catalog.category_department.astype(np.int64)
    G = catalog.complement_graph
    G = None if G is None else np.where(sellable[None, :], G.astype(np.float64), 0.0)

    interests = np.empty((n, k), dtype=np.int64)
    interests[:, 0] = _draw_rows(np.broadcast_to(base, (n, C)), rng)
    chosen = np.zeros((n, C), dtype=bool)
    chosen[np.arange(n), interests[:, 0]] = True
    p_comp = cfg.complement_interest_prob if G is not None else 0.0
    for s in range(1, k):
        mode = rng.random(n)
        w_any = np.where(chosen, 0.0, base[None, :])
        w_dept = np.where(dept_of[None, :] == dept_of[interests[:, 0]][:, None], w_any, 0.0)
        w = w_any
        if G is not None:
            w_comp = np.where(chosen, 0.0, G[interests[:, :s]].sum(axis=1))
            use_comp = (mode < p_comp) & (w_comp.sum(axis=1) > 0)
            w = np.where(use_comp[:, None], w_comp, w)
        else:
            use_comp = np.zeros(n, dtype=bool)
        use_dept = ~use_comp & (mode < p_comp + cfg.same_department_prob) & (w_dept.sum(axis=1) > 0)
        w = np.where(use_dept[:, None], w_dept, w)
        interests[:, s] = _draw_rows(w, rng)
        chosen[np.arange(n), interests[:, s]] = True

    needs = rng.uniform(*cfg.need_low, size=(n, C))
    needs[np.arange(n)[:, None], interests] = rng.uniform(*cfg.need_high, size=(n, k))

    # budget and price sensitivity: correlated lognormals; the budget scales with the interests' prices
    z_b = rng.standard_normal(n)
    z_s = cfg.budget_sensitivity_corr * z_b + np.sqrt(1 - cfg.budget_sensitivity_corr**2) * rng.standard_normal(n)
    interest_price = catalog.category_mean_price().astype(np.float64)[interests].mean(axis=1)
    budget = cfg.budget_scale * interest_price * np.exp(cfg.budget_log_sigma * z_b)
    beta = np.exp(cfg.price_sensitivity_log_mean + cfg.price_sensitivity_log_sigma * z_s)

    # ---------------------------------------------------------------- observable text
    tier = np.digitize(z_b, [-0.4307, 0.4307])  # standard-normal tertiles
    flip = rng.random(n) < cfg.budget_word_noise
    tier = np.where(flip, np.clip(tier + rng.choice([-1, 1], n), 0, 2), tier)
    flat = [p for t in BUDGET_PHRASES for p in t]
    t_off = np.cumsum([0] + [len(t) for t in BUDGET_PHRASES])
    t_len = np.diff(t_off)
    phrase = np.array(flat, dtype=_S)[t_off[tier] + np.floor(rng.random(n) * t_len[tier]).astype(np.int64)]

    styles = np.array(STYLE_WORDS, dtype=_S)
    s1 = rng.integers(0, styles.size, n)
    s2 = (s1 + rng.integers(1, styles.size, n)) % styles.size
    style1 = np.strings.upper(np.strings.slice(styles[s1], 0, 1))
    style1 = _join(style1, np.strings.slice(styles[s1], 1, None))
    cat_names = np.array(list(catalog.category_names), dtype=_S)
    dept_names = np.array(list(catalog.department_names), dtype=_S)
    names = cat_names[interests]  # (n, k)
    if k == 1:
        listed = names[:, 0]
    else:
        listed = names[:, 0]
        for s in range(1, k - 1):
            listed = _join(listed, ", ", names[:, s])
        listed = _join(listed, " and ", names[:, k - 1])
    dept_txt = dept_names[dept_of[interests[:, 0]]]
    form = rng.integers(0, 3, n)
    texts = np.where(
        form == 0, _join(style1, ", ", styles[s2], " shopper interested in ", listed, "; mostly shops ", dept_txt, ". ", phrase),
        np.where(
            form == 1, _join("Looking for ", listed, ". ", style1, " and ", styles[s2], ", a regular in ", dept_txt, ". ", phrase),
            _join(phrase, " ", style1, " ", styles[s2], " buyer of ", listed, " (", dept_txt, ")."),
        ),
    )
    return Personas(
        texts=texts.astype(object),
        interests=interests.astype(np.int32),
        needs=needs.astype(np.float32),
        budget=np.maximum(budget, 1e-3).astype(np.float32),
        price_sensitivity=beta.astype(np.float32),
    )
