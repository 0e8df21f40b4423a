"""The log schema: written atomically by the writer, read back exactly, and every kind of damage named by the loader
(file, row, column); collection from the simulator with ground truth and exploring loggers."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _log_data import DIMS, rows, write
from hypothesis import given
from hypothesis import strategies as st

from bundlerl.agents.baselines import ComplementGreedyPolicy, RandomPolicy
from bundlerl.agents.exploration import EpsilonGreedy, PropensityFloor, Softmax, exploring
from bundlerl.agents.policy import PolicyError, uniform_valid
from bundlerl.env.observation import SPEC_VERSION, observation_spec
from bundlerl.evaluation.logs import LogDataset, LogError, collect_logs


def test_round_trip(tmp_path):
    data = rows()
    write(tmp_path, data, truth=True)
    ds = LogDataset.open(tmp_path)
    assert ds.dims == DIMS and ds.n_rows == 12 and ds.has_truth
    (part,) = list(ds.parts(truth=True))
    for k in ("context_id", "step", "action", "reward", "pscore"):
        np.testing.assert_allclose(part.columns[k], data[k])
    np.testing.assert_allclose(part.columns["candidates"], data["candidates"].astype(np.float32))
    assert part.columns["item_ids"].shape == (12, DIMS.K, DIMS.M)
    assert part.observation()["candidates"].shape == (12, DIMS.K, DIMS.F)
    assert part.truth.shape == (12, DIMS.K)


def test_parts_append_and_no_temporaries(tmp_path):
    write(tmp_path)
    write(tmp_path)  # a second writer appends part 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        "log.json", "part-000000.parquet", "part-000001.parquet"]
    logs = LogDataset.open(tmp_path)
    assert logs.n_rows == 24
    assert (logs.info["parts"], logs.info["rows"], logs.info["dims"]) == (2, 24, DIMS.to_dict())


def _damage(tmp_path, **changes):
    data = rows()
    for k, v in changes.items():
        data[k] = v(data) if callable(v) else v
    return write(tmp_path, data)


@pytest.mark.parametrize("change, column, words", [
    ({"action_prob": lambda d: d["action_prob"] * 0.9}, "action_prob", "sums to"),
    ({"pscore": lambda d: np.where(np.arange(12) == 5, 0.0, d["pscore"])}, "pscore", "must be > 0"),
    ({"pscore": lambda d: d["pscore"] * 0.5}, "pscore", "differs from action_prob"),
    ({"pscore": lambda d: np.where(np.arange(12) == 5, np.nan, d["pscore"])}, "pscore", "must be finite"),
    ({"step": lambda d: np.where(np.arange(12) == 4, 2, d["step"])}, "step", "step order"),
    ({"spec_version": lambda d: np.where(np.arange(12) == 3, 99, d["spec_version"])}, "spec_version", "version 99"),
    ({"action": lambda d: np.where(np.arange(12) == 2, 7, d["action"])}, "action", "outside"),
])
def test_loader_names_file_row_and_column(tmp_path, change, column, words):
    _damage(tmp_path, **change)
    with pytest.raises(LogError, match=rf"part-000000\.parquet: row \d+, column '{column}'.*{words}"):
        list(LogDataset.open(tmp_path).parts())


def test_zero_propensity_row_is_named(tmp_path):
    data = rows()
    data["action_prob"] = np.tile([1.0, 0.0, 0.0], (12, 1))
    data["action"] = np.where(np.arange(12) == 6, 1, 0)
    data["pscore"] = data["action_prob"][np.arange(12), data["action"]]
    write(tmp_path, data)
    with pytest.raises(LogError, match="row 6, column 'pscore'.*propensity 0.0"):
        list(LogDataset.open(tmp_path).parts())


def test_missing_column_and_wrong_type(tmp_path):
    write(tmp_path)
    f = tmp_path / "part-000000.parquet"
    t = pq.read_table(f)
    pq.write_table(t.drop_columns(["pscore"]).replace_schema_metadata(t.schema.metadata), f)
    with pytest.raises(LogError, match="column 'pscore' is missing"):
        LogDataset.open(tmp_path)
    t2 = t.set_column(t.schema.get_field_index("reward"), "reward", t.column("reward").cast(pa.float32()))
    pq.write_table(t2.replace_schema_metadata(t.schema.metadata), f)
    with pytest.raises(LogError, match="column 'reward' has type float"):
        LogDataset.open(tmp_path)


def test_spec_mismatch_and_not_a_log(tmp_path):
    write(tmp_path)
    other = observation_spec(DIMS.P, DIMS.K + 1, DIMS.F)
    v = SPEC_VERSION
    with pytest.raises(LogError, match=rf"version {v} \(K=3\) does not match the policy.s, version {v} \(K=4\)"):
        LogDataset.open(tmp_path, expect_spec=other)
    ds = LogDataset.open(tmp_path)  # the same check on a log already open ('bundlerl ope', per trained policy)
    ds.check_spec(observation_spec(DIMS.P, DIMS.K, DIMS.F))
    with pytest.raises(LogError, match=rf"version {v} \(K=3\) does not match the policy.s, version {v} \(K=4\)"):
        ds.check_spec(other)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LogError, match="no part-"):
        LogDataset.open(tmp_path / "empty")
    pq.write_table(pa.table({"x": [1]}), tmp_path / "part-000009.parquet")
    with pytest.raises(LogError, match="part-000009.parquet: no 'bundlerl.log' metadata"):
        LogDataset.open(tmp_path)


def test_writer_refuses_bad_shapes(tmp_path):
    data = rows()
    data["candidates"] = data["candidates"][:, :2]
    with pytest.raises(LogError, match="'candidates' has shape"):
        write(tmp_path, data)
    data = rows()
    del data["reward"]
    with pytest.raises(LogError, match="miss column 'reward'"):
        write(tmp_path, data)


# ------------------------------------------------------------------ exploration wrappers
_masks = st.lists(st.lists(st.booleans(), min_size=4, max_size=4), min_size=1, max_size=6)


def _obs(mask, seed=0):
    m = np.asarray(mask, np.float32)
    feats = np.random.default_rng(seed).uniform(0, 1, (m.shape[0], 4, DIMS.F)).astype(np.float32)
    return {"candidates": feats * m[..., None], "action_mask": m}


@given(_masks, st.floats(0, 1), st.floats(0.05, 5), st.floats(0, 1))
def test_exploration_distributions(mask, eps, temp, floor):
    obs = _obs(mask)
    base = ComplementGreedyPolicy()
    valid = np.asarray(mask)
    has = valid.any(axis=1)
    for pol in (EpsilonGreedy(base, eps), Softmax(base, temp), PropensityFloor(Softmax(base, temp), floor)):
        p = pol.action_probabilities(obs)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
        assert (p[has] >= 0).all() and (p[has][~valid[has]] == 0).all()
    p = EpsilonGreedy(base, eps).action_probabilities(obs)
    assert (p[has][valid[has]] >= eps / valid.sum(axis=1)[has].repeat(valid.sum(axis=1)[has]) - 1e-12).all()
    p = PropensityFloor(base, floor).action_probabilities(obs)
    u = uniform_valid(obs["action_mask"])
    assert (p >= floor * u - 1e-12).all()


def test_softmax_uses_scores_and_exploring_rules():
    obs = _obs([[1, 1, 1, 0]])
    base = ComplementGreedyPolicy()
    s = base.scores(obs)[0, :3]
    p = Softmax(base, 0.5).action_probabilities(obs)[0]
    np.testing.assert_allclose(p[:3], np.exp(s / 0.5) / np.exp(s / 0.5).sum())
    with pytest.raises(PolicyError, match="not both"):
        exploring(base, epsilon=0.1, temperature=1.0)
    with pytest.raises(PolicyError, match="epsilon"):
        exploring(base, epsilon=1.5)
    assert exploring(base, temperature=1.0, floor=0.05).name == "complement-greedy+softmax1+floor0.05"


# ------------------------------------------------------------------ collection from the simulator
def test_collect_small(tmp_path):
    pol = exploring(ComplementGreedyPolicy(), epsilon=0.3)
    info = collect_logs(pol, "small", 40, tmp_path / "log", seed=3, num_envs=16, rows_per_part=100, progress=False)
    ds = LogDataset.open(tmp_path / "log")
    assert ds.info["episodes"] == 40 and ds.n_rows == info["rows"] and len(ds.part_paths) == info["parts"] >= 2
    ctx = []
    for part in ds.parts(truth=True):
        c = part.columns
        ctx.append(np.unique(c["context_id"]))
        assert (c["pscore"] >= 0.3 / 8 - 1e-9).all()
        er = part.truth
        assert np.isnan(er[~c["action_mask"]]).all() and np.isfinite(er[c["action_mask"]]).all()
        ended = c["terminated"] | c["truncated"]
        last = np.r_[c["context_id"][1:] != c["context_id"][:-1], True]
        np.testing.assert_array_equal(ended, last)  # each context ends exactly at its last row
    ctx = np.concatenate(ctx)
    assert np.array_equal(np.sort(ctx), np.arange(40))  # whole episodes, none split across parts
    with pytest.raises(LogError, match="already holds a log"):
        collect_logs(pol, "small", 2, tmp_path / "log", progress=False)
    (tmp_path / "log" / "log.json").unlink()  # as an interrupted run leaves it
    with pytest.raises(LogError, match=r"already holds an unfinished log \(part files, no log.json"):
        collect_logs(pol, "small", 2, tmp_path / "log", progress=False)


def test_random_logger_propensities(tmp_path):
    collect_logs(RandomPolicy(np.random.default_rng(0)), "small", 8, tmp_path, truth=False, progress=False)
    (part,) = list(LogDataset.open(tmp_path).parts())
    m = part.columns["action_mask"]
    np.testing.assert_allclose(part.columns["pscore"], 1.0 / m.sum(axis=1))


def test_parts_are_cut_at_context_boundaries(tmp_path):
    data = rows(n_episodes=10, length=3)
    write(tmp_path, data, truth=True, rows_per_part=7)  # 7 rows -> cut after 9 (3 whole episodes)
    ds = LogDataset.open(tmp_path)
    sizes = [p.n for p in ds.parts(truth=True)]
    assert sizes == [9, 9, 9, 3]


# ------------------------------------------------------------------ issue 18: outcomes, masks, log.json
@pytest.mark.parametrize("column", ["reward", "revenue"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_outcome_is_refused(tmp_path, column, value):
    _damage(tmp_path, **{column: lambda d: np.where(np.arange(12) == 7, value, d[column])})
    with pytest.raises(LogError, match=rf"part-000000\.parquet: row 7, column '{column}': .*must be finite"):
        list(LogDataset.open(tmp_path).parts())


@pytest.mark.parametrize("column", ["reward", "revenue"])
@pytest.mark.parametrize("value", [1e300, -1e300, 1e50])
def test_enormous_outcome_is_refused(tmp_path, column, value):
    """Issue 18: a finite but enormous outcome (the user's 1e300) is refused by file, row and column, with the
    bound (float32 max / rows) and what to do, instead of overflowing the reward models."""
    _damage(tmp_path, **{column: lambda d: np.where(np.arange(12) == 7, value, d[column])})
    with pytest.raises(LogError, match=rf"part-000000\.parquet: row 7, column '{column}': .*too large: in a log of "
                                       r"12 rows .* at most 2\.84e\+37 .*rescale the column"):
        list(LogDataset.open(tmp_path).parts())


@given(rows_=st.integers(1, 10**9), share=st.floats(0.0, 1.0))
def test_outcome_limit_bounds_the_float32_sum(rows_, share):
    """Property: ``rows`` outcomes within the limit sum to a finite float32 (the reward models' gradient sums), and
    the limit shrinks as 1 / rows."""
    from bundlerl.evaluation.logs.loader import outcome_limit

    lim = outcome_limit(rows_)
    assert np.isfinite(np.float32(share * lim)) and share * lim * rows_ <= float(np.finfo(np.float32).max) * (1 + 1e-12)
    assert outcome_limit(rows_) <= outcome_limit(max(rows_ // 2, 1))


def test_outcomes_at_the_limit_give_finite_estimates_without_warnings(tmp_path):
    """The bound is enough: every outcome at +-limit, and the estimators and reward models run without overflow."""
    import warnings

    from bundlerl.agents.baselines import PopularityPolicy
    from bundlerl.evaluation.logs.loader import outcome_limit
    from bundlerl.evaluation.ope.evaluate import OPEConfig, off_policy_evaluate

    lim = outcome_limit(12)
    write(tmp_path, {**(d := rows()), "reward": np.where(d["reward"] > 0.3, lim, -lim), "revenue": np.full(12, lim)})
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        res = off_policy_evaluate(LogDataset.open(tmp_path), {"popularity": PopularityPolicy()},
                                  OPEConfig(n_boot=5, progress=False, allow_unsupported=True))
    for name, e in res[0].estimates.items():
        assert np.isfinite(e.value), name
        assert not np.isfinite(e.low) or (np.isfinite(e.high) and e.low <= e.high), name


def test_non_finite_candidate_feature_is_named(tmp_path):
    def nan_feature(d):
        c = d["candidates"].copy()
        c[4, 1, 2] = np.nan
        return c

    _damage(tmp_path, candidates=nan_feature)
    with pytest.raises(LogError, match=r"part-000000\.parquet: row 4, column 'candidates': candidate 1's feature 2 "
                                       r"\('.+'\) is nan"):
        list(LogDataset.open(tmp_path).parts())


def test_masked_action_and_mass_on_masked_are_refused(tmp_path):
    data = rows()
    data["action_mask"][3] = [data["action"][3] != k for k in range(DIMS.K)]  # the logged action masked
    write(tmp_path / "a", data)
    with pytest.raises(LogError, match=r"row 3, column 'action': action \d is a masked"):
        list(LogDataset.open(tmp_path / "a").parts())
    data = rows()
    k = (data["action"][5] + 1) % DIMS.K  # another candidate masked, the logger still gives it 1/3
    data["action_mask"][5, k] = False
    write(tmp_path / "b", data)
    with pytest.raises(LogError, match=rf"row 5, column 'action_prob': probability 0.333.* on masked candidate {k}"):
        list(LogDataset.open(tmp_path / "b").parts())


def test_log_json_is_written_last_and_required(tmp_path):
    from bundlerl.evaluation.logs.writer import LogWriter

    data = rows()
    spec = observation_spec(DIMS.P, DIMS.K, DIMS.F)
    with pytest.raises(RuntimeError):  # an interrupted writer: parts, no log.json
        with LogWriter(tmp_path, DIMS, spec, rows_per_part=3) as w:
            w.write(data)
            raise RuntimeError("interrupted")
    assert any(tmp_path.glob("part-*.parquet")) and not (tmp_path / "log.json").exists()
    with pytest.raises(LogError, match="incomplete log: no log.json - the writer did not finish.*re-run bundlerl log "
                                       "into an empty folder"):
        LogDataset.open(tmp_path)


def test_files_are_checked_against_log_json(tmp_path):
    import json
    import shutil

    write(tmp_path)
    info = json.loads((tmp_path / "log.json").read_text())
    (tmp_path / "log.json").write_text(json.dumps({**info, "dims": {**info["dims"], "K": 8}}))
    with pytest.raises(LogError, match=r"log.json: says K=8 but the part files have K=3"):
        LogDataset.open(tmp_path)
    (tmp_path / "log.json").write_text(json.dumps(info))
    LogDataset.open(tmp_path)
    shutil.copy(tmp_path / "part-000000.parquet", tmp_path / "part-000001.parquet")  # a foreign part dropped in
    with pytest.raises(LogError, match=r"says 1 part file\(s\) but the folder holds 2"):
        LogDataset.open(tmp_path)
    (tmp_path / "part-000001.parquet").unlink()
    (tmp_path / "log.json").write_text(json.dumps({**info, "rows": 99}))
    with pytest.raises(LogError, match="says 99 decisions but the part files hold 12"):
        LogDataset.open(tmp_path)
    (tmp_path / "log.json").write_text("[1, 2]")
    with pytest.raises(LogError, match="not a JSON object"):
        LogDataset.open(tmp_path)


def test_truth_folder_points_to_its_parent(tmp_path):
    write(tmp_path, truth=True)
    with pytest.raises(LogError, match=r"this is the truth/ folder of the log .*; pass its parent"):
        LogDataset.open(tmp_path / "truth")
    write(tmp_path / "nt")
    with pytest.raises(LogError, match=r"no ground truth.*truth=False"):
        list(LogDataset.open(tmp_path / "nt").parts(truth=True))


# ------------------------------------------------------------------ fresh user 7: observations, items, log.json, checksums
@pytest.mark.parametrize("column", ["profile", "history", "session"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, 3e38, -2e6])
def test_non_finite_or_huge_observation_is_refused(tmp_path, column, value):
    """A NaN / inf / enormous observation value (which crashed a trained policy's network in torch) is refused by
    file, row and column, with the bound."""
    def bad(d):
        v = d[column].astype(np.float64)
        v[7, 1] = value
        return v

    _damage(tmp_path, **{column: bad})
    with pytest.raises(LogError, match=rf"part-000000\.parquet: row 7, column '{column}': {column}\[1\] is .*must be "
                                       r"finite and at most 1e\+06 in magnitude"):
        list(LogDataset.open(tmp_path).parts())


def test_huge_candidate_feature_is_refused(tmp_path):
    def bad(d):
        c = d["candidates"].copy()
        c[4, 1, 2] = 1e30
        return c

    _damage(tmp_path, candidates=bad)
    with pytest.raises(LogError, match=r"row 4, column 'candidates': candidate 1's feature 2 \('.+'\) is 1e\+30"):
        list(LogDataset.open(tmp_path).parts(["reward"]))


@pytest.mark.parametrize("column, value", [("revenue", np.inf), ("revenue", 1e38), ("profile", np.nan)])
def test_checked_columns_are_checked_whatever_is_read(tmp_path, column, value):
    """The revenue (and observations) are checked even when the caller reads other columns only (ope read reward,
    not revenue, so an inf revenue passed)."""
    def bad(d):
        v = d[column].astype(np.float64)
        v[7] = value
        return v

    _damage(tmp_path, **{column: bad})
    with pytest.raises(LogError, match=rf"row 7, column '{column}'"):
        list(LogDataset.open(tmp_path).parts(["reward"]))


@pytest.mark.parametrize("change, column, words", [
    ({"n_bought": lambda d: np.where(np.arange(12) == 3, 50, d["n_bought"])}, "n_bought", r"50 items bought: .*\[0, M=2\]"),
    ({"item_ids": lambda d: np.where(np.arange(12)[:, None, None] == 3, -7, d["item_ids"])}, "item_ids", "item id -7"),
    ({"bought_items": lambda d: np.where(np.arange(12)[:, None] == 3, -2, d["bought_items"])}, "bought_items",
     "item id -2"),
    ({"bought_items": lambda d: np.where(np.arange(12)[:, None] == 3, 999, d["bought_items"]),
      "n_bought": lambda d: np.where(np.arange(12) == 3, 2, d["n_bought"])}, "bought_items", "from the shown bundle"),
    ({"n_bought": lambda d: np.where(np.arange(12) == 3, 1, d["n_bought"])}, "n_bought", "holds 0"),
])
def test_item_columns_are_checked(tmp_path, change, column, words):
    _damage(tmp_path, **change)
    with pytest.raises(LogError, match=rf"part-000000\.parquet: row 3, column '{column}': .*{words}"):
        list(LogDataset.open(tmp_path).parts(["reward"]))


def test_non_finite_truth_is_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    write(tmp_path, truth=True)
    assert len(list(LogDataset.open(tmp_path).parts(truth=True))) == 1
    tp = tmp_path / "truth" / "part-000000.parquet"
    t = pq.read_table(tp)
    er = t.column("expected_reward").to_pylist()
    er[5][1] = float("nan")
    i = t.schema.get_field_index("expected_reward")
    t = t.set_column(i, t.schema.field(i), pa.array(er, t.schema.field(i).type)).replace_schema_metadata(t.schema.metadata)
    pq.write_table(t, tp)
    info = json.loads((tmp_path / "log.json").read_text())
    del info["sha256"]  # not the checksum's catch: the row check's
    (tmp_path / "log.json").write_text(json.dumps(info))
    with pytest.raises(LogError, match=r"truth/part-000000\.parquet: row 5, column 'expected_reward': candidate 1's "
                                       "expected reward is nan"):
        list(LogDataset.open(tmp_path).parts(truth=True))


@pytest.mark.parametrize("edit, words", [
    (lambda i: {}, "no 'parts' field"),
    (lambda i: {k: v for k, v in i.items() if k != "obs_spec"}, "no 'obs_spec' field"),
    (lambda i: {k: v for k, v in i.items() if k != "dims"}, "no 'dims' field"),
    (lambda i: {**i, "dims": {**i["dims"], "K": "3"}}, "field 'dims' has K='3'; each size must be an integer"),
    (lambda i: {**i, "rows": "many"}, "field 'rows' is 'many'; it must be an integer"),
    (lambda i: {**i, "episodes": 0}, "field 'episodes' is 0; it must be an integer >= 1"),
    (lambda i: {**i, "episodes": 9}, "says 9 episodes but the part files hold 4 contexts"),
    (lambda i: {**i, "sha256": "x"}, "field 'sha256' is str"),
])
def test_log_json_fields_are_required_and_typed(tmp_path, edit, words):
    write(tmp_path)
    info = json.loads((tmp_path / "log.json").read_text())
    assert LogDataset.open(tmp_path).n_rows == 12
    (tmp_path / "log.json").write_text(json.dumps(edit(info)))
    with pytest.raises(LogError, match=rf"log\.json: .*{words}.*re-run bundlerl log"):
        LogDataset.open(tmp_path)


def test_checksums_catch_bytes_changed_after_writing(tmp_path):
    """A part whose bytes changed after writing (still decoding, same rows) is refused by its SHA-256 in log.json;
    so is a truth part, and a file log.json does not list."""
    import shutil

    import pyarrow.parquet as pq

    write(tmp_path, truth=True)
    info = json.loads((tmp_path / "log.json").read_text())
    assert set(info["sha256"]) == {"part-000000.parquet", "truth/part-000000.parquet"}
    for name in info["sha256"]:
        shutil.copy(tmp_path / name, tmp_path / "copy")
        t = pq.read_table(tmp_path / name)
        pq.write_table(t, tmp_path / name, compression="gzip")  # the same rows, other bytes
        with pytest.raises(LogError, match=rf"{name}: its SHA-256 differs from the one log\.json recorded"):
            LogDataset.open(tmp_path)
        shutil.move(tmp_path / "copy", tmp_path / name)
    LogDataset.open(tmp_path)
