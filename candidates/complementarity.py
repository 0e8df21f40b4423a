"""The estimated, directed item complementarity model ``comp(i -> j) in [0, 1]`` (recommender side).

Estimated from baskets and item text only; it never reads ``Catalog.complement_graph``
(simulator truth). The score of an ordered pair is

    L0(i, j)  = exp(logL_cat[c(i), c(j)] + clip(<u_i, v_j> + b))       prior lift (category x text model)
    L(i, j)   = (n_ij + alpha * L0) / (E_ij + alpha),  E_ij = n_i n_j / B  empirical-Bayes shrunk lift
    comp(i->j)= L / (L + kappa) * min(1, (n_j + beta) / (n_i + beta)) ** eta * (1 - penalty * sub(i, j))

- ``logL_cat``: category -> category log-lift from baskets, shrunk toward independence
  (:func:`candidates.cooccurrence.category_log_lift`);
- ``<u_i, v_j> + b``: the text (+ item-id) two-tower of :mod:`candidates.text_comp`, trained on
  co-purchased pairs against popularity-matched negatives, substitutes excluded; items with no
  baskets get their factors from their text embedding alone;
- the evidence-dependent blend is the Bayesian posterior: the data weight is ``E_ij / (E_ij + alpha)``,
  so rare items lean on the prior and frequent pairs on their own counts (and two popular items
  never bought together get a lift below the prior: that absence is evidence);
- the direction factor makes the model asymmetric: ``i -> j`` is strong when buying ``i`` makes
  ``j`` likely (``P(j|i) >= P(i|j)``, i.e. ``j`` at least as common as ``i``);
- ``sub(i, j)`` = same category and text cosine >= ``substitute_cosine``: substitutes are not complements.

Usage::

    model = fit(catalog, baskets, embeddings, rng)        # cached on disk by content hash
    s = model.score(i, j)                                 # (m,) float32 in [0, 1]
    items, scores = model.top_complements(i)              # (m, C_top) int32 / float32
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from sim_data.baskets import Baskets
from sim_data.catalog import Catalog

from .cooccurrence import (
    PairCounts,
    category_counts,
    category_log_lift,
    direction_factor,
    expected_counts,
    lift_to_unit,
    shrunk_lift,
)

__all__ = ["ComplementConfig", "ComplementModel", "ComplementError", "fit", "cache_key", "FORMAT_VERSION"]

#: Bumped when the fitted-model file layout or the fitting maths change (invalidates caches).
FORMAT_VERSION = 1


class ComplementError(ValueError):
    """Bad input to the complementarity model; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class ComplementConfig:
    """Hyper-parameters of the complementarity model (validated on construction)."""

    alpha: float = 2.0
    """Prior strength of the item-pair shrinkage, in pseudo expected co-occurrences (> 0). Larger = lean
    more on the category/text prior for rare pairs."""
    category_alpha: float = 5.0
    """Prior strength (pseudo expected counts) shrinking the category lift toward 1 (> 0)."""
    kappa: float = 2.0
    """Lift mapped to 0.5 by ``L / (L + kappa)`` (> 0)."""
    beta: float = 5.0
    """Pseudo-count in the direction factor ``min(1, (n_j + beta) / (n_i + beta)) ** eta`` (> 0)."""
    eta: float = 0.25
    """Exponent of the direction factor (>= 0; 0 = symmetric model)."""
    substitute_cosine: float = 0.8
    """Same-category pairs with text cosine >= this are substitutes: excluded from text-model positives
    and penalised in the score. In (-1, 1]."""
    substitute_penalty: float = 1.0
    """Score multiplier for substitutes is ``1 - substitute_penalty``; in [0, 1] (1 = substitutes score 0)."""
    rank: int = 32
    """Rank of the text two-tower factors (>= 1)."""
    use_item_ids: bool = True
    """Learn per-item offsets for items seen in baskets (cold items use text only)."""
    n_pairs: int = 400_000
    """Positive co-purchase instances sampled to train the text model (as many negatives are drawn); >= 1."""
    epochs: int = 3
    """Passes over the sampled pairs (>= 1)."""
    batch_size: int = 16384
    """Mini-batch size of the text model (>= 1)."""
    lr: float = 0.01
    """Adam learning rate (> 0)."""
    weight_decay: float = 1e-5
    """L2 on the text projections (>= 0)."""
    id_weight_decay: float = 1e-3
    """L2 on the per-item offsets, per sample (>= 0)."""
    max_residual: float = 4.0
    """The text residual log-lift is clipped to [-max_residual, max_residual] (> 0)."""
    max_basket_size: int = 0
    """Baskets larger than this are left out of the pair counts (0 = keep all)."""
    top_k: int = 50
    """C_top: complements precomputed per item (>= 1)."""
    pool_size: int = 5_000
    """Candidate complements considered for the top lists: the ``pool_size`` items most frequent in baskets
    (all items when the catalogue is smaller or no basket holds any). >= 1."""
    chunk: int = 512
    """Anchors per block when computing the top lists (memory ~ chunk x pool x 8 bytes x a few)."""
    threads: int = 2
    """torch threads for training."""

    def __post_init__(self) -> None:
        pos = ("alpha", "category_alpha", "kappa", "beta", "lr", "max_residual")
        for name in pos:
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v > 0):
                raise ComplementError(f"ComplementConfig.{name}={v!r}; it must be a finite number > 0")
        for name in ("eta", "weight_decay", "id_weight_decay"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v >= 0):
                raise ComplementError(f"ComplementConfig.{name}={v!r}; it must be a finite number >= 0")
        if not -1.0 < self.substitute_cosine <= 1.0:
            raise ComplementError(f"ComplementConfig.substitute_cosine={self.substitute_cosine}; it must be in (-1, 1]")
        if not 0.0 <= self.substitute_penalty <= 1.0:
            raise ComplementError(f"ComplementConfig.substitute_penalty={self.substitute_penalty}; it must be in [0, 1]")
        for name in ("rank", "n_pairs", "epochs", "batch_size", "top_k", "pool_size", "chunk", "threads"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ComplementError(f"ComplementConfig.{name}={v!r}; it must be an int >= 1")
        if isinstance(self.max_basket_size, bool) or not isinstance(self.max_basket_size, (int, np.integer)) or self.max_basket_size < 0:
            raise ComplementError(f"ComplementConfig.max_basket_size={self.max_basket_size!r}; it must be an int >= 0")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ComplementConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ComplementError(f"unknown ComplementConfig fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


def _as_index(x, n: int, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ComplementError(f"{name} has shape {a.shape}; pass a 1-d int array of item positions")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ComplementError(f"{name} has dtype {a.dtype}; item positions must be integers")
    a = a.astype(np.int64, copy=False)
    bad = np.flatnonzero((a < 0) | (a >= n))
    if bad.size:
        raise ComplementError(f"{name}[{bad[0]}] = {a[bad[0]]} is outside [0, {n}); use catalogue row positions")
    return a


class ComplementModel:
    """A fitted complementarity model over ``n`` items (build with :func:`fit` or :meth:`load`).

    Attributes: ``config`` (:class:`ComplementConfig`), ``n_items``, ``top_items`` (n, C_top) int32
    (-1 padded, best first), ``top_scores`` (n, C_top) float32 (0 where padded), ``category_scores``
    (C, C) float32 directed category-level comp, ``fit_seconds`` (time the fit took; 0 unknown).
    """

    def __init__(
        self,
        config: ComplementConfig,
        category: np.ndarray,
        emb16: np.ndarray,
        counts: PairCounts,
        cat_log_lift: np.ndarray,
        cat_single: np.ndarray,
        u: np.ndarray,
        v: np.ndarray,
        bias: float,
        top_items: np.ndarray | None = None,
        top_scores: np.ndarray | None = None,
        fit_seconds: float = 0.0,
    ) -> None:
        self.config = config
        self.category = np.asarray(category, np.int64)
        self.emb16 = np.asarray(emb16, np.float16)
        self.counts = counts
        self.cat_log_lift = np.asarray(cat_log_lift, np.float32)
        self.cat_single = np.asarray(cat_single, np.int64)
        self.u = np.asarray(u, np.float32)
        self.v = np.asarray(v, np.float32)
        self.bias = float(bias)
        self.n_items = int(self.category.size)
        self.fit_seconds = float(fit_seconds)
        self._n_i = counts.item_counts.astype(np.float64)
        self._B = max(1, counts.n_baskets)
        if top_items is None:
            top_items, top_scores = self._compute_top()
        self.top_items = np.asarray(top_items, np.int32)
        self.top_scores = np.asarray(top_scores, np.float32)

    def __repr__(self) -> str:
        return f"ComplementModel(n_items={self.n_items}, n_baskets={self.counts.n_baskets}, top_k={self.config.top_k})"

    # ------------------------------------------------------------------ scoring
    def _prior_log_lift(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        r = np.einsum("mr,mr->m", self.u[i], self.v[j]) + np.float32(self.bias)
        r = np.clip(r, -self.config.max_residual, self.config.max_residual)
        return self.cat_log_lift[self.category[i], self.category[j]] + r

    def _substitutes(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        from .text_comp import substitute_mask

        return substitute_mask(i, j, self.category, self.emb16, self.config.substitute_cosine)

    def score(self, i, j) -> np.ndarray:
        """Directed complementarity ``comp(i[k] -> j[k])``: (m,) float32 in [0, 1].

        :param i: (m,) int anchor item positions in [0, n_items).
        :param j: (m,) int candidate complement positions, same length.
        ``comp(i -> i) = 0``. Raises :class:`ComplementError` on shape/range mistakes.
        """
        i = _as_index(i, self.n_items, "i")
        j = _as_index(j, self.n_items, "j")
        if i.shape != j.shape:
            raise ComplementError(f"i has {i.size} entries and j has {j.size}; pass two equal-length arrays")
        cfg = self.config
        n_ij = self.counts.lookup(i, j)
        L0 = np.exp(self._prior_log_lift(i, j).astype(np.float64))
        E = expected_counts(self._n_i[i], self._n_i[j], self._B)
        lift = shrunk_lift(n_ij, E, L0, cfg.alpha)
        s = lift_to_unit(lift, cfg.kappa) * direction_factor(self._n_i[i], self._n_i[j], cfg.beta, cfg.eta)
        s *= 1.0 - cfg.substitute_penalty * self._substitutes(i, j)
        s[i == j] = 0.0
        return np.clip(s, 0.0, 1.0).astype(np.float32)

    def top_complements(self, i) -> tuple[np.ndarray, np.ndarray]:
        """Precomputed best complements of each anchor: (items (m, C_top) int32 -1 padded, scores (m, C_top) float32)."""
        i = _as_index(i, self.n_items, "i")
        return self.top_items[i], self.top_scores[i]

    @property
    def category_scores(self) -> np.ndarray:
        """(C, C) float32 directed category-level comp: ``lift_to_unit(L_cat) * direction(category counts)``;
        the diagonal (same category = substitutes) is 0."""
        cfg = self.config
        L = np.exp(self.cat_log_lift.astype(np.float64))
        n = self.cat_single.astype(np.float64)
        out = lift_to_unit(L, cfg.kappa) * direction_factor(n[:, None], n[None, :], cfg.beta, cfg.eta)
        np.fill_diagonal(out, 0.0)
        return out.astype(np.float32)

    # ------------------------------------------------------------------ top lists
    def _compute_top(self) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        n, K = self.n_items, cfg.top_k
        nc = self._n_i
        if n <= cfg.pool_size or not (nc > 0).any():
            pool = np.arange(n)
        else:
            pool = np.argsort(-nc, kind="stable")[: cfg.pool_size]
            pool = np.sort(pool)
        m = pool.size
        k_pre = min(m, 2 * K)
        cand = np.full((n, k_pre), -1, np.int64)
        vJ = self.v[pool]
        cJ = self.category[pool]
        nJ = nc[pool]
        dirJ_base = nJ + cfg.beta
        for s in range(0, n, cfg.chunk):
            I = np.arange(s, min(n, s + cfg.chunk))
            r = self.u[I] @ vJ.T + np.float32(self.bias)
            np.clip(r, -cfg.max_residual, cfg.max_residual, out=r)
            r += self.cat_log_lift[self.category[I]][:, cJ]
            L0 = np.exp(r, out=r)  # float32 prior lift
            E = (nc[I][:, None] * (nJ[None, :] / self._B)).astype(np.float32)
            E += np.float32(cfg.alpha)
            # counts of co-occurring pairs inside this block (sparse correction)
            row, jj, cnt = self.counts.rows(I)
            col = np.searchsorted(pool, jj)
            ok = (col < m) & (pool[np.minimum(col, m - 1)] == jj)
            num = L0 * np.float32(cfg.alpha)
            num[row[ok], col[ok]] += cnt[ok].astype(np.float32)
            lift = num / E
            score = lift / (lift + np.float32(cfg.kappa))
            if cfg.eta > 0:
                d = np.minimum(1.0, dirJ_base[None, :] / (nc[I][:, None] + cfg.beta)).astype(np.float32)
                score *= d ** np.float32(cfg.eta)
            # self pairs out
            self_col = np.searchsorted(pool, I)
            hit = (self_col < m) & (pool[np.minimum(self_col, m - 1)] == I)
            score[np.flatnonzero(hit), self_col[hit]] = -1.0
            part = np.argpartition(-score, k_pre - 1, axis=1)[:, :k_pre] if k_pre < m else np.tile(np.arange(m), (I.size, 1))
            cand[I] = pool[part]
        # exact rescoring (adds the substitute penalty) and final sort
        ai = np.repeat(np.arange(n), k_pre)
        aj = cand.ravel()
        sc = self.score(ai, aj).reshape(n, k_pre)
        sc[cand == np.arange(n)[:, None]] = -1.0
        order = np.argsort(-sc, axis=1, kind="stable")[:, :K]
        items = np.take_along_axis(cand, order, 1).astype(np.int32)
        scores = np.take_along_axis(sc, order, 1).astype(np.float32)
        bad = scores <= 0
        items[bad] = -1
        scores[bad] = 0.0
        if items.shape[1] < K:
            pad = K - items.shape[1]
            items = np.pad(items, ((0, 0), (0, pad)), constant_values=-1)
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=0.0)
        return items, scores

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write the model to ``path`` (.npz) atomically; returns the path."""
        from sim_data.io import atomic_write

        path = Path(path)
        c = self.counts
        meta = {
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "bias": self.bias,
            "n_baskets": c.n_baskets,
            "n_items": c.n_items,
            "fit_seconds": self.fit_seconds,
        }
        with atomic_write(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(
                    f,
                    meta=np.array(json.dumps(meta)),
                    category=self.category,
                    emb16=self.emb16,
                    keys=c.keys,
                    counts=c.counts,
                    item_counts=c.item_counts,
                    cat_log_lift=self.cat_log_lift,
                    cat_single=self.cat_single,
                    u=self.u,
                    v=self.v,
                    top_items=self.top_items,
                    top_scores=self.top_scores,
                )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ComplementModel":
        """Read a model written by :meth:`save`; raises :class:`ComplementError` for missing, corrupt or
        other-version files."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                if meta.get("format_version") != FORMAT_VERSION:
                    raise ComplementError(
                        f"{path} has format version {meta.get('format_version')}, this code reads {FORMAT_VERSION}; refit"
                    )
                a = {k: z[k] for k in z.files if k != "meta"}
        except ComplementError:
            raise
        except (OSError, ValueError, KeyError) as err:
            raise ComplementError(f"cannot read complementarity model {path}: {err}; refit or delete the file") from err
        counts = PairCounts(a["keys"], a["counts"], a["item_counts"], int(meta["n_baskets"]), int(meta["n_items"]))
        return cls(
            ComplementConfig.from_dict(meta["config"]),
            a["category"],
            a["emb16"],
            counts,
            a["cat_log_lift"],
            a["cat_single"],
            a["u"],
            a["v"],
            meta["bias"],
            a["top_items"],
            a["top_scores"],
            meta.get("fit_seconds", 0.0),
        )


# ---------------------------------------------------------------------- fitting
def _check_inputs(catalog: Catalog, baskets: Baskets, embeddings: np.ndarray) -> np.ndarray:
    if not isinstance(catalog, Catalog):
        raise ComplementError(f"catalog must be a sim_data.catalog.Catalog, got {type(catalog).__name__}")
    if not isinstance(baskets, Baskets):
        raise ComplementError(f"baskets must be a sim_data.baskets.Baskets, got {type(baskets).__name__}")
    n = catalog.n_items
    if baskets.n_items != n:
        raise ComplementError(
            f"baskets index a catalogue of {baskets.n_items} items but the catalogue has {n}; "
            "build the baskets against this catalogue"
        )
    emb = np.asarray(embeddings)
    if emb.ndim != 2 or emb.shape[0] != n:
        raise ComplementError(f"embeddings have shape {emb.shape}; expected ({n}, d), one row per catalogue item")
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    if not np.isfinite(emb).all():
        raise ComplementError("embeddings contain NaN or inf; re-encode the catalogue")
    norms = np.linalg.norm(emb, axis=1)
    if np.abs(norms - 1).max() > 1e-3:
        raise ComplementError("embeddings must have unit-norm rows (as the encoders return them)")
    return emb


def cache_key(catalog: Catalog, baskets: Baskets, embeddings: np.ndarray, config: ComplementConfig, seed: int) -> str:
    """Hex content hash of everything a fit depends on: baskets, categories, embeddings, config, seed."""
    h = hashlib.sha256()
    h.update(f"comp-v{FORMAT_VERSION}|n={catalog.n_items}|C={catalog.n_categories}|seed={seed}|".encode())
    h.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    for arr in (baskets.indptr, baskets.items, catalog.category, np.ascontiguousarray(embeddings, np.float32)):
        a = np.ascontiguousarray(arr)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.view(np.uint8).ravel())
    return h.hexdigest()[:24]


def _default_cache_dir() -> Path:
    from encoders.cache import default_cache_root

    return default_cache_root() / "complementarity"


def fit(
    catalog: Catalog,
    baskets: Baskets,
    embeddings: np.ndarray,
    rng: np.random.Generator,
    config: ComplementConfig | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
) -> ComplementModel:
    """Estimate the complementarity model from ``baskets`` and item ``embeddings``.

    :param catalog: the catalogue (only ``category`` and ``n_items`` are used; never ``complement_graph``).
    :param baskets: historical baskets over this catalogue (``baskets.n_items == catalog.n_items``).
    :param embeddings: (n, d) float32 unit-norm item text embeddings.
    :param rng: draws one seed (always, hit or miss, so the caller's stream advances identically).
    :param config: hyper-parameters (default :class:`ComplementConfig`).
    :param cache_dir: where fitted models are cached (default ``<BUNDLERL_CACHE or ~/.cache/bundlerl>/complementarity``).
    :param use_cache: False = always refit and do not write the cache.
    A second call with the same inputs, config and seed loads the cached file (``model.cache_hit`` is True).
    Raises :class:`ComplementError` on mismatched shapes.
    """
    config = config or ComplementConfig()
    if not isinstance(rng, np.random.Generator):
        raise ComplementError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    emb = _check_inputs(catalog, baskets, embeddings)
    seed = int(rng.integers(0, 2**63 - 1))
    path = None
    if use_cache:
        folder = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
        path = folder / f"comp-{cache_key(catalog, baskets, emb, config, seed)}.npz"
        if path.exists():
            try:
                model = ComplementModel.load(path)
                model.cache_hit = True
                model.cache_path = path
                return model
            except ComplementError:
                pass  # corrupt or stale: refit and overwrite
    model = _fit(catalog, baskets, emb, np.random.default_rng(seed), config)
    model.cache_hit = False
    model.cache_path = path
    if path is not None:
        model.save(path)
    return model


def _fit(catalog: Catalog, baskets: Baskets, emb: np.ndarray, rng: np.random.Generator, cfg: ComplementConfig) -> ComplementModel:
    from .text_comp import train_text_model

    t0 = time.perf_counter()
    counts = PairCounts.from_baskets(baskets, cfg.max_basket_size)
    pair, single = category_counts(baskets, catalog.category, catalog.n_categories)
    cat_ll = category_log_lift(pair, single, max(1, len(baskets)), cfg.category_alpha)
    tf = train_text_model(
        counts,
        catalog.category,
        emb,
        cat_ll,
        rng,
        rank=cfg.rank,
        n_pairs=cfg.n_pairs,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        id_weight_decay=cfg.id_weight_decay,
        use_item_ids=cfg.use_item_ids,
        substitute_cosine=cfg.substitute_cosine,
        threads=cfg.threads,
    )
    model = ComplementModel(cfg, catalog.category, emb.astype(np.float16), counts, cat_ll, single, tf.u, tf.v, tf.bias)
    model.fit_seconds = time.perf_counter() - t0
    return model
