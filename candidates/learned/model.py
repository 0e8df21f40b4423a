"""The fitted completion: :class:`CompletionModel` (scores, contributions, completions, top lists) and its files.

A pair (seed s, candidate j) gets the logit ``z = w_r . f(s, j)`` with ``f`` the signals of
:mod:`bundlerl.candidates.learned.signals` and ``r`` the seed's regime (:data:`UNSEEN` = s is in no basket, :data:`SEEN`),
and the probability ``p(s, j) = sigmoid(a_r z + b_r)`` that j completes a bundle holding s (:meth:`probability`): the
calibration ``(a_r, b_r)`` puts both regimes on one scale, so probabilities of seen and cold seeds (and of several
seeds of one bundle) can be compared and averaged. ``w_r * f`` is each signal's contribution to the logit
(:meth:`contributions`, the basis of "reasons").

The model is also a complementarity model for the bundle builder (``top_items`` / ``top_scores`` / ``score``:
``bundlerl.candidates.builder_config.ComplementModelLike``). Its :meth:`score` is the probability's lift over the
base rate ``p0`` (the share of candidates that complete their validation bundle) mapped to [0, 1) by the
complementarity model's fixed formula, ``L / (L + kappa)`` with ``L = p / p0``, ``kappa = 2``
(``cooccurrence.lift_to_unit``): the same order as ``p`` and one scale for every pair, spread over [0, 1) as the
builder's gains expect (raw probabilities of a few percent left the builder's ``w_comp`` term a thousandth of its
relevance term, and ties within 2e-5 everywhere).

Files: ``<path>`` is one ``.npz`` (arrays only, ``allow_pickle=False``) holding the statistics and a JSON ``meta``
(format version, config, weights, calibration, fit report); the text embeddings are the catalogue's and are
passed to :meth:`CompletionModel.load` (checked against the SHA-256 recorded at save time).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from bundlerl.candidates.cooccurrence import PairCounts
from bundlerl.candidates.learned.config import CompletionConfig, CompletionError
from bundlerl.candidates.learned.generation import generate
from bundlerl.candidates.learned.signals import SF, SIGNALS, Signals, check_embeddings
from bundlerl.utils.arrays import check_layout

__all__ = ["CompletionModel", "FORMAT_VERSION", "UNSEEN", "SEEN", "baseline_weights", "baseline_rows", "embeddings_sha"]

#: Bumped when the file layout or the meaning of a stored value changes (cached fits are then refit).
FORMAT_VERSION = 3
#: ``kappa`` of :meth:`CompletionModel.score` (``L / (L + kappa)``, as ``ComplementConfig.kappa``).
KAPPA = 2.0
#: Base rate used when the fit had no validation candidates to measure it on.
DEFAULT_BASE_RATE = 0.01
#: Weight rows: seeds in no training basket, seeds in some.
UNSEEN, SEEN = 0, 1
#: Weight of popularity in the co-occurrence baseline row: small enough that it only orders equal counts.
_TIE = 1e-7


def baseline_weights() -> np.ndarray:
    """(2, len(SIGNALS)) the baselines as weight rows: unseen seeds = text cosine; seen seeds = co-occurrence count
    with ties by popularity (``log1p_count + 1e-7 * log1p_popularity``, the same order as count + popularity tie-break)."""
    w = np.zeros((2, len(SIGNALS)))
    w[UNSEEN, SF.text_cos] = 1.0
    w[SEEN, SF.log1p_count] = 1.0
    w[SEEN, SF.log1p_popularity] = _TIE
    return w


def baseline_rows() -> dict[str, np.ndarray]:
    """The simple rows each regime may pick instead of a fitted one: the two baselines, ``"text cosine"`` and
    ``"co-occurrence count"`` (for a seed in no basket the latter ranks by popularity, as the co-occurrence baseline
    does), and ``"partner share"`` (``log_partner_share`` alone: co-occurrence weighted toward small baskets, ties by
    popularity; ``bundlerl.candidates.learned.signals``)."""
    w = baseline_weights()
    share = np.zeros(len(SIGNALS))
    share[SF.log_partner_share] = 1.0
    return {"text cosine": w[UNSEEN].copy(), "co-occurrence count": w[SEEN].copy(), "partner share": share}


def embeddings_sha(E: np.ndarray) -> str:
    """Hex SHA-256 of float32 embeddings (the check that a file is loaded with the catalogue it was fitted on)."""
    a = np.ascontiguousarray(E, np.float32)
    return hashlib.sha256(str(a.shape).encode() + a.view(np.uint8).ravel().tobytes()).hexdigest()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, np.float64)))


class CompletionModel:
    """A fitted completion over ``n`` items (build with ``bundlerl.candidates.learned.fit_completion`` or :meth:`load`).

    Attributes: ``config``; ``signals`` (statistics of all the given baskets); ``weights`` (2, len(SIGNALS)) float64;
    ``calibration`` (2, 2) float64 rows ``(a_r, b_r)``; ``base_rate`` (the validation share of candidates that are
    targets, the unit of :meth:`score`'s lift); ``top_items`` (n, T) int32 -1 padded / ``top_scores``
    (n, T) float32 best completions of each item; ``report`` (dict: what was fitted, what fell back, validation
    figures); ``complements`` optional (n, C) top lists of the complementarity model used as candidates;
    ``cache_hit`` / ``cache_path`` as for the complementarity fit.
    """

    def __init__(self, config: CompletionConfig, signals: Signals, weights: np.ndarray, calibration: np.ndarray,
                 report: dict, complements: np.ndarray | None = None, top_items: np.ndarray | None = None,
                 top_scores: np.ndarray | None = None, base_rate: float = DEFAULT_BASE_RATE) -> None:
        self.config = config
        self.signals = signals
        self.weights = np.asarray(weights, np.float64)
        self.calibration = np.asarray(calibration, np.float64)
        if self.weights.shape != (2, len(SIGNALS)) or self.calibration.shape != (2, 2):
            raise CompletionError(f"weights {self.weights.shape} / calibration {self.calibration.shape}; expected "
                                  f"(2, {len(SIGNALS)}) and (2, 2)")
        self.report = report
        if not (np.isfinite(base_rate) and 0.0 < base_rate < 1.0):
            raise CompletionError(f"base_rate={base_rate!r}; it must be a share in (0, 1)")
        self.base_rate = float(base_rate)
        self.complements = None if complements is None else np.asarray(complements, np.int32)
        self.n_items = signals.n_items
        self.cache_hit = False
        self.cache_path: Path | None = None
        if top_items is None:
            top_items, top_scores = self._top_lists()
        self.top_items = np.asarray(top_items, np.int32)
        self.top_scores = np.asarray(top_scores, np.float32)

    def __repr__(self) -> str:
        return f"CompletionModel(n_items={self.n_items}, n_baskets={self.signals.counts.n_baskets})"

    # ------------------------------------------------------------------ scoring
    def _check(self, x, name: str) -> np.ndarray:
        a = np.asarray(x)
        if a.size and not np.issubdtype(a.dtype, np.integer):
            raise CompletionError(f"{name} has dtype {a.dtype}; item positions must be integers")
        a = a.astype(np.int64).reshape(-1)
        bad = np.flatnonzero((a < 0) | (a >= self.n_items))
        if bad.size:
            raise CompletionError(f"{name}[{bad[0]}] = {a[bad[0]]} is outside [0, {self.n_items}); use catalogue positions")
        return a

    def regime(self, seeds) -> np.ndarray:
        """(m,) int64 weight row of each seed: :data:`SEEN` when it occurs in a basket, else :data:`UNSEEN`."""
        return self.signals.seen(self._check(seeds, "seeds")).astype(np.int64)

    def contributions(self, s, j) -> np.ndarray:
        """(m, len(SIGNALS)) float64: each signal's contribution ``w_r[k] * f_k(s, j)`` to the logit (sums to it)."""
        s, j = self._check(s, "s"), self._check(j, "j")
        return self.signals.features(s, j) * self.weights[self.regime(s)]

    def logits(self, s, j) -> np.ndarray:
        """(m,) float64 ranking logits ``w_r . f(s, j)`` (comparable among candidates of one seed)."""
        return self.contributions(s, j).sum(1)

    def score(self, i, j) -> np.ndarray:
        """(m,) float32 in [0, 1): the builder's scale, ``L / (L + KAPPA)`` with ``L = probability / base_rate``
        (module docstring); 0 for i == j. Raises :class:`CompletionError` as :meth:`probability`."""
        from bundlerl.candidates.cooccurrence import lift_to_unit

        return lift_to_unit(self.probability(i, j) / self.base_rate, KAPPA).astype(np.float32)

    def probability(self, i, j) -> np.ndarray:
        """(m,) float64 in [0, 1]: calibrated probability that ``j`` completes a bundle holding ``i``; 0 for i == j.

        Raises :class:`CompletionError` on positions outside the catalogue or unequal lengths."""
        i, j = self._check(i, "i"), self._check(j, "j")
        if i.shape != j.shape:
            raise CompletionError(f"i has {i.size} entries and j has {j.size}; pass two equal-length arrays")
        r = self.regime(i)
        z = (self.signals.features(i, j) * self.weights[r]).sum(1)
        a, b = self.calibration[r, 0], self.calibration[r, 1]
        p = _sigmoid(a * z + b)
        p[i == j] = 0.0
        return p

    def candidates(self, seeds) -> np.ndarray:
        """(q, W) int64 generated candidates of each seed (``bundlerl.candidates.learned.generation.generate``)."""
        return generate(self.signals, self._check(seeds, "seeds"), self.config, self.complements)

    def score_rows(self, seeds) -> np.ndarray:
        """(q, n) float64 rows for ``bundlerl.sim_data.ranking_metrics.evaluate_ranking``: each seed's candidates get
        their logit, every other item -inf (never ranked)."""
        seeds = self._check(seeds, "seeds")
        cand = self.candidates(seeds)
        out = np.full((seeds.size, self.n_items), -np.inf)
        row, col = np.nonzero(cand >= 0)
        out[row, cand[row, col]] = self.logits(seeds[row], cand[row, col])
        return out

    def complete(self, seed_items, k: int, exclude=None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items that best complete a bundle holding ``seed_items``: the union of the seeds' candidates,
        ranked by the mean over seeds of :meth:`probability` (ties by position). Returns ``(items (<= k,) int64,
        probabilities (<= k,) float64)``; seeds and ``exclude`` are never returned."""
        seeds = np.unique(self._check(seed_items, "seed_items"))
        cand = np.unique(self.candidates(seeds))
        cand = cand[(cand >= 0) & ~np.isin(cand, seeds)]
        if exclude is not None:
            cand = cand[~np.isin(cand, self._check(exclude, "exclude"))]
        if cand.size == 0:
            return np.zeros(0, np.int64), np.zeros(0)
        s = self.probability(np.repeat(seeds, cand.size), np.tile(cand, seeds.size))
        s = s.reshape(seeds.size, cand.size).mean(0)
        order = np.lexsort((cand, -s))[:k]
        return cand[order], s[order]

    def explain(self, seed_items, k: int, exclude=None) -> list[dict]:
        """The completion of :meth:`complete` with the reason for each item (the basis of serving's "reasons").

        :returns: one dict per item, best first: ``item`` (catalogue position), ``score`` (mean calibrated
            probability over the seeds), ``contributions`` ({signal name: mean over seeds of ``w_r[k] * f_k``}, the
            logit's parts, every signal whose weight is non-zero), ``logit`` (their sum) and ``regimes`` (the
            seeds' regimes, ``"seen"`` / ``"unseen"``).
        """
        seeds = np.unique(self._check(seed_items, "seed_items"))
        items, scores = self.complete(seeds, k, exclude)
        if items.size == 0:
            return []
        ss, jj = np.repeat(seeds, items.size), np.tile(items, seeds.size)
        parts = self.contributions(ss, jj).reshape(seeds.size, items.size, -1).mean(0)
        regimes = ["seen" if r == SEEN else "unseen" for r in self.regime(seeds)]
        live = [k for k in range(len(SIGNALS)) if (self.weights[self.regime(seeds), k] != 0).any()]
        return [{"item": int(it), "score": float(sc), "logit": float(parts[r].sum()), "regimes": regimes,
                 "contributions": {SIGNALS[k]: float(parts[r, k]) for k in live}}
                for r, (it, sc) in enumerate(zip(items, scores))]

    def _top_lists(self, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """Each item's ``top_k`` best completions by :meth:`score`: candidates as :meth:`candidates` with the counts
        scaled by ``config.top_list_scale`` and text neighbours among the ``config.top_list_text_pool`` most popular
        items (cost: every item is a seed)."""
        cfg = self.config
        n, T = self.n_items, cfg.top_k
        items = np.full((n, T), -1, np.int32)
        scores = np.zeros((n, T), np.float32)
        pool = None
        if n > cfg.top_list_text_pool:
            pool = np.sort(np.lexsort((np.arange(n), -self.signals.popularity))[: cfg.top_list_text_pool])
        for lo in range(0, n, chunk):
            seeds = np.arange(lo, min(n, lo + chunk))
            cand = generate(self.signals, seeds, cfg, self.complements, text_pool=pool, scale=cfg.top_list_scale)
            valid = cand >= 0
            row, col = np.nonzero(valid)
            s = np.full(cand.shape, -np.inf)
            s[row, col] = self.score(seeds[row], cand[row, col])
            cand, s = cand[:, ::-1], s[:, ::-1]  # candidates ascending: a stable sort breaks ties by position
            order = np.argsort(-s, axis=1, kind="stable")[:, :T]
            top = np.take_along_axis(cand, order, 1)
            ts = np.take_along_axis(s, order, 1)
            ok = np.isfinite(ts) & (top >= 0)
            w = top.shape[1]
            items[seeds, :w] = np.where(ok, top, -1)
            scores[seeds, :w] = np.where(ok, ts, 0.0)
        return items, scores

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write the model to ``path`` (.npz, arrays + JSON meta) atomically; returns the path."""
        from bundlerl.utils.atomic import atomic_write

        path = Path(path)
        c, uc = self.signals.counts, self.signals.user_counts
        meta = {
            "format_version": FORMAT_VERSION, "config": self.config.to_dict(), "signals": list(SIGNALS),
            "weights": self.weights.tolist(), "calibration": self.calibration.tolist(), "report": self.report,
            "base_rate": self.base_rate,
            "n_items": self.n_items, "n_baskets": c.n_baskets, "n_users": uc.n_baskets, "alpha": self.signals.alpha,
            "partner_alpha": self.signals.partner_alpha, "small_counts_are_counts": self.signals.small_counts is c,
            "n_small": self.signals.small_counts.n_baskets,
            "user_counts_are_counts": uc is c,
            "embeddings_sha256": embeddings_sha(self.signals.embeddings),
        }
        arrays = dict(category=self.signals.category, log_price=self.signals.log_price, keys=c.keys, counts=c.counts,
                      item_counts=c.item_counts, cat_log_lift=self.signals.cat_log_lift, ppmi=self.signals.ppmi,
                      partner=self.signals.partner, partner_mass=self.signals.partner_mass,
                      top_items=self.top_items, top_scores=self.top_scores)
        if uc is not c:
            arrays.update(ukeys=uc.keys, ucounts=uc.counts, uitem_counts=uc.item_counts)
        sc = self.signals.small_counts
        if sc is not c:
            arrays.update(skeys=sc.keys, scounts=sc.counts, sitem_counts=sc.item_counts)
        if self.complements is not None:
            arrays["complements"] = self.complements
        with atomic_write(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, embeddings: np.ndarray) -> "CompletionModel":
        """Read a model written by :meth:`save`, with the catalogue's (n, d) unit ``embeddings``.

        Raises :class:`CompletionError` naming ``path`` for a file that cannot be used (missing, not an npz,
        truncated, a flipped bit, an array missing or misshapen, another :data:`FORMAT_VERSION`, other embeddings);
        its ``__cause__`` is the underlying problem."""
        path = Path(path)
        try:
            return cls._read(path, embeddings)
        except Exception as err:  # noqa: BLE001 - whatever fails while reading means "this file cannot be used"
            raise CompletionError(f"cannot read completion model {path}: {type(err).__name__}: {err}; "
                                  "refit or delete the file") from err

    @classmethod
    def _read(cls, path: Path, embeddings: np.ndarray) -> "CompletionModel":
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"format version {meta.get('format_version') if isinstance(meta, dict) else None}, "
                                 f"this code reads {FORMAT_VERSION}")
            a = {k: z[k] for k in z.files if k != "meta"}  # full reads: zipfile checks each member's CRC
        if meta["signals"] != list(SIGNALS):
            raise ValueError(f"signals {meta['signals']} differ from this code's {list(SIGNALS)}")
        n = int(meta["n_items"])
        E = check_embeddings(embeddings, n)
        if embeddings_sha(E) != meta["embeddings_sha256"]:
            raise ValueError("the embeddings differ from those the model was fitted with; pass the catalogue's own")
        _check_layout(a, n)
        counts = PairCounts(a["keys"], a["counts"], a["item_counts"], int(meta["n_baskets"]), n)
        ucounts = counts if meta["user_counts_are_counts"] else PairCounts(a["ukeys"], a["ucounts"], a["uitem_counts"],
                                                                           int(meta["n_users"]), n)
        scounts = counts if meta["small_counts_are_counts"] else PairCounts(a["skeys"], a["scounts"], a["sitem_counts"],
                                                                            int(meta["n_small"]), n)
        signals = Signals(E, a["category"], a["log_price"], counts, a["cat_log_lift"], a["ppmi"], float(meta["alpha"]),
                          ucounts, a["partner"], a["partner_mass"], float(meta["partner_alpha"]), scounts)
        return cls(CompletionConfig.from_dict(meta["config"]), signals, np.asarray(meta["weights"]),
                   np.asarray(meta["calibration"]), meta["report"], a.get("complements"), a["top_items"], a["top_scores"],
                   float(meta["base_rate"]))


_LAYOUT = {"category": ("i8", ("n",)), "log_price": ("f8", ("n",)), "keys": ("i8", ("P",)), "counts": ("i4", ("P",)),
           "item_counts": ("i8", ("n",)), "cat_log_lift": ("f4", ("C", "C")), "ppmi": ("f4", ("n", "r")),
           "partner": ("f8", ("P",)), "partner_mass": ("f8", ("n",)),
           "top_items": ("i4", ("n", "T")), "top_scores": ("f4", ("n", "T"))}


def _check_layout(a: dict, n: int) -> None:
    """Raise ValueError unless the arrays have :data:`_LAYOUT` and in-range ids."""
    sizes = check_layout(a, _LAYOUT, {"n": n})
    C = sizes["C"]
    if a["category"].size and (a["category"].min() < 0 or a["category"].max() >= C):
        raise ValueError(f"array 'category' has ids outside [0, {C})")
    t = a["top_items"]
    if t.size and (t.min() < -1 or t.max() >= n):
        raise ValueError(f"array 'top_items' has positions outside [-1, {n})")
    if "complements" in a and a["complements"].shape[0] != n:
        raise ValueError(f"array 'complements' has {a['complements'].shape[0]} rows for {n} items")
