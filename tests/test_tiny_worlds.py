"""Tiny catalogues: ``interests_per_persona`` is an EnvConfig field (settable with ``--env-set``) and a value the
catalogue cannot serve is a BundlerlError naming the field and its valid range, computed from the catalogue."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bundlerl.env import ConfigError, EnvConfig, build_world, env_config_overrides, get_config
from bundlerl.sim_data import PersonaConfig, generate_catalog, sample_personas
from bundlerl.sim_data.personas import PersonaError
from bundlerl.sim_data.personas_gen import interest_range
from bundlerl.sim_data.synthetic import CatalogConfig
from bundlerl.utils.errors import BundlerlError

FIX = Path(__file__).resolve().parent / "fixtures" / "instacart"  # 5 products in 3 aisles


@settings(max_examples=60, deadline=None)
@given(n_items=st.integers(1, 8), k=st.integers(1, 10), seed=st.integers(0, 50))
def test_interests_per_persona_succeeds_exactly_within_its_range(n_items, k, seed):
    cat = generate_catalog(CatalogConfig(n_items=n_items, seed=seed))
    sellable = len(set(cat.category.tolist()))  # the expectation, counted independently
    assert interest_range(cat) == (1, sellable)
    if k <= sellable:
        p = sample_personas(cat, 4, np.random.default_rng(seed), PersonaConfig(interests_per_persona=k))
        assert p.interests.shape == (4, k) and all(len(set(r)) == k for r in p.interests.tolist())
    else:
        with pytest.raises(PersonaError) as err:
            sample_personas(cat, 4, np.random.default_rng(seed), PersonaConfig(interests_per_persona=k))
        assert "interests_per_persona" in str(err.value) and f"[1, {sellable}]" in str(err.value)


@pytest.mark.parametrize("k", [4, 5, 50])
def test_a_world_whose_catalogue_cannot_serve_the_interests_names_the_field_and_range(k):
    cfg = get_config("instacart", instacart_path=str(FIX), n_personas=4, interests_per_persona=k)
    with pytest.raises(ConfigError, match=re.escape("EnvConfig.interests_per_persona: ") + f"{k}.*\\[1, 3\\]"):
        build_world(cfg)


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5", ""])
def test_interests_per_persona_is_checked_as_an_env_field(value):
    with pytest.raises(BundlerlError, match="interests_per_persona"):
        env_config_overrides(EnvConfig(), [f"interests_per_persona={value}"])


def test_interests_per_persona_round_trips_and_keys_the_world_only_when_set():
    cfg = env_config_overrides(get_config("small"), ["interests_per_persona=1"])
    assert cfg.interests_per_persona == 1 and EnvConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.world_key() != get_config("small").world_key()
    assert get_config("small").replace(interests_per_persona=3).world_key() == get_config("small").world_key()
    old = get_config("small").to_dict()
    del old["interests_per_persona"]  # a config.yaml written before the field existed
    assert EnvConfig.from_dict(old) == get_config("small")
