"""Numpy references of the compiled builder loops (candidates/kernels.py), vectorised over users.

These are the formulations the kernels replaced, kept verbatim in arithmetic: the kernels must
match them bit for bit (tests/test_builder_kernels.py).
"""

from __future__ import annotations

import numpy as np


def greedy_complete_ref(
    cand, cvalid, rel, w_rel, flat_src, self_row, comps_flat, subx_flat, alive0, size0, k_max,
    w_comp, w_sub, capped, price_sum0, price, disc, cap,
):
    N, S, C = cvalid.shape
    cvalid = cvalid.copy()
    base = rel * np.float32(w_rel)
    flat = flat_src[..., None]
    ar = np.arange(C)
    comp_sum = np.take(comps_flat, flat + self_row + ar)
    sub_max = np.take(subx_flat, flat + self_row + ar)
    codes = np.full((N, S, k_max), -1, dtype=np.int64)
    ok = np.zeros((N, S, k_max), dtype=bool)
    price_sum = price_sum0
    cand_price = price[np.maximum(cand, 0)] if capped else None
    alive = alive0
    n_mem = 1
    neg = np.float32(-np.inf)
    for size_new in range(size0 + 1, k_max + 1):
        gain = base + np.float32(w_comp / (2 * n_mem)) * comp_sum
        if w_sub:
            gain -= np.float32(w_sub) * sub_max
        if capped:
            feas = cvalid & ((price_sum[..., None] + cand_price) * (1 - disc[size_new]) <= cap[:, None, None])
        else:
            feas = cvalid
        gain = np.where(feas, gain, neg)
        c = gain.argmax(-1)
        got = alive & np.take_along_axis(feas, c[..., None], -1)[..., 0]
        codes[..., size_new - 1] = np.where(got, c, -1)
        ok[..., size_new - 1] = got
        alive = got
        if size_new == k_max:
            break
        cvalid &= ar != c[..., None]
        row = flat + (c * (C + 1))[..., None] + ar
        comp_sum = comp_sum + np.take(comps_flat, row)
        if w_sub:
            sub_max = np.maximum(sub_max, np.take(subx_flat, row))
        n_mem += 1
        if capped:
            price_sum = price_sum + np.where(got, np.take_along_axis(cand_price, c[..., None], -1)[..., 0], 0.0)
    return codes, ok


def mmr_select_ref(base, slot_ids, k_max, pen, n_cs, first_cs, K):
    base = base.copy()
    N, M = base.shape
    S = M // k_max
    srt = np.argsort(slot_ids, axis=1, kind="stable")
    sv = np.take_along_axis(slot_ids, srt, 1)
    new = np.ones_like(sv, dtype=bool)
    new[:, 1:] = sv[:, 1:] != sv[:, :-1]
    local = np.empty_like(srt)
    np.put_along_axis(local, srt, np.cumsum(new, axis=1) - 1, 1)
    bits = np.where(slot_ids >= 0, np.left_shift(np.uint64(1), local.astype(np.uint64)), np.uint64(0))
    masks = np.bitwise_or.accumulate(bits.reshape(N, S, k_max), axis=-1).reshape(N, M)
    is_cs = np.arange(M) >= first_cs
    used = np.zeros(N, dtype=np.uint64)
    sel = np.full((N, K), -1, dtype=np.int64)
    rows = np.arange(N)
    neg = np.float32(-np.inf)
    for t in range(min(K, M)):
        val = base - np.bitwise_count(masks & used[:, None]) * pen
        j = val.argmax(1)
        if t < n_cs:
            vcs = np.where(is_cs, val, neg)
            jc = vcs.argmax(1)
            j = np.where(vcs[rows, jc] > neg, jc, j)
        got = val[rows, j] > neg
        if not got.any():
            break
        sel[:, t] = np.where(got, j, -1)
        pmask = np.where(got, masks[rows, j], np.uint64(0))
        used |= pmask
        base[(masks == pmask[:, None]) & got[:, None]] = neg
    return sel


def picked_bundles_ref(sel, slot_items, price, pop_feat, shown, rel_p, rel_h, mean_comp, max_sub, disc_b):
    """(items, sizes, mask, features) of the MMR picks, vectorised (the builder's former numpy code)."""
    from bundlerl.candidates.features import COL, prefix_mean

    N, K = sel.shape
    Km = slot_items.shape[2]
    M = rel_p.shape[1]
    rows = np.arange(N)
    valid = sel >= 0
    selc = np.maximum(sel, 0)
    s_sel, k_sel = selc // Km, selc % Km
    member = (np.arange(Km) <= k_sel[..., None]) & valid[..., None]
    sel_slots = slot_items[rows[:, None], s_sel]
    items = np.where(member, sel_slots, -1).astype(np.int32)
    sizes = np.where(valid, k_sel + 1, 0).astype(np.int8)
    feats = np.empty((N, K, len(COL)), np.float32)
    for name, x in {"rel_profile": rel_p, "rel_history": rel_h, "mean_comp": mean_comp, "max_sub": max_sub}.items():
        feats[..., getattr(COL, name)] = 0.0 if x is None else np.take_along_axis(x.reshape(N, M), selc, 1)
    ssc = np.maximum(sel_slots, 0)

    def at_size(prefix):
        return np.take_along_axis(prefix, k_sel[..., None], -1)[..., 0]

    feats[..., COL.log_price] = at_size(np.log(np.maximum(np.cumsum(price[ssc], -1) * (1 - disc_b), 1e-12)))
    feats[..., COL.size] = (k_sel + 1) / Km
    feats[..., COL.popularity] = at_size(prefix_mean(pop_feat[ssc]))
    feats[..., COL.novelty] = at_size(prefix_mean((~shown.contains(sel_slots)).astype(np.float32)))
    feats[..., COL.discount] = disc_b[k_sel]
    feats[..., COL.comp_bought] = 0.0  # the builder fills it after the picks (features.bought_complementarity)
    return items, sizes, valid, np.where(valid[..., None], feats, np.float32(0.0))
