"""Single-bundle completion: the items that best complete a bundle a user started (``bundlerl complete``,
``BundleBuilder.complete_bundle``).

With the learned completion (the builder's model is a :class:`~bundlerl.candidates.learned.CompletionModel`, as in
the env and ``bundlerl complete``), candidates and scores are the fitted model's (:meth:`CompletionModel.complete`:
the mean over seeds of the calibrated probability that an item completes a bundle holding the seed); a ``profile``
adds ``w_rel * cos(profile, e_j)`` to the log of that probability (a product of the two "experts").

With a bare complementarity model (the old behaviour, kept for builders made on one and as the benchmarks'
"old defaults"), the score of a candidate item is the builder's marginal gain (``bundlerl.candidates.builder``,
step 3) against every seed at once, with exact embeddings: relevance to the user (or to the seeds), mean
symmetrised complementarity with the seeds, minus the worst substitution. Candidates come from the seeds'
complement lists and their text neighbours, so items without basket evidence can still complete a bundle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from bundlerl.candidates.builder_config import BuilderError, check_rows
from bundlerl.candidates.features import substitution

if TYPE_CHECKING:
    from bundlerl.candidates.builder import BundleBuilder

__all__ = ["complete_bundle"]


def complete_bundle(
    builder: "BundleBuilder",
    seed_items: Sequence[int] | np.ndarray,
    k: int,
    *,
    profile: np.ndarray | None = None,
    exclude: Sequence[int] | np.ndarray | None = None,
    n_text_neighbours: int = 50,
) -> np.ndarray:
    """Rank items that complete a bundle made of ``seed_items``, with ``builder``'s embeddings, item index,
    complementarity model and weights; works for any catalogue.

    With a learned completion model as the builder's model: its ranking (module docstring). Otherwise, candidates: the seeds' complement lists (full ``top_items`` width) plus the
    ``n_text_neighbours`` nearest items to the seeds' mean embedding. Each candidate j gets
    ``w_rel * cos(target, e_j) + w_comp * mean_s (comp(s->j) + comp(j->s)) / 2
    - w_sub * max_s sub(s, j)`` with target = ``profile`` if given, else the normalised mean
    of the seeds' embeddings.

    :param seed_items: catalogue positions already in the bundle (>= 1, distinct).
    :param k: number of items to return (>= 1).
    :param profile: optional (d,) unit vector of the user.
    :param exclude: positions never returned (e.g. bought items); seeds are always excluded.
    :returns: (k,) int64 positions, best first, -1 padded when fewer candidates exist.
    Raises :class:`~bundlerl.candidates.builder_config.BuilderError` on bad seeds, ``k`` or ``profile``.
    """
    cfg, n = builder.config, builder.n_items
    seeds = np.unique(np.asarray(seed_items, dtype=np.int64).reshape(-1))
    if seeds.size == 0 or seeds.min() < 0 or seeds.max() >= n:
        raise BuilderError(f"seed_items must be >= 1 positions in [0, {n}); got {np.asarray(seed_items).tolist()!r}")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise BuilderError(f"k={k!r}; ask for at least one item")
    from bundlerl.candidates.learned.model import CompletionModel

    if isinstance(builder.comp, CompletionModel):
        return _learned(builder, builder.comp, seeds, int(k), profile, exclude)
    if profile is not None:
        target = check_rows(np.asarray(profile).reshape(1, -1), 1, builder.dim, "profile")[0]
    else:
        m = builder.E[seeds].mean(0)
        target = (m / max(np.linalg.norm(m), 1e-12)).astype(np.float32)
    top = np.asarray(builder.comp.top_items)[seeds].reshape(-1)
    _, nn = builder.index.search(target[None, :], min(n_text_neighbours + seeds.size, n))
    cand = np.unique(np.concatenate([top[top >= 0], nn[0][nn[0] >= 0]]))
    drop = np.isin(cand, seeds)
    if exclude is not None:
        drop |= np.isin(cand, np.asarray(exclude, dtype=np.int64))
    cand = cand[~drop]
    out = np.full(k, -1, dtype=np.int64)
    if cand.size == 0:
        return out
    ss, cc = np.repeat(seeds, cand.size), np.tile(cand, seeds.size)
    comp = (np.asarray(builder.comp.score(ss, cc), np.float64) + np.asarray(builder.comp.score(cc, ss), np.float64)) / 2
    comp = comp.reshape(seeds.size, cand.size).mean(0)
    cos = builder.E[seeds] @ builder.E[cand].T
    sub = substitution(builder.category[seeds][:, None], builder.category[cand][None, :], cos).max(0)
    score = cfg.w_rel * (builder.E[cand] @ target) + cfg.w_comp * comp - cfg.w_sub * sub
    order = np.lexsort((cand, -score))[:k]  # ties broken by position: deterministic
    out[: order.size] = cand[order]
    return out


def _learned(builder: "BundleBuilder", model, seeds: np.ndarray, k: int, profile, exclude) -> np.ndarray:
    """:func:`complete_bundle` with a learned completion model (module docstring)."""
    out = np.full(k, -1, dtype=np.int64)
    if profile is None:
        items, _ = model.complete(seeds, k, exclude=exclude)
    else:
        target = check_rows(np.asarray(profile).reshape(1, -1), 1, builder.dim, "profile")[0]
        items, p = model.complete(seeds, model.n_items, exclude=exclude)  # every candidate, then re-ranked
        score = np.log(np.maximum(p, 1e-12)) + builder.config.w_rel * (builder.E[items] @ target)
        items = items[np.lexsort((items, -score))[:k]]
    out[: items.size] = items
    return out
