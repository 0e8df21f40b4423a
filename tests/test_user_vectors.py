"""encoders/user_vectors.py: history vectors, incremental updates, profile/history blend."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bundlerl.encoders import EncoderError, EventWeights, blend, decay_and_add, history_vectors
from bundlerl.encoders.user_vectors import Events, history_state, normalize_rows

D = 6
N_ITEMS = 12


def unit_rows(rng, n, d=D):
    x = rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@st.composite
def event_sets(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    n_users = draw(st.integers(1, 6))
    m = draw(st.integers(0, 30))
    rng = np.random.default_rng(seed)
    ev = Events(
        user=rng.integers(0, n_users, m),
        item=rng.integers(0, N_ITEMS, m),
        kind=rng.integers(0, 3, m).astype(np.int8),
        time=np.round(rng.uniform(0, 50, m), 1),
    )
    w = EventWeights(
        view=draw(st.floats(0.01, 5)), click=draw(st.floats(0.01, 5)), purchase=draw(st.floats(0.01, 5)),
        half_life=draw(st.one_of(st.floats(0.5, 100), st.just(math.inf))),
    )
    return ev, unit_rows(rng, N_ITEMS), n_users, w


def reference(ev, emb, n_users, w, now=None):
    """The formula written out with loops (the test oracle)."""
    out = np.zeros((n_users, emb.shape[1]))
    kinds = [w.view, w.click, w.purchase]
    for u in range(n_users):
        mine = np.flatnonzero(ev.user == u)
        if mine.size == 0:
            continue
        now_u = ev.time[mine].max() if now is None else now
        s = sum(kinds[ev.kind[e]] * 0.5 ** ((now_u - ev.time[e]) / w.half_life) * emb[ev.item[e]] for e in mine)
        out[u] = s / np.linalg.norm(s)
    return out


@settings(max_examples=60, deadline=None)
@given(event_sets())
def test_matches_formula_and_unit_or_zero(case):
    ev, emb, n_users, w = case
    v = history_vectors(ev, emb, n_users, w)
    assert v.shape == (n_users, D) and v.dtype == np.float32
    np.testing.assert_allclose(v, reference(ev, emb, n_users, w), atol=1e-5)
    norms = np.linalg.norm(v, axis=1)
    has_events = np.isin(np.arange(n_users), ev.user)
    np.testing.assert_allclose(norms[has_events], 1.0, atol=1e-5)
    assert np.all(norms[~has_events] == 0)


@settings(max_examples=40, deadline=None)
@given(event_sets())
def test_batch_equals_per_user(case):
    ev, emb, n_users, w = case
    now = 60.0
    batch = history_vectors(ev, emb, n_users, w, now=now)
    for u in range(n_users):
        m = ev.user == u
        alone = Events(np.zeros(m.sum(), dtype=int), ev.item[m], ev.kind[m], ev.time[m])
        np.testing.assert_allclose(batch[u], history_vectors(alone, emb, 1, w, now=now)[0], atol=1e-6)


@settings(max_examples=50, deadline=None)
@given(t_old=st.floats(0, 10), dt=st.floats(0.1, 10), half_life=st.floats(0.5, 50), kind=st.integers(0, 2))
def test_more_recent_event_pulls_more(t_old, dt, half_life, kind):
    emb = np.eye(D)[:2]  # item 0 and item 1, orthogonal
    w = EventWeights(half_life=half_life)
    now = 30.0
    # Two events of the same kind; item 1 is later by dt.
    ev = Events(np.array([0, 0]), np.array([0, 1]), np.array([kind, kind]), np.array([t_old, t_old + dt]))
    v = history_vectors(ev, emb, 1, w, now=now)[0]
    assert v[1] > v[0]
    # Moving item 1's event even later pulls the vector further towards it.
    ev2 = ev._replace(time=np.array([t_old, min(now, t_old + 2 * dt)]))
    assert history_vectors(ev2, emb, 1, w, now=now)[0][1] >= v[1] - 1e-7


@settings(max_examples=50, deadline=None)
@given(a=st.floats(0.01, 5), b=st.floats(0.01, 5), c=st.floats(0.01, 5))
def test_heavier_kind_pulls_more(a, b, c):
    w = EventWeights(view=a, click=b, purchase=c)
    emb = np.eye(D)[:2]
    for k0, k1 in ((0, 1), (1, 2), (0, 2)):
        ev = Events(np.array([0, 0]), np.array([0, 1]), np.array([k0, k1]), np.array([5.0, 5.0]))
        v = history_vectors(ev, emb, 1, w)[0]
        w0, w1 = w.as_array()[[k0, k1]]
        assert np.sign(v[1] - v[0]) == np.sign(round(w1 - w0, 12)) or abs(w1 - w0) < 1e-9


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 5), steps=st.integers(1, 8), k=st.integers(1, 3))
def test_incremental_equals_batch(seed, n, steps, k):
    rng = np.random.default_rng(seed)
    emb = unit_rows(rng, N_ITEMS)
    w = EventWeights(half_life=float(rng.uniform(1, 10)))
    state = np.zeros((n, D))
    users, items, kinds, times = [], [], [], []
    for t in range(steps):
        it = rng.integers(0, N_ITEMS, (n, k))
        kd = rng.integers(0, 3, (n, k))
        active = rng.random(n) < 0.7  # users without an event this step get weight 0
        wt = w.as_array()[kd] * active[:, None]
        state = decay_and_add(state, emb[it], wt, w.decay(1.0) if t else 1.0)
        for u in np.flatnonzero(active):
            users += [u] * k
            items += list(it[u])
            kinds += list(kd[u])
            times += [t] * k
    ev = Events(np.array(users, dtype=int), np.array(items, dtype=int), np.array(kinds, dtype=int), np.array(times, float))
    np.testing.assert_allclose(state, history_state(ev, emb, n, w, now=steps - 1), atol=1e-9)
    np.testing.assert_allclose(normalize_rows(state), history_vectors(ev, emb, n, w, now=steps - 1), atol=1e-6)


def test_decay_and_add_in_place_and_shapes():
    state = np.ones((2, 3), dtype=np.float32)
    vecs = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = decay_and_add(state, vecs, np.array([1.0, 0.0]), np.array([0.5, 1.0]), out=state)
    assert out is state
    np.testing.assert_allclose(state, [[0.5, 1.5, 2.5], [1, 1, 1]])
    with pytest.raises(EncoderError, match="decay"):
        decay_and_add(state, vecs, np.ones(2), 1.5)
    with pytest.raises(EncoderError, match="item_vecs"):
        decay_and_add(state, vecs[:1], np.ones(2), 1.0)
    with pytest.raises(EncoderError, match="weights"):
        decay_and_add(state, vecs, np.ones(3), 1.0)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 6), alpha=st.floats(0, 1))
def test_blend(seed, n, alpha):
    rng = np.random.default_rng(seed)
    p = unit_rows(rng, n)
    h = unit_rows(rng, n)
    h[0] = 0  # a user without history
    out = blend(p, h, alpha)
    assert out.dtype == np.float32 and out.shape == (n, D)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out[0], p[0], atol=1e-6)  # no history -> profile
    np.testing.assert_allclose(blend(p, h, 0.0), p, atol=1e-6)
    np.testing.assert_allclose(blend(p, h, 1.0)[1:], h[1:], atol=1e-6)
    # More alpha never moves the query away from the history.
    more = blend(p, h, np.full(n, min(1.0, alpha + 0.1)))
    assert np.all(np.sum(more * h, axis=1) >= np.sum(out * h, axis=1) - 1e-6)


def test_blend_errors():
    p = np.eye(3)
    with pytest.raises(EncoderError, match="alpha"):
        blend(p, p, 1.5)
    with pytest.raises(EncoderError, match="alpha"):
        blend(p, p, np.array([0.5, 0.5]))
    with pytest.raises(EncoderError, match=r"\(N, d\)"):
        blend(p, p[:2], 0.5)


def test_event_errors():
    emb = np.eye(D)[:3]
    w = EventWeights()
    ok = dict(user=np.array([0, 1]), item=np.array([0, 2]), kind=np.array([0, 2]), time=np.array([1.0, 2.0]))
    history_vectors(ok, emb, 2, w)
    cases = [
        (dict(ok, kind=np.array([0, 3])), "unknown event kinds \\[3\\]"),
        (dict(ok, item=np.array([0, 3])), "events.item out of range"),
        (dict(ok, user=np.array([0, 2])), "events.user out of range"),
        (dict(ok, time=np.array([1.0, np.nan])), "NaN at index 1"),
        (dict(ok, item=np.array([0.0, 1.0])), "must be integers"),
        (dict(ok, kind=np.array([0])), "shape"),
    ]
    for ev, msg in cases:
        with pytest.raises(EncoderError, match=msg):
            history_vectors(ev, emb, 2, w)
    with pytest.raises(EncoderError, match="later than `now`"):
        history_vectors(ok, emb, 2, w, now=1.5)
    with pytest.raises(EncoderError, match="missing"):
        history_vectors({"user": ok["user"]}, emb, 2, w)


@pytest.mark.parametrize(
    "kwargs, msg",
    [(dict(view=-1), "view"), (dict(purchase=float("nan")), "purchase"), (dict(view=0, click=0, purchase=0), "at least one"),
     (dict(half_life=0), "half_life"), (dict(half_life=float("nan")), "half_life")],
)
def test_event_weights_validated(kwargs, msg):
    with pytest.raises(EncoderError, match=msg):
        EventWeights(**kwargs)


def test_no_events_gives_zero_rows():
    v = history_vectors(Events(np.zeros(0, int), np.zeros(0, int), np.zeros(0, int), np.zeros(0)), np.eye(D), 3, EventWeights())
    assert v.shape == (3, D) and not v.any()
