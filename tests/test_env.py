"""The Gymnasium env and the batched env: API checkers, determinism, batch = singles, no leak,
spaces, truncation vs termination, rendering, invalid actions, compose mode, registration."""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import bundlerl  # noqa: F401  - registers the ids
from bundlerl.env.bundle_env import BundleRecEnv
from bundlerl.env.config import PRESETS, ConfigError, EnvConfig, get_config, instacart_config
from bundlerl.env.observation import CANDIDATES_KEY, MASK_KEY, OBS_KEYS, PROFILE_KEY, SESSION_KEY
from bundlerl.env.registration import ENV_IDS
from bundlerl.env.session import InvalidActionError
from bundlerl.env.vec_env import BundleRecVecEnv

SMALL = PRESETS["small"]


def _shared_data() -> Path:
    env_var = os.environ.get("BUNDLERL_SHARED_DATA")
    return Path(env_var) if env_var else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _small_variant(env_id: str) -> dict:
    """gym.make kwargs running ``env_id``'s variant on the small catalogue (same reward / action mode)."""
    kwargs = dict(ENV_IDS[env_id][0])
    base = kwargs.get("preset", "default")
    if base == "instacart":
        return kwargs
    kwargs["preset"] = SMALL.replace(reward=get_config(base).reward, name=f"small-{base}")
    return kwargs


def _first_valid(mask: np.ndarray) -> np.ndarray:
    """(N,) first valid action per row of an (N, A) mask."""
    return np.argmax(mask, axis=1)


def _close(a, b, msg=""):
    """Equal up to float32 rounding: BLAS blocks a batched matmul differently from a single row, so
    features computed for N users may differ from N single-user runs in the last bits."""
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=msg)


def _random_valid(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N,) a uniformly random valid action per row (vectorised)."""
    u = rng.random(mask.shape) * mask
    return np.argmax(u, axis=1)


# ---------------------------------------------------------------------- checkers on every id
@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_registered_ids_pass_gymnasium_and_sb3_checkers(env_id):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    kwargs = _small_variant(env_id)
    if kwargs.get("preset") == "instacart":
        try:
            instacart_config(_shared_data() / "instacart")
        except ConfigError as e:
            pytest.skip(f"instacart data absent: {e}")
        pytest.skip("instacart world is large; its build is covered by the slow test below")
    env = gym.make(env_id, **kwargs)
    check_env(env.unwrapped, skip_render_check=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SB3 warns about the (K, F) candidates Box shape; it is intended
        sb3_check_env(env.unwrapped, warn=True)
    assert env.spec.id == env_id


@pytest.mark.slow
def test_instacart_env_builds_and_steps():
    try:
        cfg = instacart_config(_shared_data() / "instacart")
    except ConfigError as e:
        pytest.skip(f"instacart data absent: {e}")
    env = BundleRecEnv(cfg)
    obs, info = env.reset(seed=0)
    obs, *_ = env.step(int(np.argmax(info[MASK_KEY])))
    assert env.observation_space.contains(obs)


def test_registered_horizons_are_the_presets_horizons():
    for env_id, (kwargs, steps) in ENV_IDS.items():
        if kwargs.get("action_mode", "bundle") != "bundle":
            assert steps is None, env_id  # compose: several actions per shown bundle; the env truncates itself
        else:
            base = "default" if kwargs["preset"] == "instacart" else kwargs["preset"]  # instacart = default on real data
            assert steps == PRESETS[base].horizon, env_id
    assert ENV_IDS["bundlerl/BundleRec-small-v0"][1] == SMALL.horizon == 10


def test_gym_make_default_id_has_horizon_and_small_override():
    env = gym.make("bundlerl/BundleRec-v0", preset="small")
    assert env.spec.max_episode_steps == 20
    assert env.unwrapped.config.name == "small"
    assert "bundlerl/BundleRec-compose-v0" in gym.registry


def test_instacart_preset_without_a_folder_names_the_variable(monkeypatch):
    # library code never falls back to the repository's ../shared neighbour
    monkeypatch.delenv("BUNDLERL_INSTACART", raising=False)
    with pytest.raises(ConfigError, match="BUNDLERL_INSTACART"):
        instacart_config()


def test_instacart_preset_missing_folder_says_where(tmp_path):
    with pytest.raises(ConfigError, match="products.csv"):
        instacart_config(tmp_path / "nowhere")


@pytest.mark.parametrize("bad", [dict(K=0), dict(horizon=0), dict(reward="likes"), dict(source="csv"),
                                 dict(source="instacart"), dict(profile_dim=1000), dict(refresh_every=0),
                                 dict(invalid_action_penalty=-1.0), dict(n_items=True)])
def test_env_config_rejects_bad_fields(bad):
    with pytest.raises(ConfigError, match="EnvConfig"):
        EnvConfig(**bad)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match="small"):
        get_config("tiny")


# ---------------------------------------------------------------------- determinism, batch = singles
def _single_rollout(seed: int, n_steps: int, action_seed: int = 0, config=SMALL):
    env = BundleRecEnv(config)
    rng = np.random.default_rng(action_seed)
    obs, info = env.reset(seed=seed)
    trace = []
    for _ in range(n_steps):
        a = int(_random_valid(info[MASK_KEY][None], rng)[0])
        obs, r, term, trunc, info = env.step(a)
        trace.append((a, r, term, trunc, obs))
        if term or trunc:
            obs, info = env.reset()
    return trace


def test_same_seed_same_single_trajectory_and_different_seed_differs():
    a, b = _single_rollout(5, 40), _single_rollout(5, 40)
    c = _single_rollout(6, 40)
    for (a1, r1, te1, tr1, o1), (a2, r2, te2, tr2, o2) in zip(a, b):
        assert (a1, r1, te1, tr1) == (a2, r2, te2, tr2)
        for k in OBS_KEYS:
            np.testing.assert_array_equal(o1[k], o2[k])
    assert any(not np.array_equal(x[4][PROFILE_KEY], y[4][PROFILE_KEY]) or x[1] != y[1] for x, y in zip(a, c))


def test_same_seed_same_vec_trajectory():
    def run():
        v = BundleRecVecEnv(SMALL, num_envs=6, seed=11)
        obs = v.reset()
        rng = np.random.default_rng(0)
        out = []
        for _ in range(25):
            obs, r, d, _ = v.step(_random_valid(v.action_masks(), rng))
            out.append((r.copy(), d.copy(), obs[CANDIDATES_KEY].copy(), obs[SESSION_KEY].copy()))
        return out

    for x, y in zip(run(), run()):
        for u, w in zip(x, y):
            np.testing.assert_array_equal(u, w)


def test_batch_of_n_equals_n_single_envs_with_the_same_seeds():
    """Row i of a vec env seeded s behaves as BundleRecEnv reset with seed s + i (SB3's convention),
    across auto-resets, given the same actions."""
    N, seed, T = 4, 21, 30
    v = BundleRecVecEnv(SMALL, num_envs=N, seed=seed)
    vobs = v.reset()
    singles = [BundleRecEnv(SMALL) for _ in range(N)]
    sobs = [e.reset(seed=seed + i)[0] for i, e in enumerate(singles)]
    rng = np.random.default_rng(3)
    n_done = 0
    for _ in range(T):
        for i in range(N):
            for k in OBS_KEYS:
                _close(vobs[k][i], sobs[i][k], msg=f"row {i} key {k}")
        actions = _random_valid(v.action_masks(), rng)
        vobs, vr, vd, vinfo = v.step(actions)
        for i, e in enumerate(singles):
            o, r, term, trunc, _ = e.step(int(actions[i]))
            _close(r, vr[i])
            assert (term or trunc) == vd[i]
            if term or trunc:
                n_done += 1
                for k in OBS_KEYS:
                    _close(vinfo[i]["terminal_observation"][k], o[k])
                assert vinfo[i]["TimeLimit.truncated"] == (trunc and not term)
                o, _ = e.reset()
            sobs[i] = o
    assert n_done > 0, "the test must cross at least one auto-reset"


# ---------------------------------------------------------------------- no leak (SIMULATOR.md property 7)
def test_observation_ignores_hidden_state():
    """Two users with the same profile and the same observable history but different hidden state
    (taste, needs, budget, fatigue moved apart by the real dynamics) get identical observations."""
    v = BundleRecVecEnv(SMALL, num_envs=2, seed=0)
    core = v.core
    v.reset()
    # Same episode key for both rows -> same persona (profile text) and same initial draws ...
    g0, g1 = np.random.default_rng(123), np.random.default_rng(123)
    core.seed_rows(np.array([0, 1]), [g0, g1])
    core.reset_rows()
    st = core.state
    # ... then make the hidden state of row 1 very different.
    rng = np.random.default_rng(9)
    theta = rng.normal(size=st.theta.shape[1]).astype(np.float32)
    st.theta[1] = theta / np.linalg.norm(theta)
    st.needs[1] = 1.0 - st.needs[1]
    st.budget[1] = st.budget[1] * 7.0
    st.fatigue[1] = 0.8
    real_step = core.model.step

    def step_same_response(state, bundles, rngs):
        resp = real_step(state, bundles, rngs)  # real dynamics on both rows (hidden states diverge further)
        if len(bundles) == 2:  # report row 0's observable response for both rows
            for f in dataclasses.fields(resp):
                arr = getattr(resp, f.name)
                if isinstance(arr, np.ndarray) and arr.shape[:1] == (2,):
                    arr[1] = arr[0]
        return resp

    core.model.step = step_same_response
    obs = core.observe()
    for t in range(8):
        for k in OBS_KEYS:
            np.testing.assert_array_equal(obs[k][0], obs[k][1], err_msg=f"key {k} differs at step {t}")
        a = np.array([_first_valid(obs[MASK_KEY][:1])[0]] * 2)
        out = core.step(a)
        if out.terminated[0] or out.truncated[0]:
            break
        obs = core.observe()
    assert not np.allclose(core.state.theta[0], core.state.theta[1]), "hidden states must differ for the test to mean anything"


# ---------------------------------------------------------------------- spaces, episode end
def test_observations_stay_in_the_declared_space_over_rollouts():
    v = BundleRecVecEnv(SMALL, num_envs=16, seed=2)
    obs = v.reset()
    rng = np.random.default_rng(1)
    space = v.observation_space
    for _ in range(40):
        for i in range(v.num_envs):
            o = {k: obs[k][i] for k in obs}
            assert space.contains(o), {k: (o[k].min(), o[k].max()) for k in o}
        obs, _, _, _ = v.step(_random_valid(v.action_masks(), rng))


def test_horizon_truncates_and_never_terminates():
    cfg = SMALL
    params = cfg.shopper_params()
    names = {f.name for f in dataclasses.fields(params)}
    changes = {k: v for k, v in dict(lambda_0=-60.0, lambda_f=0.0, budget=False).items() if k in names}
    stay = cfg.replace(shopper=dataclasses.replace(params, **changes), name="small-stay")
    env = gym.make("bundlerl/BundleRec-small-v0", preset=stay)
    obs, info = env.reset(seed=0)
    for t in range(1, stay.horizon + 1):
        obs, r, term, trunc, info = env.step(int(np.argmax(info[MASK_KEY])))
        if t < stay.horizon:
            assert not term and not trunc, f"ended early at step {t}"
    assert trunc and not term


def test_termination_and_truncation_are_exclusive_and_consistent():
    v = BundleRecVecEnv(SMALL, num_envs=32, seed=4)
    v.reset()
    rng = np.random.default_rng(0)
    lengths = np.zeros(v.num_envs, int)
    seen_term = False
    for _ in range(60):
        _, _, d, infos = v.step(_random_valid(v.action_masks(), rng))
        out = v.last_outcome
        lengths += 1
        assert not (out.terminated & out.truncated).any()
        for i in np.flatnonzero(d):
            if out.truncated[i]:
                assert lengths[i] == SMALL.horizon and infos[i]["TimeLimit.truncated"]
            else:
                assert lengths[i] <= SMALL.horizon and not infos[i]["TimeLimit.truncated"]
                seen_term = True
            assert infos[i]["episode"]["l"] == lengths[i]
        lengths[d] = 0
    assert (lengths <= SMALL.horizon).all()
    assert seen_term, "some shoppers must leave on their own"


# ---------------------------------------------------------------------- render, invalid actions
def test_render_ansi_shows_titles_prices_and_response():
    env = BundleRecEnv(SMALL, render_mode="ansi")
    obs, info = env.reset(seed=3)
    assert "session start" in env.render()
    obs, *_ , info = env.step(int(np.argmax(info[MASK_KEY])))
    text = env.render()
    cat = env.world.observable_catalog
    shown = [int(i) for i in info["shown"] if i >= 0]
    assert shown
    for i in shown:
        assert str(cat.titles[i]) in text and f"{cat.price[i]:.2f}" in text
    assert "response:" in text and ("clicked" in text or "no click" in text)


@pytest.mark.parametrize("action", [-1, 10_000, 2.5, "3"])
def test_out_of_range_action_raises_naming_the_mask(action):
    env = BundleRecEnv(SMALL)
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match="mask"):
        env.step(action)


def test_masked_action_is_penalised_and_shows_nothing():
    env = BundleRecEnv(SMALL)
    obs, info = env.reset(seed=0)
    env.core.cand_mask[0, 2] = False  # a candidate the builder could not fill
    assert not env.action_masks()[2]
    obs, r, term, trunc, info = env.step(2)
    assert info["invalid_action"] and not info["click"]
    assert r == -SMALL.invalid_action_penalty
    assert (info["shown"] < 0).all()


def test_step_before_reset_is_an_error():
    env = BundleRecEnv(SMALL)
    with pytest.raises(gym.error.ResetNeeded):
        env.step(0)


# ---------------------------------------------------------------------- compose mode
def test_compose_builds_item_by_item_then_the_shopper_responds():
    env = BundleRecEnv(SMALL, action_mode="compose")
    M = SMALL.compose_items
    assert env.action_space.n == M + 1
    obs, info = env.reset(seed=1)
    mask = info[MASK_KEY]
    assert not mask[M], "'done' is masked while the partial bundle is empty"
    j = int(np.argmax(mask[:M]))
    obs, r, term, trunc, info = env.step(j)
    assert not info["responded"] and r == 0.0 and env.core.partial_len[0] == 1
    assert info[MASK_KEY][M] and not info[MASK_KEY][j]
    np.testing.assert_allclose(obs[SESSION_KEY][-1], 1 / SMALL.K_max)
    # fill up to K_max: the last addition triggers the response
    for _ in range(SMALL.K_max - 1):
        j = int(np.argmax(info[MASK_KEY][:M]))
        obs, r, term, trunc, info = env.step(j)
    assert info["responded"] and (info["shown"] >= 0).sum() == SMALL.K_max
    assert env.core.partial_len[0] == 0 and env.core.t[0] == 1


def test_compose_pool_is_the_distinct_candidate_items_in_rank_order():
    env = BundleRecEnv(SMALL, action_mode="compose")
    env.reset(seed=3)
    core = env.core
    rng = np.random.default_rng(0)
    for _ in range(3):
        core.cand_items[:] = rng.integers(-1, 12, core.cand_items.shape)  # repeats and holes on purpose
        items, slot = core.compose.items(core.cand_items)
        flat = core.cand_items.reshape(core.n, -1)
        for r in range(core.n):
            want = list(dict.fromkeys(int(x) for x in flat[r] if x >= 0))[: SMALL.compose_items]
            assert items[r, : len(want)].tolist() == want and (items[r, len(want) :] == -1).all()
            assert [int(flat[r, p]) for p in slot[r, : len(want)]] == want


def test_compose_done_shows_the_partial_bundle():
    env = BundleRecEnv(SMALL, action_mode="compose")
    obs, info = env.reset(seed=2)
    M = SMALL.compose_items
    j = int(np.argmax(info[MASK_KEY][:M]))
    item = env.core.compose.items(env.core.cand_items)[0][0, j]
    # row j of the candidates describes the bundle {item}: its size feature is 1/K_max
    from bundlerl.candidates.types import CANDIDATE_FEATURES

    assert obs[CANDIDATES_KEY][j, CANDIDATE_FEATURES.index("size")] == pytest.approx(1 / SMALL.K_max)
    env.step(j)
    obs, r, term, trunc, info = env.step(M)
    assert info["responded"] and list(info["shown"][info["shown"] >= 0]) == [item]


# ---------------------------------------------------------------------- SB3 / sb3-contrib on the vec env
def test_vec_env_trains_with_maskable_ppo_and_exposes_masks():
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported

    v = BundleRecVecEnv(SMALL, num_envs=4, seed=0)
    assert is_masking_supported(v)
    masks = get_action_masks(v)
    assert masks.shape == (4, SMALL.K) and masks.dtype == bool
    from bundlerl.agents.sb3 import quiet_logger

    model = MaskablePPO("MultiInputPolicy", v, n_steps=8, batch_size=16, n_epochs=1, seed=0, device="cpu")
    model.set_logger(quiet_logger())  # SB3's default logger would leave an SB3-<date> folder in the temp dir
    model.learn(total_timesteps=32)
    obs = v.reset()
    actions, _ = model.predict(obs, deterministic=True, action_masks=v.action_masks())
    assert v.action_masks()[np.arange(4), actions].all()


def test_cached_pools_stay_exact_between_rebuilds():
    """Without rebuilds, the in-place updates keep novelty and rel_history equal to their definitions
    (CANDIDATE_FEATURES) and never re-offer a bought item."""
    from bundlerl.candidates.types import CANDIDATE_FEATURES as CF

    cfg = SMALL.replace(refresh_every=1000, refresh_on_purchase=False, name="small-norefresh")
    v = BundleRecVecEnv(cfg, num_envs=32, seed=5)
    v.reset()
    rng = np.random.default_rng(2)
    core = v.core
    emb = v.world.observable_catalog.embeddings
    checked = 0
    for _ in range(12):
        v.step(_random_valid(v.action_masks(), rng))
        items, valid = core.cand_items, core.cand_items >= 0
        ic = np.maximum(items, 0)
        rows = np.arange(core.n)[:, None, None]
        size = np.maximum(valid.sum(2), 1)
        nov = np.where(valid.any(2), (valid & ~core.shown_items[rows, ic]).sum(2) / size, 0.0)
        np.testing.assert_allclose(core.cand_feat[:, :, CF.index("novelty")], nov, atol=1e-6)
        h = core._history_vectors()
        relh = np.where(valid, np.einsum("nkmd,nd->nkm", emb[ic], h), 0.0).sum(2) / size
        np.testing.assert_allclose(core.cand_feat[:, :, CF.index("rel_history")], relh, atol=1e-5)
        assert not (core.bought_items[rows, ic] & valid & core.cand_mask[..., None]).any()
        checked += int(core.shown_items.any())
    assert checked and core.has_hist.any()


def test_terminated_sessions_are_not_rebuilt_but_truncated_ones_are():
    """A shopper who left gets no new pool (the rebuild would be thrown away by the reset); a session cut at
    the horizon still does (its terminal observation is bootstrapped from)."""
    cfg = SMALL.replace(refresh_every=1, name="small-refresh1")  # every responding row is due for a rebuild
    v = BundleRecVecEnv(cfg, num_envs=32, seed=6)
    v.reset()
    core, rng = v.core, np.random.default_rng(3)
    seen = []
    real = core._refresh
    core._refresh = lambda rows: (seen.append(np.asarray(rows)), real(rows))[1]
    n_term = n_trunc = 0
    for _ in range(2 * cfg.horizon):
        seen.clear()
        v.step(_random_valid(v.action_masks(), rng))
        out = v.last_outcome
        rebuilt = np.zeros(core.n, bool)
        rebuilt[np.concatenate(seen)] = True
        assert not (rebuilt & out.terminated).any()
        assert rebuilt[out.truncated].all()
        assert rebuilt[out.responded & ~out.terminated].all()
        n_term += int(out.terminated.sum())
        n_trunc += int(out.truncated.sum())
    assert n_term > 0 and n_trunc > 0


def test_session_fork_copies_every_per_row_array_and_replays_identically():
    from bundlerl.env.vec_env import BundleRecVecEnv

    v = BundleRecVecEnv("small", num_envs=5, seed=4)
    v.reset()
    core = v.core
    for table in (core, core.log, core.pool, core.compose):  # the batch and its parts: each declares its rows
        per_row = {k for k, x in vars(table).items() if isinstance(x, np.ndarray) and x.ndim and x.shape[0] == core.n}
        assert per_row == set(type(table).row_names()), (type(table).__name__, per_row ^ set(type(table).row_names()))
    rng = np.random.default_rng(0)
    for _ in range(3):
        m = core.action_masks()
        core.step(np.argmax(rng.random(m.shape) * m, axis=1))
    rows = np.array([4, 1, 1])
    part, whole = core.fork(rows), core.fork(np.arange(core.n))
    assert part.n == 3 and part.state is not core.state
    budget, t = core.state.budget.copy(), core.t.copy()
    for _ in range(3):  # a fork of some rows replays exactly what a fork of all rows does on them
        a = np.argmax(part.action_masks(), axis=1)
        full = np.zeros(core.n, np.int64)
        full[rows] = a
        out_p, out_w = part.step(a), whole.step(full)
        np.testing.assert_array_equal(out_p.reward, out_w.reward[rows])
        np.testing.assert_array_equal(part.cand_items, whole.cand_items[rows])
        np.testing.assert_array_equal(part.state.needs, whole.state.needs[rows])
    np.testing.assert_array_equal(core.state.budget, budget)  # stepping forks never touches the source
    np.testing.assert_array_equal(core.t, t)
    with pytest.raises(ValueError, match="row indices"):
        core.fork(np.array([7]))


def test_the_shopper_pays_the_discounted_price_it_is_shown():
    """One home of the bundle discounts (the builder config): a shopper buying a whole bundle pays exp(log_price)
    of the candidate it was shown, for any discount schedule."""
    import dataclasses

    from bundlerl.candidates.types import CANDIDATE_FEATURES as CF

    eager = SMALL.shopper_params().replace(tau_b=-5.0, tau_c=-5.0, budget=False)
    builder = dataclasses.replace(SMALL.builder_config(), discounts={2: 0.2, 3: 0.35})
    cfg = SMALL.replace(shopper=eager, builder=builder, name="small-discounts")
    v = BundleRecVecEnv(cfg, num_envs=16, seed=0)
    obs = v.reset()
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(10):
        a = _random_valid(obs[MASK_KEY], rng)
        log_price = obs[CANDIDATES_KEY][np.arange(16), a, CF.index("log_price")]
        size = (v.core.cand_items[np.arange(16), a] >= 0).sum(1)
        obs, *_ = v.step(a)
        out = v.last_outcome
        whole = (out.n_bought == size) & (size >= 2)
        np.testing.assert_allclose(out.revenue[whole], np.exp(log_price[whole]), rtol=1e-5)
        checked += int(whole.sum())
    assert checked > 5
