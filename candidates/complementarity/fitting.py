"""Fitting the complementarity model: :func:`fit` (inputs checked, cached on disk by content hash), the
components estimated from baskets and text, and the blend fitted on a validation split (package docstring).

The cache heals: an entry that cannot be used (cut short, bit-flipped, misshapen, another format version, a folder
in its place) is a miss with one RuntimeWarning naming it and what was wrong, refit and overwritten atomically;
temporaries of writers killed mid-write are swept whenever the cache is used."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import warnings
from pathlib import Path

import numpy as np

from bundlerl.candidates.complementarity.blend import NEVER_SEEN, PF, SEEN, default_blend, fit_blend
from bundlerl.candidates.complementarity.config import ComplementConfig, ComplementError
from bundlerl.candidates.complementarity.model import FORMAT_VERSION, ComplementModel
from bundlerl.candidates.complementarity.progress import FitProgress
from bundlerl.candidates.complementarity.top_lists import compute_top
from bundlerl.candidates.cooccurrence import (
    PairCounts,
    category_counts,
    category_log_lift,
    ppmi_embeddings,
    user_baskets,
)
from bundlerl.sim_data.baskets import Baskets
from bundlerl.sim_data.catalog import Catalog

__all__ = ["fit", "cache_key"]

_LOG = logging.getLogger("bundlerl.candidates.complementarity")


def _check_inputs(catalog: Catalog, baskets: Baskets, embeddings: np.ndarray) -> np.ndarray:
    if not isinstance(catalog, Catalog):
        raise ComplementError(f"catalog must be a bundlerl.sim_data.catalog.Catalog, got {type(catalog).__name__}")
    if not isinstance(baskets, Baskets):
        raise ComplementError(f"baskets must be a bundlerl.sim_data.baskets.Baskets, got {type(baskets).__name__}")
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


#: Version of the fitted values for given inputs: bump it when a change of the fitting code changes them, so
#: cached fits made by the old code are refit instead of silently reused. 2: the PPMI embeddings run on one torch
#: thread (before, their last digits depended on the calling process's thread count). 3: held-out pairs keep every
#: positive (negatives from widened strata) and a blend row without enough pairs takes the joint fit (issue 16).
FIT_VERSION = 3


def cache_key(catalog: Catalog, baskets: Baskets, embeddings: np.ndarray, config: ComplementConfig, seed: int) -> str:
    """Hex content hash of everything a fit depends on: baskets (and their users), categories, embeddings, config,
    seed, and the versions of the file format and of the fitting code."""
    h = hashlib.sha256()
    h.update(f"comp-v{FORMAT_VERSION}|fit-v{FIT_VERSION}|n={catalog.n_items}|C={catalog.n_categories}|seed={seed}|".encode())
    h.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    user = np.zeros(0, np.int64) if baskets.user is None else baskets.user  # user-level co-occurrence uses it
    for arr in (baskets.indptr, baskets.items, user, catalog.category, np.ascontiguousarray(embeddings, np.float32)):
        a = np.ascontiguousarray(arr)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.view(np.uint8).ravel())
    return h.hexdigest()[:24]


def _default_cache_dir() -> Path:
    from bundlerl.utils.cache import cache_root

    return cache_root() / "complementarity"


def fit(
    catalog: Catalog,
    baskets: Baskets,
    embeddings: np.ndarray,
    rng: np.random.Generator,
    config: ComplementConfig | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: bool | None = None,
) -> ComplementModel:
    """Estimate the complementarity model from ``baskets`` and item ``embeddings``.

    :param catalog: the catalogue (only ``category`` and ``n_items`` are used; never ``complement_graph``).
    :param baskets: historical baskets over this catalogue (``baskets.n_items == catalog.n_items``); their
        ``user`` ids, when given, add user-level co-occurrence (items one user bought across orders).
    :param embeddings: (n, d) float32 unit-norm item text embeddings.
    :param rng: draws one seed (always, hit or miss, so the caller's stream advances identically).
    :param config: hyper-parameters (default :class:`ComplementConfig`).
    :param cache_dir: where fitted models are cached (default ``<BUNDLERL_CACHE or ~/.cache/bundlerl>/complementarity``).
    :param use_cache: False = always refit and do not write the cache.
    :param progress: show a progress bar on stderr while fitting (not on a cache hit), its description naming the
        stage (:mod:`~bundlerl.candidates.complementarity.progress`); None: only for fits of more than a couple of
        seconds (``n_pairs * epochs >= 100,000`` or >= 20,000 items), and never under ``BUNDLERL_PROGRESS=0``.
    A second call with the same inputs, config and seed loads the cached file (``model.cache_hit`` is True); a
    cache file that cannot be read is warned about (RuntimeWarning), refit and overwritten, never an error.
    ``model.cache_path`` is the file (None when uncached).
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
        model = _read_cache(path)
        if model is not None:
            model.cache_hit = True
            model.cache_path = path
            return model
    model = _fit(catalog, baskets, emb, np.random.default_rng(seed), config, progress)
    model.cache_hit = False
    model.cache_path = path
    if path is not None:
        model.cache_path = _write_cache(model, path)
    return model


def _read_cache(path: Path) -> ComplementModel | None:
    """The model cached at ``path``, or None for a miss. An entry that is there but cannot be used (truncated,
    bit-flipped, misshapen, another format version, a folder in its place) is a miss too, with one RuntimeWarning
    naming the file and what was wrong: :func:`fit` refits and overwrites it, so the cache heals by itself.
    Temporaries of writers killed mid-write are removed first."""
    from bundlerl.utils.atomic import sweep_temporaries

    sweep_temporaries(path.parent)
    if not os.path.lexists(path):
        return None
    try:
        return ComplementModel.load(path)
    except ComplementError as err:
        why = err.__cause__ if err.__cause__ is not None else err
        if isinstance(why, FileNotFoundError):
            return None  # removed between the check and the read: a plain miss
        warnings.warn(
            f"complementarity cache {path} is unusable ({type(why).__name__}: {why}); refitting and overwriting it",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


def _write_cache(model: ComplementModel, path: Path) -> Path | None:
    """Save ``model`` to ``path`` atomically (replacing whatever is there, a folder included); returns the path, or
    None with a RuntimeWarning when the cache cannot be written (read-only or full disk): the fit is still good."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)  # a folder cannot be replaced by a file; at this name it is nobody's data but ours
        model.save(path)
        return path
    except OSError as err:
        warnings.warn(f"cannot write the complementarity cache {path} ({err}); the fit is used uncached", RuntimeWarning,
                      stacklevel=3)
        return None


def _components(catalog: Catalog, baskets: Baskets, emb: np.ndarray, rng: np.random.Generator, cfg: ComplementConfig,
                prog: FitProgress) -> dict:
    """Everything but the blend weights, estimated from ``baskets``: keyword arguments of ComplementModel."""
    with prog.stage("counting pairs"):
        counts = PairCounts.from_baskets(baskets, cfg.max_basket_size)
        if baskets.user is None:
            ucounts = counts  # no user ids: user level = basket level
        else:
            ucounts = PairCounts.from_baskets(user_baskets(baskets, cfg.max_user_items))
        pair, single = category_counts(baskets, catalog.category, catalog.n_categories)
        cat_ll = category_log_lift(pair, single, max(1, len(baskets)), cfg.category_alpha)
    with prog.stage("text model", prog.text_batches()) as st:
        tf = _train_text(counts, catalog, emb, cat_ll, rng, cfg, st)
    svd_b = svd_u = None
    if cfg.svd_rank > 0:
        with prog.stage("PPMI embeddings"):
            svd_b = ppmi_embeddings(counts, cfg.svd_rank, rng)
            svd_u = svd_b if ucounts is counts else ppmi_embeddings(ucounts, cfg.svd_rank, rng)
    return dict(
        config=cfg, category=catalog.category, emb16=emb.astype(np.float16), counts=counts, cat_log_lift=cat_ll,
        cat_single=single, u=tf.u, v=tf.v, bias=tf.bias, user_counts=ucounts, svd_basket=svd_b, svd_user=svd_u,
    )


def _train_text(counts: PairCounts, catalog: Catalog, emb: np.ndarray, cat_ll: np.ndarray, rng: np.random.Generator,
                cfg: ComplementConfig, st):
    """The text two-tower on ``counts``, one progress step per batch (``st``: the stage, named by epoch)."""
    from bundlerl.candidates.text_comp import train_text_model

    epoch_seen = [-1]

    def on_batch(epoch: int) -> None:
        if epoch != epoch_seen[0]:
            epoch_seen[0] = epoch
            st.detail(f"epoch {epoch + 1}/{cfg.epochs}")
        st.advance()

    return train_text_model(
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
        on_batch=on_batch if st.shown else None,
    )


def _fit(catalog: Catalog, baskets: Baskets, emb: np.ndarray, rng: np.random.Generator, cfg: ComplementConfig,
         progress: bool | None = None) -> ComplementModel:
    from bundlerl.candidates import comp_eval

    t0 = time.perf_counter()
    w, b = default_blend(cfg.kappa)
    blend_info = {"fitted": False}
    two_passes = cfg.blend_fraction > 0 and len(baskets) >= 20
    prog = FitProgress(cfg, catalog.n_items, two_passes, progress)
    try:
        if two_passes:
            # fit the blend on a validation split of the *training* baskets: components from the rest
            fit_part, val_part = baskets.split(cfg.blend_fraction, rng)
            try:
                pairs = comp_eval.heldout_pairs(fit_part, val_part, rng, cfg.blend_pairs)
            except ValueError:  # no pair in the validation baskets
                pairs = None
            if pairs is not None and pairs.pos_i.size >= cfg.min_blend_pairs:
                prog.begin_pass("validation split")
                inner = ComplementModel(**_components(catalog, fit_part, emb, rng, cfg, prog), build_top=False)
                with prog.stage("blend fit"):
                    w, b, blend_info = _blend(inner, pairs, cfg, w, b)
                blend_info["heldout_pairs"] = pairs.report
            else:
                prog.skip_pass()
                got = 0 if pairs is None else pairs.pos_i.size
                blend_info["why"] = (f"{got} validation pairs < min_blend_pairs={cfg.min_blend_pairs}: both rows keep "
                                     "the fixed L / (L + kappa)")
                _LOG.info("complementarity blend: %s", blend_info["why"])
        else:
            blend_info["why"] = (f"no validation split (blend_fraction={cfg.blend_fraction}, {len(baskets)} baskets): "
                                 "both rows keep the fixed L / (L + kappa)")
        prog.begin_pass("all baskets")
        model = ComplementModel(**_components(catalog, baskets, emb, rng, cfg, prog), blend_w=w, blend_b=b,
                                build_top=False)
        with prog.stage("top lists", prog.top_steps) as st:
            model.top_items, model.top_scores = compute_top(model, on_block=st.advance if st.shown else None)
    finally:
        prog.close()
    model.blend_info = blend_info
    model.fit_seconds = time.perf_counter() - t0
    return model


def _blend(inner: ComplementModel, pairs, cfg: ComplementConfig, w: np.ndarray, b: np.ndarray):
    """The blend rows fitted on the validation ``pairs`` scored by ``inner`` (components from the other baskets):
    ``(w, b, blend_info)``.

    A row whose subset has too few pairs (fewer than ``min_blend_pairs // 4`` positives or negatives) gets the
    *joint* fit over both subsets instead of the fixed default, when the pairs of both together are enough: every
    row is then a probability fitted to the same validation labels, so seen and never-seen pairs share one scale
    (a half-fitted model, one fitted row beside the fixed ``L / (L + kappa)``, ranked never-seen partners above real
    co-purchases). With too few pairs even together, both rows keep the fixed default (one formula, one scale).
    ``blend_info["rows"]`` says, per row, what was fitted and what fell back, and why; the fit logs it."""
    Fp = inner.pair_features(pairs.pos_i, pairs.pos_j)
    Fn = inner.pair_features(pairs.neg_i, pairs.neg_j)
    # "seen" as the scorer sees it: co-occurrence in the baskets the features were computed from
    sp, sn = Fp[:, PF.log1p_count] > 0, Fn[:, PF.log1p_count] > 0
    need = cfg.min_blend_pairs // 4
    blend_info = {"fitted": [False, False], "n_pos": [int((~sp).sum()), int(sp.sum())],
                  "n_neg": [int((~sn).sum()), int(sn.sum())], "rows": ["", ""]}
    own = {row: min(mp.sum(), mn.sum()) >= need for row, (mp, mn) in ((NEVER_SEEN, (~sp, ~sn)), (SEEN, (sp, sn)))}
    joint = None
    if not all(own.values()) and min(len(Fp), len(Fn)) >= need:
        joint = fit_blend(Fp, Fn, cfg.blend_l2, cfg.threads)
    for row, (mp, mn) in ((NEVER_SEEN, (~sp, ~sn)), (SEEN, (sp, sn))):
        name = "never-seen" if row == NEVER_SEEN else "seen"
        # each side needs enough pairs; the rarer side sets the evidence of a subset
        if own[row]:
            w[row], b[row] = fit_blend(Fp[mp], Fn[mn], cfg.blend_l2, cfg.threads)
            blend_info["fitted"][row] = True
            blend_info["rows"][row] = f"{name} pairs: fitted on {int(mp.sum())} positives / {int(mn.sum())} negatives"
        elif joint is not None:
            w[row], b[row] = joint
            blend_info["fitted"][row] = "joint"
            blend_info["rows"][row] = (f"{name} pairs: {int(mp.sum())} positives / {int(mn.sum())} negatives < {need}; "
                                       f"fell back to the joint fit over all {len(Fp)} validation pairs (one scale)")
        else:
            blend_info["rows"][row] = (f"{name} pairs: {int(mp.sum())} positives / {int(mn.sum())} negatives < {need}; "
                                       "fell back to the fixed L / (L + kappa)")
    if joint is None and not all(own.values()):  # a fixed row beside a fitted one would mix two scales
        w[:], b[:] = default_blend(cfg.kappa)
        blend_info["fitted"] = [False, False]
        blend_info["rows"] = [r if "fixed" in r else r.split(":")[0] + ": fitted, but set to the fixed L / (L + kappa) "
                              "too, so that both rows share one scale" for r in blend_info["rows"]]
    for r in blend_info["rows"]:
        _LOG.info("complementarity blend, %s", r)
    return w, b, blend_info
