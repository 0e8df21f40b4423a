"""Fitting the learned completion: :func:`fit_completion` (inputs checked, cached on disk by content hash).

1. The given bundles / baskets are split (seeded) into a fitting part and a validation part
   (``validation_fraction``); the signals are estimated on the fitting part only, so a validation bundle's own
   co-occurrences never leak into its features.
2. Every validation bundle of 2 to ``max_query_items`` items gives queries (one of its items as the seed, the others
   as targets; up to ``max_queries``, sampled); each query's candidates are generated (``generation``) and labelled.
3. Per regime (seed seen / unseen in the fitting part), a **listwise softmax (ListNet-style) ranking objective**
   over each query's candidates, ``mean_q [n_targets log sum_c exp(z_c) - sum_targets z]`` with ``z = w . f``
   (top-heavy: the softmax is dominated by the highest-scored candidates; L2 ``1 / C`` on standardised weights;
   scipy's L-BFGS) is fitted on half the regime's queries for each ``C`` in ``c_grid`` and scored by NDCG@10 on the
   other half, beside the **simple rows** (the baselines text cosine and co-occurrence count, and the partner
   share; ``model.baseline_rows``). The best of them wins (a fitted row must beat each simple row on the held-out
   half, so the fit never does worse than them there); a fitted winner is refitted on all the regime's queries. A regime with fewer than ``min_queries``
   usable queries keeps its default baseline row (text cosine for unseen seeds, co-occurrence for seen ones); the
   report says so. (A pairwise logistic objective was tried first: it lost to the plain co-occurrence count on
   grocery baskets, 0.32 against 0.47 validation NDCG@10 on the synthetic store, as it weighs every pair alike.)
4. Calibration: per regime, a one-feature logistic regression of "is a target" on the logit gives ``(a_r, b_r)``,
   so both regimes' scores are probabilities on one scale (a regime without data borrows the other's; with no
   data at all, ``(1, 0)``, reported as uncalibrated). The share of validation candidates that are targets is the
   base rate of the builder's scale (``CompletionModel.score``).
5. The signals are re-estimated on all the given baskets and the top lists computed (``CompletionModel``).

The fit report (``model.report``) records the split, each regime's queries, the validation NDCG of every
candidate row, what was chosen and what fell back, the weights by signal name and the seconds taken; it is saved
with the model. The cache heals like the complementarity fit's: an unusable entry is a warned miss, refit and
overwritten atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import warnings
from pathlib import Path

import numpy as np

from bundlerl.candidates.learned.config import CompletionConfig, CompletionError
from bundlerl.candidates.learned.generation import generate
from bundlerl.candidates.learned.model import (
    DEFAULT_BASE_RATE,
    FORMAT_VERSION,
    SEEN,
    UNSEEN,
    CompletionModel,
    baseline_rows,
    baseline_weights,
)
from bundlerl.candidates.learned.signals import SIGNALS, Signals, check_embeddings
from bundlerl.sim_data.baskets import Baskets
from bundlerl.sim_data.catalog import Catalog

__all__ = ["fit_completion", "completion_cache_key", "ndcg_of_groups"]

#: Bump when a change of the fitting code changes the fitted values for the same inputs.
FIT_VERSION = 3
_REGIME_NAMES = {UNSEEN: "unseen seeds", SEEN: "seen seeds"}
_BASELINE_NAMES = {UNSEEN: "text cosine", SEEN: "co-occurrence count"}


def completion_cache_key(catalog: Catalog, baskets: Baskets, embeddings: np.ndarray, config: CompletionConfig,
                         seed: int, complements: np.ndarray | None) -> str:
    """Hex content hash of everything a fit depends on (baskets, categories, prices, embeddings, the complementarity
    top lists used as candidates, config, seed, format and fit versions)."""
    h = hashlib.sha256()
    h.update(f"completion-v{FORMAT_VERSION}|fit-v{FIT_VERSION}|n={catalog.n_items}|C={catalog.n_categories}|seed={seed}|".encode())
    h.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    comp = np.zeros(0, np.int32) if complements is None else complements
    for arr in (baskets.indptr, baskets.items, catalog.category, catalog.price, embeddings, comp):
        a = np.ascontiguousarray(arr)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.view(np.uint8).ravel())
    return h.hexdigest()[:24]


def fit_completion(catalog: Catalog, baskets: Baskets, embeddings: np.ndarray, rng: np.random.Generator,
                   config: CompletionConfig | None = None, *, complement_model=None,
                   cache_dir: str | os.PathLike | None = None, use_cache: bool = True) -> CompletionModel:
    """Fit the completion to ``baskets`` (bundles or baskets over ``catalog``; module docstring).

    :param catalog: the catalogue (``category``, ``price``, ``n_items``; never ``complement_graph``).
    :param baskets: bundles or baskets, ``baskets.n_items == catalog.n_items``.
    :param embeddings: (n, d) float32 unit text embeddings of the items.
    :param rng: draws one seed (always, hit or miss).
    :param complement_model: optional complementarity model whose ``top_items`` join the candidates.
    :param cache_dir: default ``<BUNDLERL_CACHE or ~/.cache/bundlerl>/completion``; ``use_cache`` False = always fit.
    :returns: :class:`CompletionModel` (``cache_hit``, ``cache_path``, ``report``).
    Raises :class:`CompletionError` on mismatched shapes or types.
    """
    config = config or CompletionConfig()
    if not isinstance(catalog, Catalog) or not isinstance(baskets, Baskets):
        raise CompletionError(f"catalog and baskets must be a Catalog and Baskets; got {type(catalog).__name__}, "
                              f"{type(baskets).__name__}")
    if baskets.n_items != catalog.n_items:
        raise CompletionError(f"baskets index {baskets.n_items} items but the catalogue has {catalog.n_items}; "
                              "build the baskets against this catalogue")
    if not isinstance(rng, np.random.Generator):
        raise CompletionError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    E = check_embeddings(embeddings, catalog.n_items)
    comp = None
    if complement_model is not None:
        comp = np.ascontiguousarray(np.asarray(complement_model.top_items)[:, : config.n_complements], np.int32)
    seed = int(rng.integers(0, 2**63 - 1))
    path = None
    if use_cache:
        from bundlerl.utils.cache import cache_root

        folder = Path(cache_dir) if cache_dir is not None else cache_root() / "completion"
        path = folder / f"completion-{completion_cache_key(catalog, baskets, E, config, seed, comp)}.npz"
        model = _read_cache(path, E)
        if model is not None:
            model.cache_hit, model.cache_path = True, path
            return model
    model = _fit(catalog, baskets, E, np.random.default_rng(seed), config, comp)
    if path is not None:
        model.cache_path = _write_cache(model, path)
    return model


def _read_cache(path: Path, E: np.ndarray) -> CompletionModel | None:
    from bundlerl.utils.atomic import sweep_temporaries

    sweep_temporaries(path.parent)
    if not os.path.lexists(path):
        return None
    try:
        return CompletionModel.load(path, E)
    except CompletionError as err:
        why = err.__cause__ if err.__cause__ is not None else err
        if isinstance(why, FileNotFoundError):
            return None
        warnings.warn(f"completion cache {path} is unusable ({type(why).__name__}: {why}); refitting and overwriting it",
                      RuntimeWarning, stacklevel=3)
        return None


def _write_cache(model: CompletionModel, path: Path) -> Path | None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        return model.save(path)
    except OSError as err:
        warnings.warn(f"cannot write the completion cache {path} ({err}); the fit is used uncached", RuntimeWarning,
                      stacklevel=3)
        return None


# ---------------------------------------------------------------------- the fit
def ndcg_of_groups(qid: np.ndarray, item: np.ndarray, z: np.ndarray, label: np.ndarray, n_targets: np.ndarray,
                   k: int = 10) -> np.ndarray:
    """(Q,) NDCG@k of each query's candidates ranked by ``z`` (ties by item position): rows ``qid`` (0..Q-1),
    ``item``, ``z``, ``label`` (is a target); ``n_targets`` (Q,) all the query's targets (the ideal DCG's count)."""
    Q = n_targets.size
    order = np.lexsort((item, -z, qid))
    q, lab = qid[order], label[order]
    start = np.searchsorted(q, np.arange(Q))
    rank = np.arange(q.size) - start[q]
    top = (rank < k) & lab
    dcg = np.zeros(Q)
    np.add.at(dcg, q[top], 1.0 / np.log2(rank[top] + 2.0))
    ideal = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))[np.clip(np.minimum(k, n_targets), 1, k) - 1]
    return dcg / ideal


def _queries(val: Baskets, cfg: CompletionConfig, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
    """Seeds and target arrays of up to ``max_queries`` (bundle, item) queries of the validation baskets of 2 to
    ``max_query_items`` items."""
    sizes = val.sizes
    ok = (sizes >= 2) & ((sizes <= cfg.max_query_items) if cfg.max_query_items else True)
    flat = np.flatnonzero(np.repeat(ok, sizes))  # positions in val.items of items of bundles with 2..max items
    if flat.size > cfg.max_queries:
        flat = np.sort(rng.choice(flat, cfg.max_queries, replace=False))
    owner = np.searchsorted(val.indptr, flat, side="right") - 1
    seeds = val.items[flat].astype(np.int64)
    targets = [np.setdiff1d(val.basket(b), [s]).astype(np.int64) for b, s in zip(owner, seeds)]
    return seeds, targets


def _softmax_loss(w: np.ndarray, Z: np.ndarray, label: np.ndarray, starts: np.ndarray, group: np.ndarray,
                  n_pos: np.ndarray, l2: float) -> tuple[float, np.ndarray]:
    """Listwise softmax cross-entropy over each query's candidates, and its gradient:
    ``mean_q [n_pos_q * logsumexp_c z_c - sum_{targets} z] + l2 / 2 * |w|^2`` with ``z = Z w``."""
    z = Z @ w
    m = np.maximum.reduceat(z, starts)
    e = np.exp(z - m[group])
    s = np.add.reduceat(e, starts)
    lse = m + np.log(s)
    Q = starts.size
    loss = float((n_pos * lse).sum() - z[label].sum()) / Q + 0.5 * l2 * float(w @ w)
    coef = n_pos[group] * e / s[group] - label
    return loss, Z.T @ coef / Q + l2 * w


def _fit_row(F: np.ndarray, qid: np.ndarray, label: np.ndarray, queries: np.ndarray, C: float,
             scale: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """Weights minimising the listwise softmax loss of the given queries' candidates (``qid`` sorted), L2 ``1 / C``
    on the standardised weights (features divided by ``scale``); full-batch L-BFGS (scipy), deterministic.

    Run to convergence (tight ``gtol`` / ``ftol``): the loss is strictly convex, so its minimum moves smoothly with the
    data, but where L-BFGS *stops* short of it does not: with scipy's default tolerances, embeddings moved by float32
    rounding (1e-7) moved the weights by up to 5e-5 and the small world's completion scores by up to 6e-6 (the
    golden DQN snapshot's inputs); converged, by ~1e-7 (benchmarks/HISTORY.md). ``start`` (raw units, e.g. the row
    fitted at the previous ``C``) is where L-BFGS starts (zeros by default): the same minimum, in fewer steps."""
    from scipy.optimize import minimize

    rows = np.flatnonzero(np.isin(qid, queries))
    q = qid[rows]
    starts = np.flatnonzero(np.r_[True, q[1:] != q[:-1]])
    group = np.cumsum(np.r_[False, q[1:] != q[:-1]])
    lab = label[rows]
    n_pos = np.add.reduceat(lab.astype(np.float64), starts)
    Z = F[rows] / scale
    with _one_blas_thread():
        w0 = np.zeros(F.shape[1]) if start is None else np.asarray(start, np.float64) * scale
        res = minimize(_softmax_loss, w0, args=(Z, lab, starts, group, n_pos, 1.0 / C), jac=True,
                       method="L-BFGS-B", options={"maxiter": 3000, "gtol": 1e-10, "ftol": 1e-15})
    return res.x / scale


def _fit_regime(r: int, F, qid, item, label, n_targets, cfg: CompletionConfig, rng) -> tuple[np.ndarray, dict]:
    base = baseline_weights()[r]
    info: dict = {"regime": _REGIME_NAMES[r], "baseline": _BASELINE_NAMES[r]}
    has_pos = np.zeros(n_targets.size, bool)
    has_pos[qid[label]] = True
    usable = np.flatnonzero(has_pos)
    info["queries"], info["queries_with_target_in_candidates"] = int(n_targets.size), int(usable.size)
    if usable.size < cfg.min_queries:
        info.update(fitted=False, chosen=_BASELINE_NAMES[r], why=f"{usable.size} usable validation queries < "
                    f"min_queries={cfg.min_queries}: kept the {_BASELINE_NAMES[r]} row")
        return base, info
    perm = rng.permutation(usable)
    A, B = np.sort(perm[: perm.size // 2]), np.sort(perm[perm.size // 2:])
    inB = np.isin(qid, B)
    scale = F.std(0)
    scale = np.where(scale > 1e-9, scale, 1.0)

    def val_ndcg(w):
        z = F[inB] @ w
        nd = ndcg_of_groups(np.searchsorted(B, qid[inB]), item[inB], z, label[inB], n_targets[B])
        return float(nd.mean())

    rows = dict(baseline_rows())
    scores = {k: val_ndcg(w) for k, w in rows.items()}
    w = None
    for C in cfg.c_grid:  # each C starts from the previous one's row (a path of nearby minima: fewer L-BFGS steps)
        w = _fit_row(F, qid, label, A, C, scale, start=w)
        rows[f"C={C:g}"], scores[f"C={C:g}"] = w, val_ndcg(w)
    # ties go to a baseline (the simpler row)
    best = max(scores, key=lambda k: (scores[k], not k.startswith("C=")))
    info["validation_ndcg10"] = {k: round(v, 4) for k, v in scores.items()}
    info["chosen"] = best
    if not best.startswith("C="):
        info.update(fitted=False, why=f"no fitted row beat the {best} row on held-out validation queries")
        return rows[best], info
    C = float(best.split("=")[1])
    w = _fit_row(F, qid, label, usable, C, scale, start=rows[best])
    info["fitted"] = True
    return w, info


def _calibrate(z: np.ndarray, label: np.ndarray) -> np.ndarray | None:
    """``(a, b)`` of ``P(target) = sigmoid(a z + b)`` (one-feature logistic regression), or None without both labels."""
    from sklearn.linear_model import LogisticRegression

    if z.size == 0 or label.all() or not label.any():
        return None
    lr = LogisticRegression(C=1e4, max_iter=500)
    with _one_blas_thread():
        lr.fit(z[:, None], label)
    a = float(lr.coef_[0, 0])
    return np.array([max(a, 1e-6), float(lr.intercept_[0])])  # a > 0: calibration never reverses the ranking


def _fit(catalog: Catalog, baskets: Baskets, E: np.ndarray, rng: np.random.Generator, cfg: CompletionConfig,
         comp: np.ndarray | None) -> CompletionModel:
    t0 = time.perf_counter()
    w = baseline_weights()
    calib = np.array([[1.0, 0.0], [1.0, 0.0]])
    report: dict = {"signals": list(SIGNALS), "n_baskets": len(baskets), "n_items": catalog.n_items}
    args = (catalog.category, catalog.n_categories, catalog.price)
    regimes_info = []
    val_ok = len(baskets) >= 10 and int((baskets.sizes >= 2).sum()) >= 5
    if val_ok:
        fit_part, val_part = baskets.split(cfg.validation_fraction, rng)
        sig = Signals.from_baskets(*args, fit_part, E, cfg, rng)
        seeds, targets = _queries(val_part, cfg, rng)
        cand = generate(sig, seeds, cfg, comp)
        row, col = np.nonzero(cand >= 0)
        item = cand[row, col]
        tgt_rows = np.repeat(np.arange(seeds.size), [t.size for t in targets])
        tkeys = tgt_rows * catalog.n_items + np.concatenate(targets) if targets else np.zeros(0, np.int64)
        label = np.isin(row * catalog.n_items + item, tkeys)
        F = sig.features(seeds[row], item)
        n_targets = np.array([t.size for t in targets])
        regime = sig.seen(seeds).astype(np.int64)
        report["validation"] = {"fit_baskets": len(fit_part), "validation_baskets": len(val_part),
                                "queries": int(seeds.size), "candidates_per_query": round(float(row.size / max(1, seeds.size)), 1),
                                "target_recall_of_candidates": round(float(label.sum() / max(1, n_targets.sum())), 4)}
        z_all = np.zeros(row.size)
        for r in (UNSEEN, SEEN):
            qs = np.flatnonzero(regime == r)
            m = np.isin(row, qs)
            qid = np.searchsorted(qs, row[m])
            w[r], info = _fit_regime(r, F[m], qid, item[m], label[m], n_targets[qs], cfg, rng)
            z_all[m] = F[m] @ w[r]
            regimes_info.append((r, m, info))
        for r, m, info in regimes_info:
            c = _calibrate(z_all[m], label[m]) if info["queries_with_target_in_candidates"] >= cfg.min_queries else None
            info["calibrated"] = "own" if c is not None else None
            if c is not None:
                calib[r] = c
        for r, m, info in regimes_info:
            if info["calibrated"] is None:
                other = regimes_info[1 - r]
                if other[2]["calibrated"] == "own":
                    # borrow the other regime's scale through a joint fit of this row's logits: one scale for both
                    c = _calibrate(z_all[m | other[1]], label[m | other[1]]) if m.any() else calib[1 - r]
                    calib[r] = c if c is not None else calib[1 - r]
                    info["calibrated"] = "borrowed from the other regime"
                else:
                    info["calibrated"] = "none (no validation data): (a, b) = (1, 0)"
        report["regimes"] = [info for _, _, info in regimes_info]
    else:
        report["regimes"] = [{"regime": _REGIME_NAMES[r], "baseline": _BASELINE_NAMES[r], "fitted": False,
                              "chosen": "baseline", "calibrated": "none (no validation data): (a, b) = (1, 0)",
                              "why": f"{len(baskets)} baskets ({int((baskets.sizes >= 2).sum())} with >= 2 items): "
                                     "too few to hold out validation bundles"} for r in (UNSEEN, SEEN)]
    report["weights"] = {_REGIME_NAMES[r]: {k: round(float(v), 6) for k, v in zip(SIGNALS, w[r]) if v != 0}
                         for r in (UNSEEN, SEEN)}
    report["calibration"] = {_REGIME_NAMES[r]: [round(float(x), 6) for x in calib[r]] for r in (UNSEEN, SEEN)}
    for info in report["regimes"]:
        warn = "fitted" if info.get("fitted") else f"baseline row ({info.get('why', '')})"
        _log(f"completion fit, {info['regime']}: {warn}; calibration {info['calibrated']}")
    sig_all = Signals.from_baskets(*args, baskets, E, cfg, rng)
    report["fit_seconds_before_top_lists"] = round(time.perf_counter() - t0, 2)
    base = float(label.mean()) if val_ok and label.size and 0 < label.mean() < 1 else DEFAULT_BASE_RATE
    report["base_rate"] = round(base, 6)
    model = CompletionModel(cfg, sig_all, w, calib, report, comp, base_rate=base)
    report["fit_seconds"] = round(time.perf_counter() - t0, 2)
    return model


def _one_blas_thread():
    """Context: every BLAS (scipy's own OpenBLAS included) on one thread, restored on exit. The fits' products are
    thin (rows x 13); with two threads on the shared 2-core VM each L-BFGS step of a logistic fit ran ~7x slower."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def _log(msg: str) -> None:
    import logging

    logging.getLogger("bundlerl.candidates.learned").info(msg)
