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

__all__ = ["REASON_THRESHOLDS", "reasons_for"]

REASON_THRESHOLDS = {"cross_sell": 0.5, "history": 0.3, "profile": 0.2, "together": 0.3}


def reasons_for(art, items: np.ndarray, feats: np.ndarray, *, profile_vec: np.ndarray, has_text: bool,
                clicked: list[int], bought: list[int]) -> list[tuple[str, dict[str, float]]]:
    """(reason, scores) for each bundle of one user.

    :param art: ModelArtifacts. :param items: (m, K_max) catalogue positions, -1 padded. :param feats: (m, F) the
        bundles' features. :param profile_vec: (d,) the user's profile vector. :param has_text: profile text given.
    :param clicked, bought: catalogue positions of the user's clicked (and purchased) items, in event order.
    """
    cat, titles = art.catalog.category, art.catalog.titles
    names, emb = art.catalog.category_names, art.catalog.embeddings
    seeds = list(dict.fromkeys(reversed(bought)))[:3]
    out = []
    for row, f in zip(items, feats):
        members = row[row >= 0]
        scores = {"rel_profile": float(f[COL.rel_profile]), "rel_history": float(f[COL.rel_history]),
                  "mean_comp": float(f[COL.mean_comp])}
        reason = None
        if seeds and members.size:
            i = np.repeat(seeds, members.size)
            j = np.tile(members, len(seeds))
            comp = np.where(i == j, 0.0, art.comp.score(i, j))
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
