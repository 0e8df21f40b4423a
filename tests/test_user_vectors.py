"""encoders/user_vectors.py: the clicked-items history vector (the env's one implementation) and its projection."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bundlerl.encoders import add_clicked, history_vectors, projected_history

D, P, N_ITEMS = 12, 4, 30


def _world(seed: int = 0):
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((N_ITEMS, D)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    W = np.linalg.qr(rng.standard_normal((D, P)))[0].astype(np.float32)  # orthonormal columns
    pad = lambda t: np.concatenate([t, np.zeros((1, t.shape[1]), t.dtype)])  # noqa: E731
    return emb, W, pad(emb), pad(np.ascontiguousarray(emb @ W))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n_users=st.integers(1, 6), steps=st.integers(1, 6))
def test_incremental_sums_give_the_normalised_sum_of_clicked_items(seed, n_users, steps):
    emb, W, emb_z, proj_z = _world(seed)
    rng = np.random.default_rng(seed)
    sums = np.zeros((n_users, D), np.float32)
    proj = np.zeros((n_users, P), np.float32)
    clicked: list[list[int]] = [[] for _ in range(n_users)]
    for _ in range(steps):
        rows = np.flatnonzero(rng.random(n_users) < 0.6)  # the users who clicked this step (distinct)
        bundles = rng.integers(-1, N_ITEMS, size=(rows.size, 3))
        add_clicked(sums, rows, bundles, emb_z)
        add_clicked(proj, rows, bundles, proj_z)
        for r, b in zip(rows, bundles):
            clicked[r] += [int(i) for i in b if i >= 0]
    h = history_vectors(sums)
    assert h.dtype == np.float32
    for u in range(n_users):
        total = emb[clicked[u]].astype(np.float64).sum(0) if clicked[u] else np.zeros(D)
        norm = np.linalg.norm(total)
        want = total / norm if norm > 0 else np.zeros(D)
        np.testing.assert_allclose(h[u], want, atol=1e-5)
    # the projection accumulated item by item equals normalize(sum) @ W, inside [-1, 1]
    ph = projected_history(sums, proj)
    np.testing.assert_allclose(ph, h @ W, atol=1e-5)
    assert np.abs(ph).max() <= 1.0


def test_no_click_gives_zero_vectors():
    sums = np.zeros((3, D), np.float32)
    assert not history_vectors(sums).any()
    assert not projected_history(sums, np.zeros((3, P), np.float32)).any()


def test_empty_slots_add_nothing():
    emb, _, emb_z, _ = _world()
    sums = np.zeros((2, D), np.float32)
    add_clicked(sums, np.array([1]), np.array([[-1, 4, -1]]), emb_z)
    np.testing.assert_array_equal(sums[1], emb[4])
    assert not sums[0].any()


def test_the_env_keeps_its_history_with_these_functions():
    """The session's history (rel_history queries, the observation's history key) is this module's."""
    from bundlerl.env.observation import HISTORY_KEY, MASK_KEY
    from bundlerl.env.vec_env import BundleRecVecEnv

    v = BundleRecVecEnv("small", num_envs=16, seed=1)
    obs = v.reset()
    core, rng = v.core, np.random.default_rng(0)
    for _ in range(6):
        obs, *_ = v.step(np.argmax(rng.random(obs[MASK_KEY].shape) * obs[MASK_KEY], axis=1))
    assert core.has_hist.any()
    np.testing.assert_array_equal(obs[HISTORY_KEY], projected_history(core.hist_sum, core.hist_proj))
    np.testing.assert_array_equal(core._history_vectors(), history_vectors(core.hist_sum))
