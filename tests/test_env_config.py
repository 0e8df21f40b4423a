"""EnvConfig as plain data: to_dict / from_dict, YAML files, ``field=value`` overrides, names, presets."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bundlerl.env import (
    PRESETS,
    ConfigError,
    EnvConfig,
    env_config_overrides,
    get_config,
    instacart_config,
    load_env_config,
)
from bundlerl.env.reward import REWARD_MODES

SMALL = PRESETS["small"]


def _instacart(tmp_path) -> EnvConfig:
    (tmp_path / "products.csv").write_text("product_id,product_name,aisle_id,department_id\n")
    return instacart_config(tmp_path)


def _custom() -> EnvConfig:
    from bundlerl.candidates.builder import BuilderConfig
    from bundlerl.env.shopper_params import ShopperParams

    return SMALL.replace(name="small-custom", shopper=ShopperParams(tau_c=2.5, fatigue=False),
                         builder=BuilderConfig(n_candidates=8, max_bundle_size=3, mmr_lambda=0.5, discounts={2: 0.2}))


def _all_configs(tmp_path) -> dict[str, EnvConfig]:
    return {**PRESETS, "instacart": _instacart(tmp_path), "custom": _custom()}


# ---------------------------------------------------------------------- round trips
def test_every_preset_round_trips_through_dicts_json_and_yaml_files(tmp_path):
    for name, cfg in _all_configs(tmp_path).items():
        d = cfg.to_dict()
        assert EnvConfig.from_dict(d) == cfg, name
        assert EnvConfig.from_dict(json.loads(json.dumps(d))) == cfg, name  # JSON turns discount keys into strings
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(d, sort_keys=False))
        assert load_env_config(path) == cfg, name
        assert load_env_config(path).to_dict() == d, name


def test_instacart_config_keeps_its_folder(tmp_path):
    cfg = _instacart(tmp_path)
    back = EnvConfig.from_dict(cfg.to_dict())
    assert back.source == "instacart" and back.instacart_path == str(tmp_path) and back.name == "instacart"
    assert get_config("instacart", instacart_path=tmp_path) == cfg  # the folder from a flag, no environment variable
    assert env_config_overrides(SMALL, ["source=instacart", f"instacart_path={tmp_path}"]).instacart_path == str(tmp_path)


def test_to_dict_is_plain_data_with_the_builder_in_full_and_its_derived_fields_left_out():
    d = PRESETS["default"].to_dict()
    assert set(d) == {f.name for f in dataclasses.fields(EnvConfig)}
    assert "n_candidates" not in d["builder"] and "max_bundle_size" not in d["builder"]
    assert d["builder"]["discounts"] == {2: 0.10, 3: 0.15}

    def plain(x):
        return x is None or isinstance(x, (str, int, float, bool)) or (
            isinstance(x, dict) and all(isinstance(k, (str, int)) and plain(v) for k, v in x.items()))

    assert plain(d)


def test_a_partial_mapping_takes_the_defaults():
    assert EnvConfig.from_dict({}) == EnvConfig()
    cfg = EnvConfig.from_dict({"name": "tiny", "K": 4, "builder": {"mmr_lambda": 0.5}})
    assert cfg.builder.n_candidates == 4 and cfg.builder.mmr_lambda == 0.5
    assert EnvConfig.from_dict({"builder": {"n_candidates": 16}}).builder is None  # equal to the defaults: None


def test_get_config_applies_changes():
    assert get_config("small", horizon=3) == SMALL.replace(horizon=3)


# ---------------------------------------------------------------------- overrides
_OVERRIDES = st.one_of(
    st.tuples(st.just("horizon"), st.integers(1, 60)),
    st.tuples(st.just("refresh_every"), st.integers(1, 30)),
    st.tuples(st.just("K"), st.integers(1, 32)),
    st.tuples(st.just("K_max"), st.integers(1, 3)),
    st.tuples(st.just("refresh_on_click"), st.booleans()),
    st.tuples(st.just("invalid_action_penalty"), st.floats(0, 10)),
    st.tuples(st.just("reward"), st.sampled_from(sorted(REWARD_MODES))),
    st.tuples(st.just("name"), st.from_regex(r"[a-z0-9][a-z0-9.-]{0,20}", fullmatch=True)),
    st.tuples(st.just("shopper.tau_c"), st.floats(-5, 5)),
    st.tuples(st.just("shopper.T_c"), st.floats(0.01, 5)),
    st.tuples(st.just("shopper.fatigue"), st.booleans()),
    st.tuples(st.just("builder.mmr_lambda"), st.floats(0, 1)),
    st.tuples(st.just("builder.rel_dim"), st.one_of(st.none(), st.integers(1, 64))),
    st.tuples(st.just("builder.history_weight"), st.floats(0, 1)),
)


def _text(value) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else repr(value) if isinstance(value, float) else str(value)


def _get(cfg: EnvConfig, field: str):
    if field.startswith("shopper."):
        return getattr(cfg.shopper_params(), field.split(".")[1])
    if field.startswith("builder."):
        return getattr(cfg.builder_config(), field.split(".")[1])
    return getattr(cfg, field)


@settings(max_examples=150, deadline=None)
@given(base=st.sampled_from(sorted(PRESETS)), changes=st.lists(_OVERRIDES, min_size=1, max_size=6))
def test_random_valid_overrides_apply_and_round_trip(base, changes):
    cfg = env_config_overrides(get_config(base), [f"{k}={_text(v)}" for k, v in changes])
    last = dict(changes)  # the last override of a field wins
    for field, value in last.items():
        assert _get(cfg, field) == value, field
    assert cfg.builder_config().n_candidates == cfg.K and cfg.builder_config().max_bundle_size == cfg.K_max
    assert EnvConfig.from_dict(cfg.to_dict()) == cfg
    assert EnvConfig.from_dict(yaml.safe_load(yaml.safe_dump(cfg.to_dict()))) == cfg


def test_string_fields_are_taken_as_written():
    assert env_config_overrides(SMALL, ["name=007"]).name == "007"
    assert env_config_overrides(SMALL, ["shopper.tau_c=1e-3"]).shopper.tau_c == 1e-3


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize("override, match", [
    ("horizon", "field=value"),
    ("=3", "field name is empty"),
    ("colour=red", r"no field 'colour'.*valid fields are \['K'"),
    ("shopper.colour=1", r"shopper has no field 'colour'.*tau_c"),
    ("builder.n_candidates=4", "follows EnvConfig.K; override K"),
    ("shopper=1", "set one field of shopper"),
    ("horizon.x=1", "has no sub-fields"),
    ("horizon=abc", r"EnvConfig.horizon='abc'; it needs an int"),
    ("horizon=0", r"EnvConfig.horizon: 0; it must be an integer >= 1"),
    ("refresh_on_click=maybe", "EnvConfig.refresh_on_click.*needs a bool"),
    ("shopper.T_c=-1", r"EnvConfig.shopper: .*T_c"),
    ("builder.mmr_lambda=2", r"EnvConfig.builder: .*mmr_lambda"),
    ("builder.discounts=3", "EnvConfig.builder.discounts=3.*needs a dict"),
    ("reward=likes", "EnvConfig.reward: 'likes'; use one of"),
    ("name=runs/x", "EnvConfig.name"),
    ("source=instacart", "EnvConfig.instacart_path"),
])
def test_bad_overrides_name_the_field_and_the_fix(override, match):
    with pytest.raises(ConfigError, match=match):
        env_config_overrides(SMALL, [override])


@pytest.mark.parametrize("name", ["", "a" * 41, "a__b", "-x", "a b", "a/b", "..", "é"])
def test_names_must_be_short_and_filesystem_safe(name):
    with pytest.raises(ConfigError, match="EnvConfig.name"):
        SMALL.replace(name=name)


def test_from_dict_errors_name_the_key_and_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['horizn'\]; valid keys are .*'horizon'"):
        EnvConfig.from_dict({"horizn": 3})
    with pytest.raises(ConfigError, match=r"EnvConfig.builder: unknown key\(s\) \['lambda'\]"):
        EnvConfig.from_dict({"builder": {"lambda": 0.5}})
    with pytest.raises(ConfigError, match="expected a mapping"):
        EnvConfig.from_dict(["K", 3])
    with pytest.raises(ConfigError, match="EnvConfig.K=2.5 .*needs an int"):
        EnvConfig.from_dict({"K": 2.5})
    with pytest.raises(ConfigError, match="n_candidates=4, max_bundle_size=3 but K=8"):
        EnvConfig.from_dict({**SMALL.to_dict(), "builder": {"n_candidates": 4}})


def test_yaml_file_errors_name_the_file_and_the_field(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_env_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("horizon: 10\nK: [1,\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML \(line"):
        load_env_config(bad)
    bad.write_text("horizon: -1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: EnvConfig.horizon"):
        load_env_config(bad)


def test_builder_sizes_follow_k_and_k_max():
    from bundlerl.candidates.builder import BuilderConfig

    with pytest.raises(ConfigError, match="K and K_max are the source of truth"):
        SMALL.replace(builder=BuilderConfig())  # n_candidates=32 != K=8
    custom = _custom()
    moved = custom.replace(K=5, K_max=2)
    assert (moved.builder.n_candidates, moved.builder.max_bundle_size, moved.builder.mmr_lambda) == (5, 2, 0.5)
    with pytest.raises(ConfigError, match="use a BuilderConfig"):
        SMALL.replace(builder={"mmr_lambda": 0.5})
