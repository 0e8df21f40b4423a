"""Compiled inner loops of the bundle builder (numba): greedy completion, MMR selection, and the
items and features of the picked bundles.

Both loops run a few steps (K_max, K) of tiny per-user work (C complements, <= 64 candidates); as
numpy passes over (users x sources x complements) arrays, mostly temporaries, they were ~20% of a
``build`` call (compiled: x1.22 users/s at 10k items, BENCHMARKS.md). Here each user is one pass
through registers and L1.

Contract: every kernel does, per user, exactly the arithmetic of the vectorised formulation it
replaced (the same float32 / float64 operations in the same order, the *first* maximum on ties,
no fast-math, so no fused multiply-add), which makes the builder's output bit-identical to it.
``tests/test_builder_kernels.py`` checks each kernel against that numpy reference
(``tests/_builder_ref.py``) on random inputs, ties included.

Compiled on first use and cached on disk next to this file (numba's ``cache=True``): the first
call in a fresh checkout compiles them (~3 s). numba keys its cache by this file's size and mtime, not by the
module's import name, and a cached kernel re-imports its module by name: so when the module moves or is renamed
(``candidates.kernels`` became ``bundlerl.candidates.kernels``), this file must change too, or checkouts holding
the old cache fail with "No module named ..." in new processes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["greedy_complete", "mmr_select", "popcount64", "selected_bundles"]

_NEG = np.float32(-np.inf)


@njit(cache=True, inline="always")
def popcount64(x):
    """Number of set bits of a uint64 (SWAR; numba has no popcount intrinsic)."""
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@njit(cache=True)
def greedy_complete(
    cand, cvalid, rel, w_rel, flat_src, self_row, comps_flat, subx_flat, alive0, size0, k_max,
    w_comp, w_sub, capped, price_sum0, price, disc, cap,
):
    """Greedy completion of N x S sources from their C complements (see ``BundleBuilder._complete``).

    Complement c of source (u, s) joins to maximise ``gain = float32(w_rel) * rel + float32(w_comp /
    (2 n_mem)) * comp_sum - float32(w_sub) * sub_max`` among the feasible ones (valid, not yet in, and,
    when ``capped``, ``(price_sum + price) * (1 - disc[size]) <= cap``); a source whose best
    complement is infeasible stops growing.

    :param cand: (N, S, C) int64 complement items (-1 none). :param cvalid: (N, S, C) bool, may join.
    :param rel: (N, S, C) float32 relevance to the query. :param w_rel, w_comp, w_sub: float64 weights.
    :param flat_src: (N, S) int64 offset of each source's (C+1, C+1) block in ``comps_flat`` /
        ``subx_flat`` (symmetrised comp, substitution); ``self_row``: offset of the source's own row
        (code C) in its block: it starts ``comp_sum`` / ``sub_max`` (the source is member or virtual
        member 1 of ``n_mem``).
    :param alive0: (N, S) bool, source valid. :param size0: members before the first pick (1 or 0).
    :param price_sum0: (N, S) float64 price of the members before the first pick; ``price`` (n,) float64;
        ``disc`` (K_max + 1,) float64 discount by size; ``cap`` (N,) float64 (used when ``capped``).
    :returns: codes (N, S, K_max) int64: slot k's complement code, -1 none (slots < size0 are left
        -1 for the caller); ok (N, S, K_max) bool: a member was added at slot k (slots >= size0).
    """
    N, S, C = cvalid.shape
    codes = np.full((N, S, k_max), -1, np.int64)
    ok = np.zeros((N, S, k_max), np.bool_)
    wr = np.float32(w_rel)
    ws = np.float32(w_sub)
    valid = np.empty(C, np.bool_)
    base = np.empty(C, np.float32)
    cp = np.empty(C, np.float64)
    cs = np.empty(C, np.float32)
    sm = np.empty(C, np.float32)
    for u in range(N):
        for s in range(S):
            if not alive0[u, s]:
                continue
            row = flat_src[u, s] + self_row
            for k in range(C):
                valid[k] = cvalid[u, s, k]
                base[k] = rel[u, s, k] * wr
                cs[k] = comps_flat[row + k]
                sm[k] = subx_flat[row + k]
                if capped:
                    cp[k] = price[max(cand[u, s, k], 0)]
            ps = price_sum0[u, s]
            n_mem = 1
            for size_new in range(size0 + 1, k_max + 1):
                wc = np.float32(w_comp / (2 * n_mem))
                best = _NEG
                c = -1
                for k in range(C):
                    if not valid[k]:
                        continue
                    if capped and not (ps + cp[k]) * (1 - disc[size_new]) <= cap[u]:
                        continue
                    g = base[k] + wc * cs[k]
                    if w_sub != 0:
                        g = g - ws * sm[k]
                    if c < 0 or g > best:
                        best = g
                        c = k
                if c < 0:
                    break  # nothing feasible: this source stops growing, later slots stay -1 / False
                codes[u, s, size_new - 1] = c
                ok[u, s, size_new - 1] = True
                if size_new == k_max:
                    break
                valid[c] = False
                row = flat_src[u, s] + c * (C + 1)
                for k in range(C):
                    cs[k] = cs[k] + comps_flat[row + k]
                    if w_sub != 0:
                        sm[k] = max(sm[k], subx_flat[row + k])
                n_mem += 1
                if capped:
                    ps = ps + cp[c]
    return codes, ok


@njit(cache=True)
def mmr_select(base, slot_ids, k_max, pen, n_cs, first_cs, K):
    """MMR selection of K of each user's M = S * K_max candidates (see ``BundleBuilder._build_rows``).

    Candidate m = the first ``m % k_max + 1`` slots of source ``m // k_max``; its item set is the union
    of their ``slot_ids`` (-1 = empty). Step t picks ``argmax_m base[m] - |set_m & used| * pen[m]`` (the
    first maximum), where ``used`` is the union of the sets picked so far; for t < ``n_cs`` a candidate
    m >= ``first_cs`` (cross-sell) is picked instead when any is available. A pick removes every
    candidate with the same item set. ``-inf`` in ``base`` = unavailable.

    :param base: (N, M) float32, ``lambda * score`` or -inf; modified in place.
    :param slot_ids: (N, M) int64 item of each slot, -1 = none; at most 64 distinct items per user.
    :param pen: (M,) float32 penalty per overlapping item.
    :returns: (N, K) int64 picked candidate indices, -1 where a user ran out.
    """
    N, M = base.shape
    sel = np.full((N, K), -1, np.int64)
    bit = np.zeros(M, np.uint64)
    masks = np.zeros(M, np.uint64)
    steps = min(K, M)
    one = np.uint64(1)
    for u in range(N):
        # item sets as 64-bit masks over the user's own distinct items, accumulated along each source
        n_bits = 0
        for m in range(M):
            it = slot_ids[u, m]
            b = np.uint64(0)
            if it >= 0:
                for p in range(m):
                    if slot_ids[u, p] == it:
                        b = bit[p]
                        break
                if b == 0:
                    b = one << np.uint64(n_bits)
                    n_bits += 1
            bit[m] = b
            masks[m] = b | masks[m - 1] if m % k_max else b
        used = np.uint64(0)
        for t in range(steps):
            best = _NEG
            j = 0
            for m in range(M):
                if base[u, m] == _NEG:
                    continue  # gone or unavailable: its value stays -inf
                v = base[u, m] - np.float32(popcount64(masks[m] & used)) * pen[m]
                if v > best:
                    best = v
                    j = m
            if t < n_cs:
                best_cs = _NEG
                jc = 0
                for m in range(first_cs, M):
                    if base[u, m] == _NEG:
                        continue
                    v = base[u, m] - np.float32(popcount64(masks[m] & used)) * pen[m]
                    if v > best_cs:
                        best_cs = v
                        jc = m
                if best_cs > _NEG:
                    j = jc
                    best = best_cs
            if not best > _NEG:
                break  # nothing left for this user: later picks stay -1
            sel[u, t] = j
            picked = masks[j]
            used |= picked
            for m in range(M):
                if masks[m] == picked:
                    base[u, m] = _NEG
    return sel


@njit(cache=True)
def selected_bundles(sel, slot_items, price, pop, shown_keys, n_items, rel_p, rel_h, mean_comp, max_sub, col, disc_b):
    """Items, sizes and features of the picked candidates (see ``BundleBuilder._build_rows``).

    Candidate ``m = sel[u, t]`` is the first ``m % K_max + 1`` slots of source ``m // K_max``.

    :param sel: (N, K) int64 picks, -1 = none. :param slot_items: (N, S, K_max) int64 slot items.
    :param price: (n,) float64; ``pop``: (n,) float32 popularity feature.
    :param shown_keys: sorted int64 keys ``row * n_items + item`` of the items shown to each user.
    :param rel_p, rel_h, mean_comp, max_sub: (N, M) float32 per-candidate features; ``rel_h`` may be
        (0, 0) = no history (0 everywhere).
    :param col: the feature columns, ``bundlerl.candidates.features.COL`` (a ``FeatureIndex``; an argument,
        not a global, so that numba's on-disk cache never holds a column number).
    :param disc_b: (K_max,) float64 discount of sizes 1..K_max.
    :returns: items (N, K, K_max) int32 (-1 padded), sizes (N, K) int8, features (N, K, F) float32 with
        the log_price column left 0, and the discounted price (N, K) float64 (its log is the caller's:
        numpy's ``log``, as before), 0 for no pick.
    Prefix means are float32 running sums divided by the size, as ``prefix_mean``; prices add in float64.
    """
    N, K = sel.shape
    k_max = slot_items.shape[2]
    items = np.full((N, K, k_max), -1, np.int32)
    sizes = np.zeros((N, K), np.int8)
    feats = np.zeros((N, K, len(col)), np.float32)
    disc_price = np.zeros((N, K), np.float64)
    has_h = rel_h.shape[0] > 0
    n_keys = shown_keys.size
    for u in range(N):
        for t in range(K):
            m = sel[u, t]
            if m < 0:
                continue
            s = m // k_max
            k = m % k_max
            ps = 0.0
            pop_sum = np.float32(0.0)
            new_sum = np.float32(0.0)
            for i in range(k + 1):
                it = slot_items[u, s, i]
                items[u, t, i] = it
                ps = ps + price[it]
                pop_sum = pop_sum + pop[it]
                # shown before? binary search of the user's key
                key = u * n_items + it
                lo, hi = 0, n_keys
                while lo < hi:
                    mid = (lo + hi) // 2
                    if shown_keys[mid] < key:
                        lo = mid + 1
                    else:
                        hi = mid
                if not (lo < n_keys and shown_keys[lo] == key):
                    new_sum = new_sum + np.float32(1.0)
            size = np.float32(k + 1)
            sizes[u, t] = k + 1
            disc_price[u, t] = ps * (1 - disc_b[k])
            feats[u, t, col.rel_profile] = rel_p[u, m]
            feats[u, t, col.rel_history] = rel_h[u, m] if has_h else np.float32(0.0)
            feats[u, t, col.mean_comp] = mean_comp[u, m]
            feats[u, t, col.max_sub] = max_sub[u, m]
            feats[u, t, col.size] = (k + 1) / k_max
            feats[u, t, col.popularity] = pop_sum / size
            feats[u, t, col.novelty] = new_sum / size
            feats[u, t, col.discount] = disc_b[k]
    return items, sizes, feats, disc_price
