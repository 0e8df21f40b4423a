"""The fitted complementarity model: :class:`ComplementModel` (pair features, ``score``, top lists,
category-level scores) and its file format (``save`` / ``load``, :data:`FORMAT_VERSION`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from bundlerl.candidates.complementarity.blend import FEATURES, NEVER_SEEN, PF, SEEN, blend_probability, default_blend
from bundlerl.candidates.complementarity.config import ComplementConfig, ComplementError
from bundlerl.candidates.complementarity.top_lists import compute_top
from bundlerl.candidates.cooccurrence import (
    PairCounts,
    direction_factor,
    expected_counts,
    lift_to_unit,
    shrunk_lift,
    shrunk_log_lift,
)

__all__ = ["ComplementModel", "FORMAT_VERSION"]

#: Bumped when the fitted-model file layout or the fitting maths change (invalidates caches). 4: the fit report
#: (``blend_info``: what was fitted, what fell back) is saved in the meta.
FORMAT_VERSION = 4


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
    (C, C) float32 directed category-level comp, ``blend_w`` (2, len(FEATURES)) float64 and ``blend_b``
    (2,) float64 (the fitted blend; rows ``NEVER_SEEN`` and ``SEEN``: pairs co-occurring in no basket / some),
    ``fit_seconds`` (time the fit took; 0 unknown).
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
        *,
        user_counts: PairCounts | None = None,
        svd_basket: np.ndarray | None = None,
        svd_user: np.ndarray | None = None,
        blend_w: np.ndarray | None = None,
        blend_b: float | None = None,
        build_top: bool = True,
    ) -> None:
        self.config = config
        self.category = np.asarray(category, np.int64)
        self.emb16 = np.asarray(emb16, np.float16)
        self.counts = counts
        self.user_counts = counts if user_counts is None else user_counts
        self.cat_log_lift = np.asarray(cat_log_lift, np.float32)
        self.cat_single = np.asarray(cat_single, np.int64)
        self.u = np.asarray(u, np.float32)
        self.v = np.asarray(v, np.float32)
        self.bias = float(bias)
        self.n_items = int(self.category.size)
        zero = np.zeros((self.n_items, 0), np.float32)
        self.svd_basket = zero if svd_basket is None else np.asarray(svd_basket, np.float32)
        self.svd_user = zero if svd_user is None else np.asarray(svd_user, np.float32)
        if blend_w is None:
            blend_w, blend_b = default_blend(config.kappa)
        self.blend_w = np.asarray(blend_w, np.float64)
        self.blend_b = np.asarray(blend_b, np.float64)
        if self.blend_w.shape != (2, len(FEATURES)) or self.blend_b.shape != (2,):
            raise ComplementError(
                f"blend_w has shape {self.blend_w.shape}, blend_b {self.blend_b.shape}; expected (2, {len(FEATURES)}) and (2,)"
            )
        self.fit_seconds = float(fit_seconds)
        self._n_i = counts.item_counts.astype(np.float64)
        self._B = max(1, counts.n_baskets)
        self._u_i = self.user_counts.item_counts.astype(np.float64)
        self._U = max(1, self.user_counts.n_baskets)
        if top_items is None and build_top:
            top_items, top_scores = compute_top(self)
        self.top_items = None if top_items is None else np.asarray(top_items, np.int32)
        self.top_scores = None if top_scores is None else np.asarray(top_scores, np.float32)

    def __repr__(self) -> str:
        return f"ComplementModel(n_items={self.n_items}, n_baskets={self.counts.n_baskets}, top_k={self.config.top_k})"

    # ------------------------------------------------------------------ scoring
    def _residual(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        r = np.einsum("mr,mr->m", self.u[i], self.v[j]) + np.float32(self.bias)
        return np.clip(r, -self.config.max_residual, self.config.max_residual)

    def _prior_log_lift(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """(m,) log prior lift ``logL_cat[c(i), c(j)] + clip(<u_i, v_j> + b_t)``."""
        return self.cat_log_lift[self.category[i], self.category[j]] + self._residual(i, j)

    def _substitutes(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        from bundlerl.candidates.text_comp import substitute_mask

        return substitute_mask(i, j, self.category, self.emb16, self.config.substitute_cosine)

    def pair_features(self, i, j) -> np.ndarray:
        """(m, len(FEATURES)) float64 blend features of pairs ``(i[k], j[k])`` (see the module docstring)."""
        i = _as_index(i, self.n_items, "i")
        j = _as_index(j, self.n_items, "j")
        cfg = self.config
        cl = self.cat_log_lift[self.category[i], self.category[j]].astype(np.float64)
        r = self._residual(i, j).astype(np.float64)
        n_ij = self.counts.lookup(i, j)
        E = expected_counts(self._n_i[i], self._n_i[j], self._B)
        u_ij = self.user_counts.lookup(i, j)
        Eu = expected_counts(self._u_i[i], self._u_i[j], self._U)
        F = np.empty((i.size, len(FEATURES)), np.float64)
        F[:, PF.log_lift] = np.log(shrunk_lift(n_ij, E, np.exp(cl + r), cfg.alpha))
        F[:, PF.log1p_count] = np.log1p(n_ij)
        F[:, PF.user_log_lift] = shrunk_log_lift(u_ij, Eu, cfg.user_alpha)
        F[:, PF.log1p_user_count] = np.log1p(u_ij)
        F[:, PF.category_log_lift] = cl
        F[:, PF.text_residual] = r
        F[:, PF.basket_svd_cos] = np.einsum("mr,mr->m", self.svd_basket[i], self.svd_basket[j])
        F[:, PF.user_svd_cos] = np.einsum("mr,mr->m", self.svd_user[i], self.svd_user[j])
        F[:, PF.log1p_n_i] = np.log1p(self._n_i[i])
        F[:, PF.log1p_n_j] = np.log1p(self._n_i[j])
        return F

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
        F = self.pair_features(i, j)
        seen = F[:, PF.log1p_count] > 0
        s = np.where(
            seen,
            blend_probability(F, self.blend_w[SEEN], self.blend_b[SEEN]),
            blend_probability(F, self.blend_w[NEVER_SEEN], self.blend_b[NEVER_SEEN]),
        )
        s *= direction_factor(self._n_i[i], self._n_i[j], cfg.beta, cfg.eta)
        s *= 1.0 - cfg.substitute_penalty * self._substitutes(i, j)
        s[i == j] = 0.0
        return np.clip(s, 0.0, 1.0).astype(np.float32)

    def top_complements(self, i) -> tuple[np.ndarray, np.ndarray]:
        """Precomputed best complements of each anchor: (items (m, C_top) int32 -1 padded, scores (m, C_top) float32)."""
        i = _as_index(i, self.n_items, "i")
        if self.top_items is None:
            self.top_items, self.top_scores = compute_top(self)
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

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write the model to ``path`` (.npz) atomically; returns the path."""
        from bundlerl.utils.atomic import atomic_write

        path = Path(path)
        if self.top_items is None:
            self.top_items, self.top_scores = compute_top(self)
        c, uc = self.counts, self.user_counts
        meta = {
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "bias": self.bias,
            "blend_b": self.blend_b.tolist(),
            "n_baskets": c.n_baskets,
            "n_users": uc.n_baskets,
            "n_items": c.n_items,
            "fit_seconds": self.fit_seconds,
            "blend_info": getattr(self, "blend_info", None),  # the fit report: what was fitted, what fell back
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
                    ukeys=uc.keys,
                    ucounts=uc.counts,
                    uitem_counts=uc.item_counts,
                    cat_log_lift=self.cat_log_lift,
                    cat_single=self.cat_single,
                    u=self.u,
                    v=self.v,
                    svd_basket=self.svd_basket,
                    svd_user=self.svd_user,
                    blend_w=self.blend_w,
                    top_items=self.top_items,
                    top_scores=self.top_scores,
                )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ComplementModel":
        """Read a model written by :meth:`save`.

        Raises :class:`ComplementError` naming ``path`` for a file that cannot be used: missing, not an npz,
        truncated, failing its zip CRC (a flipped bit), an array missing or of the wrong dtype / shape / range, or
        another :data:`FORMAT_VERSION`. The error's ``__cause__`` is the underlying problem.
        """
        path = Path(path)
        try:
            return cls._read(path)
        except Exception as err:  # noqa: BLE001 - whatever fails while reading means "this file cannot be used"
            raise ComplementError(
                f"cannot read complementarity model {path}: {type(err).__name__}: {err}; refit or delete the file"
            ) from err

    @classmethod
    def _read(cls, path: Path) -> "ComplementModel":
        # our own handle: np.load leaves the file it opened unclosed when the zip does not parse
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
                version = meta.get("format_version") if isinstance(meta, dict) else None
                raise ValueError(f"format version {version}, this code reads {FORMAT_VERSION}")
            a = {k: z[k] for k in z.files if k != "meta"}  # full reads: zipfile checks each member's CRC
        config = ComplementConfig.from_dict(meta["config"])
        n = int(meta["n_items"])
        _check_layout(a, n, config)
        counts = PairCounts(a["keys"], a["counts"], a["item_counts"], int(meta["n_baskets"]), n)
        ucounts = PairCounts(a["ukeys"], a["ucounts"], a["uitem_counts"], int(meta["n_users"]), n)
        model = cls(
            config,
            a["category"],
            a["emb16"],
            counts,
            a["cat_log_lift"],
            a["cat_single"],
            a["u"],
            a["v"],
            float(meta["bias"]),
            a["top_items"],
            a["top_scores"],
            float(meta.get("fit_seconds", 0.0)),
            user_counts=ucounts,
            svd_basket=a["svd_basket"],
            svd_user=a["svd_user"],
            blend_w=a["blend_w"],
            blend_b=np.asarray(meta["blend_b"], np.float64),
        )
        model.blend_info = meta.get("blend_info")  # files written before the report was saved: None
        return model


#: The arrays of a saved model: name -> (dtype, shape). A shape entry is a number or a letter bound on first sight
#: (``n`` items, ``d`` text dimension, ``P`` / ``Q`` stored basket / user pairs, ``C`` categories, ``s`` / ``t`` PPMI
#: ranks; ``r`` = ``config.rank``, ``T`` = ``config.top_k``).
_LAYOUT = {
    "category": ("i8", ("n",)), "emb16": ("f2", ("n", "d")),
    "keys": ("i8", ("P",)), "counts": ("i4", ("P",)), "item_counts": ("i8", ("n",)),
    "ukeys": ("i8", ("Q",)), "ucounts": ("i4", ("Q",)), "uitem_counts": ("i8", ("n",)),
    "cat_log_lift": ("f4", ("C", "C")), "cat_single": ("i8", ("C",)), "u": ("f4", ("n", "r")), "v": ("f4", ("n", "r")),
    "svd_basket": ("f4", ("n", "s")), "svd_user": ("f4", ("n", "t")), "blend_w": ("f8", (2, len(FEATURES))),
    "top_items": ("i4", ("n", "T")), "top_scores": ("f4", ("n", "T")),
}


def _check_layout(a: dict[str, np.ndarray], n: int, config: ComplementConfig) -> None:
    """Raise ValueError unless the arrays read from a file have :data:`_LAYOUT` and in-range item / category ids
    (a file written by another version or a damaged writer must not load as a model that fails later)."""
    if n < 1:
        raise ValueError(f"n_items = {n}")
    from bundlerl.utils.arrays import check_layout

    sizes = check_layout(a, _LAYOUT, {"n": n, "r": config.rank, "T": config.top_k})
    C = sizes["C"]
    for name, hi in (("category", C), ("top_items", n)):
        x = a[name]
        lo = -1 if name == "top_items" else 0
        if x.size and (x.min() < lo or x.max() >= hi):
            raise ValueError(f"array {name!r} holds values outside [{lo}, {hi})")
    for name in ("keys", "ukeys"):
        k = a[name]
        if k.size and (k[0] < 0 or k[-1] >= n * n or (np.diff(k) <= 0).any()):
            raise ValueError(f"array {name!r} is not a strictly increasing list of pair keys in [0, {n * n})")
