"""A short reason for each served bundle, grounded in the scores that put it there.

The first rule that holds gives the sentence (thresholds on the candidate's own features, ``bundlerl.candidates.
features``, and the complementarity model's scores; ``REASON_THRESHOLDS``):

1. **cross-sell**: some item the user bought (the last three purchases) has estimated complementarity
   ``comp(bought -> item) >= cross_sell`` with an item of the bundle: "goes with the <bought title> you bought";
2. **history**: the user clicked something, the bundle's ``rel_history >= history`` and ``>= rel_profile``:
   "like the <title> you clicked" (the clicked item closest in embedding to the bundle);
3. **profile**: profile text was given and ``rel_profile >= profile``: "matches your interest in <category>"
   (the category of the bundle's item closest to the profile);
4. otherwise "popular in <category>" (the bundle's first item's category).

A bundle of two or more items whose ``mean_comp >= together`` adds "; these items go well together".
Each reason comes with the numbers it used (``scores``), so a client can show or audit them.
"""

from __future__ import annotations

import numpy as np

from bundlerl.candidates.features import COL

__all__ = ["REASON_THRESHOLDS", "reasons_for", "reason_seeds", "purchase_comp"]

REASON_THRESHOLDS = {"cross_sell": 0.5, "history": 0.3, "profile": 0.2, "together": 0.3}


def reason_seeds(bought: list[int]) -> list[int]:
    """The purchases a cross-sell reason may name: the last three distinct ones, most recent first."""
    return list(dict.fromkeys(reversed(bought)))[:3]


def purchase_comp(art, seeds: list[list[int]], items: list[np.ndarray]) -> list[np.ndarray | None]:
    """For each user u, ``comp(seed -> item)`` of its shown bundles' items: (m_u, K_max, len(seeds[u])) float64, 0
    for padding and for an item that is the seed; None for a user without seeds. One call of the complementarity
    model for every user of a batch (its per-call overhead dominated when it ran per bundle).

    :param seeds: per user, :func:`reason_seeds`. :param items: per user, (m_u, K_max) catalogue positions, -1 padded.
    """
    out: list[np.ndarray | None] = [None] * len(seeds)
    parts = []
    for u, (sd, it) in enumerate(zip(seeds, items)):
        if sd and it.size:
            s = np.asarray(sd, np.int64)
            full = np.broadcast_to(it[..., None], it.shape + (s.size,))
            parts.append((u, full, np.broadcast_to(s, full.shape)))
    oks = [(full >= 0) & (full != sd) for _, full, sd in parts]
    for (u, full, _) in parts:
        out[u] = np.zeros(full.shape, np.float64)
    if any(ok.any() for ok in oks):
        scores = art.comp.score(np.concatenate([sd[ok] for (_, _, sd), ok in zip(parts, oks)]),
                                np.concatenate([full[ok] for (_, full, _), ok in zip(parts, oks)]))
        at = 0
        for (u, _, _), ok in zip(parts, oks):
            n = int(ok.sum())
            out[u][ok] = scores[at:at + n]
            at += n
    return out


def reasons_for(art, items: np.ndarray, feats: np.ndarray, *, profile_vec: np.ndarray, has_text: bool,
                clicked: list[int], bought: list[int],
                comp_all: np.ndarray | None = None) -> list[tuple[str, dict[str, float]]]:
    """(reason, scores) for each bundle of one user.

    :param art: ModelArtifacts. :param items: (m, K_max) catalogue positions, -1 padded. :param feats: (m, F) the
        bundles' features. :param profile_vec: (d,) the user's profile vector. :param has_text: profile text given.
    :param clicked, bought: catalogue positions of the user's clicked (and purchased) items, in event order.
    """
    cat, titles = art.catalog.category, art.catalog.titles
    names, emb = art.catalog.category_names, art.catalog.embeddings
    seeds = reason_seeds(bought)
    if comp_all is None:
        comp_all = purchase_comp(art, [seeds], [items])[0]
    out = []
    for b, (row, f) in enumerate(zip(items, feats)):
        members = row[row >= 0]
        scores = {"rel_profile": float(f[COL.rel_profile]), "rel_history": float(f[COL.rel_history]),
                  "mean_comp": float(f[COL.mean_comp])}
        reason = None
        if seeds and members.size:
            i = np.repeat(seeds, members.size)
            comp = comp_all[b][row >= 0].T.reshape(-1)  # seed-major, as i
            best = int(np.argmax(comp))
            scores["comp_with_purchase"] = float(comp[best])
            if comp[best] >= REASON_THRESHOLDS["cross_sell"]:
                reason = f"goes with the {titles[i[best]]} you bought"
        if reason is None and clicked and scores["rel_history"] >= max(REASON_THRESHOLDS["history"],
                                                                          scores["rel_profile"]):
            sims = emb[np.asarray(clicked)] @ emb[members].T
            reason = f"like the {titles[clicked[int(np.argmax(sims.max(axis=1)))]]} you clicked"
        if reason is None and has_text and scores["rel_profile"] >= REASON_THRESHOLDS["profile"]:
            near = members[int(np.argmax(emb[members] @ profile_vec))]
            reason = f"matches your interest in {names[cat[near]]}"
        if reason is None:
            reason = f"popular in {names[cat[members[0]]]}" if members.size else "popular right now"
        if members.size >= 2 and scores["mean_comp"] >= REASON_THRESHOLDS["together"]:
            reason += "; these items go well together"
        out.append((reason, scores))
    return out
