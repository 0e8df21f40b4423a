"""Recommender: one code path with the env (the same user state gives the same candidates and observation),
requests' events as env steps, exploration and ranking (property tests), exclusions, price caps, new users, reasons,
cold-start items."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bundlerl.agents.policy import Policy, PolicyError
from bundlerl.serving.exploration import Exploration, exploring_probabilities, ranked_slots
from bundlerl.serving.user_state import Event, UnknownItemError, UserRequest, to_steps


@pytest.fixture(scope="module")
def rec(served_model):
    from bundlerl.serving.recommender import Recommender

    return Recommender.load(served_model)


def _play(batch, steps, rng):
    """Step the env with random valid actions; per row the list of (shown items, click, bought items, revenue)."""
    hist = [[] for _ in range(batch.n)]
    alive = np.ones(batch.n, bool)
    for _ in range(steps):
        mask = batch.action_masks()
        acts = np.array([rng.choice(np.flatnonzero(m)) for m in mask])
        out = batch.step(acts)
        for i in np.flatnonzero(alive):
            shown = out.shown[i][out.shown[i] >= 0]
            hist[i].append((shown, bool(out.click[i]), out.shown[i][out.bought[i]], float(out.revenue[i])))
        alive &= ~(out.terminated | out.truncated)
    return hist, alive


def test_same_user_state_gives_the_env_and_the_recommender_the_same_candidates_and_observation(rec):
    """The env's rows after a few steps, told to the recommender as request events: once the env rebuilds the rows'
    pools (the recommender always builds fresh), candidates and observations agree."""
    from bundlerl.env.session import SessionBatch
    from bundlerl.env.world import build_world

    world = build_world("small")
    batch = SessionBatch(world, world.config, 6)
    batch.seed_rows(np.arange(6), [np.random.default_rng(100 + i) for i in range(6)])
    batch.reset_rows()
    hist, alive = _play(batch, 4, np.random.default_rng(0))
    rows = np.flatnonzero(alive)
    assert rows.size >= 3 and any(s[1] for i in rows for s in hist[i])  # some clicks to compare
    batch.pool.rebuild(rows, batch.log)
    env_obs = batch.observe(rows)
    ids = rec.art.catalog.item_ids
    requests = []
    for i in rows:
        events = []
        for t, (shown, click, bought, revenue) in enumerate(hist[i]):
            events += [Event(ids[j], "view", t) for j in shown]
            if click:
                events.append(Event(ids[shown[0]], "click", t))
            events += [Event(ids[j], "purchase", t, revenue / len(bought)) for j in bought]
        text = str(world.personas.texts[batch.log.persona[i]])
        requests.append(UserRequest(profile_text=text, events=tuple(events)))
    obs, items, mask, log, _ = rec.observe(requests)
    np.testing.assert_array_equal(items, batch.pool.cand_items[rows])
    np.testing.assert_array_equal(obs["action_mask"], env_obs["action_mask"])
    for key, tol in (("profile", 1e-5), ("history", 1e-5), ("session", 1e-5), ("candidates", 1e-4)):
        np.testing.assert_allclose(obs[key], env_obs[key], atol=tol, err_msg=key)
    # observation spec 2: the purchases' column is compared too (some row bought something)
    from bundlerl.candidates.features import COL

    buyers = [r for r, i in enumerate(rows) if any(len(s[2]) for s in hist[i])]
    assert buyers and (obs["candidates"][buyers][..., COL.comp_bought] > 0).any()


def test_events_group_into_shown_bundles_by_timestamp():
    pos = {"a": 0, "b": 1, "c": 2}
    price = np.array([10.0, 20.0, 30.0])
    steps = to_steps([Event("b", "view", 5), Event("a", "view", 1), Event("c", "view", 5), Event("c", "purchase", 5),
                      Event("a", "view", 1)], pos, price)
    assert [(s.shown, s.click, s.bought, s.revenue) for s in steps] == [((0,), False, (), 0.0),
                                                                          ((1, 2), True, (2,), 30.0)]
    with pytest.raises(UnknownItemError, match=r"events\[1\]\.item_id='zz'"):
        to_steps([Event("a", "view", 1), Event("zz", "view", 1)], pos, price)


class _Fixed(Policy):
    """A policy with given probabilities (one row), for testing the exploration on its own."""

    name = "fixed"

    def __init__(self, p):
        self.p = p

    def action_probabilities(self, obs):
        return self.p


@st.composite
def _dists(draw):
    K = draw(st.integers(1, 8))
    mask = np.array(draw(st.lists(st.booleans(), min_size=K, max_size=K)))
    w = np.array(draw(st.lists(st.floats(0, 1), min_size=K, max_size=K))) * mask
    p = w / w.sum() if w.sum() > 0 else (mask / max(mask.sum(), 1) if mask.any() else np.full(K, 1 / K))
    kind = draw(st.sampled_from(["epsilon", "temperature", None]))
    x = Exploration(epsilon=draw(st.floats(0, 1)) if kind == "epsilon" else None,
                    temperature=draw(st.floats(0.05, 20)) if kind == "temperature" else None,
                    floor=draw(st.one_of(st.none(), st.floats(0, 1))))
    return p[None], mask[None], x


@settings(max_examples=200, deadline=None)
@given(_dists(), st.integers(1, 8), st.integers(0, 2**32 - 1))
def test_exploring_distribution_and_ranked_list(case, k, seed):
    p, mask, x = case
    obs = {"action_mask": mask.astype(np.float32)}
    q = exploring_probabilities(_Fixed(p), obs, p, x)
    assert q.shape == p.shape and np.isclose(q.sum(), 1.0) and (q >= 0).all()
    if not mask.any():
        return
    n_valid = mask.sum()
    assert (q[~mask] == 0).all()
    if x.floor is not None:
        assert (q[mask] >= x.floor / n_valid - 1e-12).all()
    if x.epsilon is not None:
        assert (q[mask] >= x.epsilon / n_valid * (1 - (x.floor or 0)) - 1e-12).all()
    slots = ranked_slots(q[0], mask[0], k, np.random.default_rng(seed))
    shown = slots[slots >= 0]
    assert len(shown) == min(k, n_valid) and len(set(shown.tolist())) == len(shown) and mask[0, shown].all()
    assert (np.diff(q[0, shown[1:]]) <= 1e-15).all()  # slots 2.. by decreasing probability


def test_epsilon_and_temperature_together_are_refused():
    with pytest.raises(PolicyError, match="not both"):
        Exploration(epsilon=0.1, temperature=2.0)
    with pytest.raises(PolicyError, match="floor"):
        Exploration(floor=1.5)


def test_exploration_draws_follow_the_propensities():
    q = np.array([0.5, 0.3, 0.2, 0.0])
    rng = np.random.default_rng(0)
    firsts = np.array([ranked_slots(q, q > 0, 2, rng)[0] for _ in range(4000)])
    freq = np.bincount(firsts, minlength=4) / len(firsts)
    np.testing.assert_allclose(freq, q, atol=0.03)


def test_recommend_answers_with_ranked_bundles_reasons_and_propensities(rec):
    ids = rec.art.catalog.item_ids
    r = rec.recommend(UserRequest(user_id="u1", profile_text="trail running and hiking gear",
                                  events=(Event(ids[5], "view", 1), Event(ids[5], "purchase", 1)), k=4,
                                  exploration=Exploration(epsilon=0.2)))
    assert len(r.bundles) == 4 and r.action == r.bundles[0].candidate
    assert r.propensity == pytest.approx(r.probabilities[r.action]) and r.propensity > 0
    assert np.isclose(r.probabilities.sum(), 1) and r.model_version.startswith("run-")
    for b in r.bundles:
        assert 1 <= len(b.items) <= rec.art.config.K_max and b.reason and ids[5] not in [it.id for it in b.items]
        assert b.price == pytest.approx(sum(it.price for it in b.items) * (1 - b.discount), abs=0.02)


def test_a_batch_is_answered_as_its_requests_one_by_one(rec):
    """What the service's dynamic batching relies on: recommend_batch of N requests (mixed: events with purchases,
    exploration settings, exclusions, caps, no text) gives each request what it gets alone, draws included."""
    from bundlerl.serving.recommender import Recommender

    ids = rec.art.catalog.item_ids
    reqs = [UserRequest(profile_text="trail running and hiking gear", k=4,
                        events=(Event(ids[5], "view", 1), Event(ids[9], "view", 1), Event(ids[5], "purchase", 1),
                                Event(ids[12], "view", 2), Event(ids[12], "click", 2))),
            UserRequest(k=3),
            UserRequest(profile_text="fountain pens and notebooks", k=2, exploration=Exploration(epsilon=0.3)),
            UserRequest(profile_text="fountain pens and notebooks", k=8, price_cap=30.0, exclude=(str(ids[3]),)),
            UserRequest(profile_text="coffee", events=(Event(ids[7], "purchase", 4),),
                        exploration=Exploration(temperature=2.0, floor=0.05)),
            UserRequest(profile_text="coffee", exploration=Exploration(epsilon=0.3))]
    one = Recommender(rec.art, seed=11, encoder=rec.encoder)
    many = Recommender(rec.art, seed=11, encoder=rec.encoder)
    alone = [one.recommend(r) for r in reqs]
    together = many.recommend_batch(reqs)
    for a, b in zip(alone, together):
        np.testing.assert_array_equal(a.candidates, b.candidates)
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-6)
        assert a.action == b.action
        assert [(x.candidate, x.reason, [it.id for it in x.items]) for x in a.bundles] == \
            [(x.candidate, x.reason, [it.id for it in x.items]) for x in b.bundles]
        assert a.impression_id.split("-")[2] == b.impression_id.split("-")[2]  # the same draw of the id's bits


def test_a_batch_with_more_texts_than_the_memo_holds(rec):
    """The profile-text memo never evicts a text its own batch still needs (a batch of 32 with new texts once raised
    KeyError when the memo was full), and keeps the most recently used texts."""
    from bundlerl.serving.recommender import Recommender

    r = Recommender(rec.art, encoder=rec.encoder)
    r.memo_size = 2
    texts = ["camping", "fountain pens", "coffee beans", "camping", "yoga mats"]
    got = r.encode(texts)
    np.testing.assert_allclose(got, rec.encoder.encode(texts), atol=1e-5)
    assert list(r._memo) == ["coffee beans", "yoga mats"]
    r.encode(["coffee beans"])  # used: now the most recent
    r.encode(["tents"])
    assert list(r._memo) == ["coffee beans", "tents"]
    out = r.recommend_batch([UserRequest(profile_text=t) for t in texts])
    assert len(out) == len(texts) and all(o.bundles for o in out)


def test_new_users_exclusions_and_price_caps(rec):
    ids = rec.art.catalog.item_ids
    anon = rec.recommend(UserRequest(k=3))
    assert len(anon.bundles) == 3 and all(b.reason.startswith("popular in") for b in anon.bundles)
    text_only = rec.recommend(UserRequest(profile_text="fountain pens and notebooks", k=3))
    assert len(text_only.bundles) == 3
    banned = [it.id for b in text_only.bundles for it in b.items]
    again = rec.recommend(UserRequest(profile_text="fountain pens and notebooks", k=3, exclude=tuple(banned)))
    assert not set(banned) & {it.id for b in again.bundles for it in b.items}
    cheap = rec.recommend(UserRequest(profile_text="fountain pens and notebooks", k=8, price_cap=30.0))
    assert all(b.price <= 30.0 + 1e-6 for b in cheap.bundles)
    with pytest.raises(UnknownItemError, match="exclude"):
        rec.recommend(UserRequest(exclude=("nope",)))
    assert ids.size == rec.art.catalog.n_items


def test_cold_start_items_are_retrievable_and_survive_a_reload(tmp_path, served_model):
    from bundlerl.serving.item_store import ItemStore, NewItem
    from bundlerl.serving.recommender import Recommender

    folder = tmp_path / "m"
    shutil.copytree(served_model, folder)
    rec = Recommender.load(folder)
    item = NewItem("NEW-1", "Ultralight trail running vest with bottle holders", 45.0, "for long mountain runs")
    store = ItemStore(folder)
    v = store.add([item], rec.encoder.encode([f"{item.title}. {item.description}"]))
    assert v == 1 and store.version() == 1
    rec2 = Recommender.load(folder)  # a restart (or another worker) sees it
    assert rec2.art.catalog.n_items == rec.art.catalog.n_items + 1
    r = rec2.recommend(UserRequest(profile_text=item.title, k=rec2.art.config.K))
    assert "NEW-1" in {it.id for b in r.bundles for it in b.items}
    r = rec2.recommend(UserRequest(events=(Event("NEW-1", "purchase", 1),)))  # usable in events too
    assert r.bundles
    # the cold item borrows its proxy's (nearest base item's) complements, in the builder's own model (the learned
    # completion here, as in the env) and in the complementarity model; base items keep theirs exactly
    from bundlerl.candidates.learned import CompletionModel

    old, new = rec.art, rec2.art
    n0 = old.catalog.n_items
    assert isinstance(old.builder.comp, CompletionModel) and isinstance(new.builder.comp.base, CompletionModel)
    proxy = int(new.comp.proxy[n0])
    assert old.catalog.category[proxy] == new.catalog.category[n0]
    np.testing.assert_array_equal(new.builder.comp.top_items[n0], old.builder.comp.top_items[proxy])
    np.testing.assert_array_equal(new.builder.LIST[:n0], old.builder.LIST)
    np.testing.assert_array_equal(new.builder.COMPS[:n0], old.builder.COMPS)
    j = np.arange(0, n0, 7)
    np.testing.assert_allclose(new.comp.score(np.full(j.size, n0), j),
                               np.where(j == proxy, 0.0, old.comp.score(np.full(j.size, proxy), j)), atol=1e-7)
    assert new.comp.score([n0], [proxy])[0] == 0.0 == new.builder.comp.score([proxy], [n0])[0]


def test_an_int8_encoder_serves_new_text_close_to_the_float32_one(served_model, rec):
    """``encoder_precision="int8"`` (``bundlerl serve --encoder-precision int8``): the same recommendations pipeline,
    a new user's profile vector within cosine 0.97 of the float32 one; an unknown precision is refused at once."""
    from bundlerl.encoders.base import EncoderError
    from bundlerl.serving.recommender import Recommender

    q = Recommender.load(served_model, encoder_precision="int8")
    text = "a new shopper who cooks for a big family and bakes bread on weekends"
    v, w = q.encode([text], memo=False)[0], rec.encode([text], memo=False)[0]
    assert 0.97 < float(v @ w) < 1 - 1e-6 and q.encoder.identity.endswith("+int8")
    r = q.recommend(UserRequest(user_id="new", profile_text=text, events=(), k=3))
    assert len(r.bundles) == 3 and all(b.items for b in r.bundles)
    with pytest.raises(EncoderError, match="'bf16' is not one of"):
        Recommender.load(served_model, encoder_precision="bf16")
