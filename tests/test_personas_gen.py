"""Persona sampling: shapes, determinism, coherent interests, budget words vs hidden budget."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bundlerl.sim_data.catalog import Catalog
from bundlerl.sim_data.personas import PersonaError
from bundlerl.sim_data.personas_gen import BUDGET_PHRASES, PersonaConfig, sample_personas
from bundlerl.sim_data.synthetic import CatalogConfig, generate_catalog


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return generate_catalog(CatalogConfig(n_items=2000, seed=0))


def test_shapes_and_ranges(cat):
    p = sample_personas(cat, 500, np.random.default_rng(0))
    assert len(p) == 500 and p.interests.shape == (500, 3) and p.needs.shape == (500, cat.n_categories)
    # interests distinct per persona, needs high there and low elsewhere
    assert all(len(set(r)) == 3 for r in p.interests.tolist())
    rows = np.arange(500)[:, None]
    assert (p.needs[rows, p.interests] >= 0.6).all()
    mask = np.ones_like(p.needs, bool)
    mask[rows, p.interests] = False
    assert (p.needs[mask] <= 0.15).all()
    assert (p.budget > 0).all() and (p.price_sensitivity > 0).all()
    # the text names the interests
    names = cat.category_names
    for i in range(0, 500, 23):
        for c in p.interests[i]:
            assert names[c] in p.texts[i]


def test_deterministic_by_rng(cat):
    a = sample_personas(cat, 200, np.random.default_rng(5))
    b = sample_personas(cat, 200, np.random.default_rng(5))
    c = sample_personas(cat, 200, np.random.default_rng(6))
    assert np.array_equal(a.texts, b.texts) and np.array_equal(a.needs, b.needs) and np.array_equal(a.budget, b.budget)
    assert not np.array_equal(a.interests, c.interests)


def _tier(texts):
    out = np.full(len(texts), -1)
    for t, phrases in enumerate(BUDGET_PHRASES):
        for ph in phrases:
            out[[ph in x for x in texts]] = t
    return out


def test_budget_words_track_hidden_budget_and_sensitivity(cat):
    cfg = PersonaConfig(budget_word_noise=0.1)
    p = sample_personas(cat, 3000, np.random.default_rng(1), cfg)
    tier = _tier(p.texts.tolist())
    assert (tier >= 0).all()
    # relative budget (budget over the interests' price level) rises with the tier, beta falls
    level = cat.category_mean_price()[p.interests].mean(axis=1)
    rel = np.log(p.budget / level)
    means = [rel[tier == t].mean() for t in range(3)]
    assert means[0] < means[1] < means[2]
    betas = [np.log(p.price_sensitivity[tier == t]).mean() for t in range(3)]
    assert betas[0] > betas[2]
    assert np.corrcoef(tier, rel)[0, 1] > 0.6
    # "budget-conscious" vs "premium" words
    low = np.array(["Budget-conscious" in t for t in p.texts])
    high = np.array(["Premium" in t or "premium" in t for t in p.texts])
    assert p.budget[low].mean() < p.budget[high].mean()


def test_interests_are_coherent(cat):
    """Complement-linked and same-department interest pairs are far more common than at random."""
    p = sample_personas(cat, 3000, np.random.default_rng(2))
    G = cat.complement_graph
    I = p.interests
    linked = (G[I[:, 0], I[:, 1]] + G[I[:, 1], I[:, 0]] + G[I[:, 0], I[:, 2]] + G[I[:, 2], I[:, 0]]) > 0
    rng = np.random.default_rng(0)
    R = rng.integers(0, cat.n_categories, (3000, 3))
    linked_random = (G[R[:, 0], R[:, 1]] + G[R[:, 1], R[:, 0]] + G[R[:, 0], R[:, 2]] + G[R[:, 2], R[:, 0]]) > 0
    assert linked.mean() > 4 * linked_random.mean()
    dept = cat.category_department
    assert (dept[I[:, 0]] == dept[I[:, 1]]).mean() > 0.4
    # with neither complements nor departments, coherence drops to chance
    q = sample_personas(cat, 3000, np.random.default_rng(2),
                        PersonaConfig(complement_interest_prob=0.0, same_department_prob=0.0))
    assert (dept[q.interests[:, 0]] == dept[q.interests[:, 1]]).mean() < 0.2


def test_works_without_complement_graph(cat):
    p = sample_personas(cat.observable(), 100, np.random.default_rng(0))
    assert p.interests.shape == (100, 3)


@settings(max_examples=10, deadline=None)
@given(k=st.integers(1, 6), n=st.integers(1, 50), seed=st.integers(0, 10**6))
def test_any_k_gives_distinct_interests(cat, k, n, seed):
    p = sample_personas(cat, n, np.random.default_rng(seed), PersonaConfig(interests_per_persona=k))
    assert p.interests.shape == (n, k)
    assert all(len(set(r)) == k for r in p.interests.tolist())


def test_bad_input(cat):
    with pytest.raises(PersonaError, match="rng"):
        sample_personas(cat, 10)
    with pytest.raises(PersonaError):
        sample_personas(cat, 0, np.random.default_rng(0))
    with pytest.raises(PersonaError, match="sum"):
        PersonaConfig(complement_interest_prob=0.7, same_department_prob=0.5)
    with pytest.raises(PersonaError):
        PersonaConfig(need_high=(0.9, 0.5))
    with pytest.raises(PersonaError):
        sample_personas(cat, 5, np.random.default_rng(0), PersonaConfig(interests_per_persona=500))
