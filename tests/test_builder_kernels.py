"""The compiled builder loops equal their numpy references bit for bit (ties, caps and -inf included)."""

from __future__ import annotations

import numpy as np
from _builder_ref import greedy_complete_ref, mmr_select_ref, picked_bundles_ref
from hypothesis import given, settings
from hypothesis import strategies as st

from bundlerl.candidates.builder import picked_bundles
from bundlerl.candidates.kernels import greedy_complete, mmr_select, popcount64
from bundlerl.candidates.ragged import RaggedSet


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    include_src=st.booleans(),
    k_max=st.integers(1, 4),
    capped=st.booleans(),
    w_sub=st.sampled_from([0.0, 1.0, 0.37]),
    coarse=st.booleans(),
)
def test_greedy_complete_matches_reference(seed, include_src, k_max, capped, w_sub, coarse):
    rng = np.random.default_rng(seed)
    N, S, C, n = 7, 5, 6, 40
    # coarse values make gains tie often: the first maximum must win in both
    draw = (lambda *shape: rng.integers(0, 3, shape).astype(np.float32) / 2) if coarse else (lambda *shape: rng.random(shape, np.float32))
    comps = draw(n, C + 1, C + 1)
    comps = comps + comps.transpose(0, 2, 1)
    subx = draw(n, C + 1, C + 1)
    src = rng.integers(0, n, (N, S))
    alive = rng.random((N, S)) < 0.8
    cand = rng.integers(-1, n, (N, S, C))
    cvalid = alive[..., None] & (cand >= 0) & (rng.random((N, S, C)) < 0.85)
    rel = draw(N, S, C) * 2 - 1
    price = rng.uniform(0.5, 10.0, n)
    price_sum0 = price[src] if include_src else np.zeros((N, S))
    cap = np.where(rng.random(N) < 0.3, np.inf, rng.uniform(2.0, 25.0, N))
    disc = np.array([0.0, 0.0, 0.1, 0.15, 0.15])[: k_max + 1]
    args = (
        cand, cvalid, rel, 1.0, src * (C + 1) ** 2, C * (C + 1), comps.reshape(-1), subx.reshape(-1), alive,
        1 if include_src else 0, k_max, 1.0, w_sub, capped, price_sum0, price, disc, cap,
    )
    codes, ok = greedy_complete(*args)
    want_codes, want_ok = greedy_complete_ref(*args)
    lo = 1 if include_src else 0  # the caller fills the source's own slot
    np.testing.assert_array_equal(codes[..., lo:], want_codes[..., lo:])
    np.testing.assert_array_equal(ok[..., lo:], want_ok[..., lo:])
    # members are distinct feasible complements, prefixes grow without gaps
    for u, s in zip(*np.nonzero(ok.any(-1))):
        picked = codes[u, s][ok[u, s]]
        assert len(set(picked.tolist())) == picked.size and cvalid[u, s, picked].all()
        assert (np.diff(ok[u, s, lo:].astype(int)) <= 0).all()


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    k_max=st.integers(1, 4),
    S=st.integers(1, 16),
    K=st.integers(1, 40),
    cs_share=st.sampled_from([0.0, 0.25, 1.0]),
    coarse=st.booleans(),
)
def test_mmr_select_matches_reference(seed, k_max, S, K, cs_share, coarse):
    rng = np.random.default_rng(seed)
    N = 9
    M = S * k_max
    if M > 64:
        S = 64 // k_max
        M = S * k_max
    n_items = max(2, M // 2)  # repeats across sources: identical item sets and overlaps
    slot_ids = rng.integers(-1, n_items, (N, M))
    score = (rng.integers(0, 4, (N, M)).astype(np.float32) / 4) if coarse else rng.random((N, M), np.float32)
    base = np.where(rng.random((N, M)) < 0.85, np.float32(0.7) * score, np.float32(-np.inf)).astype(np.float32)
    base[:, ::k_max][slot_ids[:, ::k_max] < 0] = -np.inf  # as the builder: a source without its first slot offers nothing
    pen = (0.3 / np.tile(np.arange(1, k_max + 1), S)).astype(np.float32)
    A = rng.integers(0, S + 1)
    n_cs = int(round(cs_share * K))
    got = mmr_select(base.copy(), slot_ids, k_max, pen, n_cs, A * k_max, K)
    want = mmr_select_ref(base, slot_ids, k_max, pen, n_cs, A * k_max, K)
    np.testing.assert_array_equal(got, want)
    # picks are available candidates, never repeated
    for u in range(N):
        picks = got[u][got[u] >= 0]
        assert len(set(picks.tolist())) == picks.size and np.isfinite(base[u, picks]).all()


def test_popcount64_matches_numpy():
    x = np.random.default_rng(0).integers(0, 2**63, 1000, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    x[:3] = [0, 2**64 - 1, 2**63]
    got = np.array([popcount64(v) for v in x])
    np.testing.assert_array_equal(got, np.bitwise_count(x))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    k_max=st.integers(1, 4),
    S=st.integers(1, 12),
    K=st.integers(1, 20),
    history=st.booleans(),
    n_shown=st.integers(0, 30),
)
def test_picked_bundles_match_reference(seed, k_max, S, K, history, n_shown):
    rng = np.random.default_rng(seed)
    N, n = 6, 30
    M = S * k_max
    # valid candidates only where the prefix is filled, as the builder guarantees for picks
    slot_items = rng.integers(0, n, (N, S, k_max))
    depth = rng.integers(0, k_max + 1, (N, S))  # filled slots per source
    slot_items[np.arange(k_max)[None, None, :] >= depth[..., None]] = -1
    filled = (np.arange(k_max)[None, None, :] < depth[..., None]).reshape(N, M)
    sel = np.full((N, K), -1, np.int64)
    for u in range(N):
        ok = np.flatnonzero(filled[u])
        take = rng.permutation(ok)[: rng.integers(0, min(K, ok.size) + 1)]
        sel[u, : take.size] = take
    price = rng.uniform(0.5, 20.0, n)
    pop = rng.random(n, np.float32)
    shown = RaggedSet([rng.integers(0, n, rng.integers(0, n_shown + 1)) for _ in range(N)], N, n, "shown")
    feats = [rng.standard_normal((N, M)).astype(np.float32) for _ in range(4)]
    if not history:
        feats[1] = None
    disc_b = np.array([0.0, 0.1, 0.15, 0.15])[:k_max]
    got = picked_bundles(sel, slot_items, price, pop, shown, *feats, disc_b)
    want = picked_bundles_ref(sel, slot_items, price, pop, shown, *feats, disc_b)
    for name, a, b in zip(("items", "sizes", "mask", "features"), (got.items, got.sizes, got.mask, got.features), want):
        np.testing.assert_array_equal(a, b, err_msg=name)
