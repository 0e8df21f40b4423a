"""Every public constructor and function (the names bundlerl and each room export) called with bad argument kinds
(None, 0, negative, NaN, a wrong type, a wrong shape), one argument at a time with the others valid: it either works
or raises a BundlerlError whose message names the argument. A plain TypeError / ValueError / AttributeError from
deep inside is a failure: the user would have to read a traceback to learn which argument was wrong.

The walk introspects the exports, so a new public name needs its valid arguments in ``_valid`` (or the test fails)."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from bundlerl.utils.errors import BundlerlError

FIX = Path(__file__).resolve().parent / "fixtures"
ROOMS = ("bundlerl", "bundlerl.env", "bundlerl.agents", "bundlerl.evaluation", "bundlerl.experiment",
         "bundlerl.candidates", "bundlerl.encoders", "bundlerl.sim_data", "bundlerl.sim_data.loaders")

#: Bad argument kinds: name -> value.
BAD = {
    "None": None,
    "zero": 0,
    "negative": -1,
    "NaN": math.nan,
    "wrong type": object(),
    "wrong shape": np.zeros((2, 3, 4), dtype=np.float32),
}

#: Public names that are not called here, and why.
SKIPPED = {
    "Policy": "a Protocol (what a policy provides), not a constructor",
    "TextEncoder": "a Protocol (what an encoder provides), not a constructor",
    "ComplementModel": "built by complementarity.fit / ComplementModel.load from checked inputs; its constructor is "
                       "their internal assembly step",
}


def _public() -> dict[str, object]:
    """Qualified name -> object, each public callable once (classes of errors and constants left out)."""
    out, seen = {}, set()
    for room in ROOMS:
        mod = importlib.import_module(room)
        for name in getattr(mod, "__all__", ()):
            if name.startswith("_"):
                continue
            obj = getattr(mod, name)
            if id(obj) in seen or not callable(obj) or name in SKIPPED:
                continue
            if inspect.isclass(obj) and issubclass(obj, BaseException):
                continue
            seen.add(id(obj))
            out[name] = obj
    return out


PUBLIC = _public()


# ----------------------------------------------------------------------------------- valid arguments, built once
class _Kit:
    """Valid objects to call the public API with (the small world and friends), built on first use."""

    def __init__(self, tmp: Path):
        self.tmp = tmp

    @property
    def world(self):
        from bundlerl.env import build_world

        return build_world("small", progress=False)

    def venv(self, n: int = 2):
        from bundlerl.env import BundleRecVecEnv

        return BundleRecVecEnv("small", num_envs=n, seed=0)

    @property
    def ppo_cfg(self):
        from bundlerl.agents import load_algo_config

        return load_algo_config("ppo", "small", overrides={"num_envs": 2, "n_steps": 8, "batch_size": 16})

    @property
    def model(self):
        from bundlerl.agents import make_model

        if not hasattr(self, "_model"):
            self._model = make_model("ppo", self.venv(), self.ppo_cfg, seed=0)
        return self._model

    @property
    def model_zip(self) -> Path:
        path = self.tmp / "model.zip"
        if not path.exists():
            self.model.save(path)
        return path

    @property
    def result(self):
        from bundlerl.agents import make_baseline
        from bundlerl.evaluation import evaluate

        if not hasattr(self, "_result"):
            self._result = evaluate(make_baseline("random"), "small", n_episodes=2, num_envs=2, progress=False)
        return self._result

    @property
    def comparison(self):
        from bundlerl.evaluation import EvalConfig, named_policies
        from bundlerl.evaluation.compare import compare

        if not hasattr(self, "_cmp"):
            self._cmp = compare(named_policies(["random"]), "small", EvalConfig(episodes=2, num_envs=2, progress=False),
                                log=lambda m: None)
        return self._cmp

    @property
    def items_catalog(self):
        from bundlerl.sim_data.loaders import load_items_csv

        return load_items_csv(FIX / "items.csv")

    @property
    def env_yaml(self) -> Path:
        path = self.tmp / "world.yaml"
        path.write_text("name: w\nhorizon: 3\n")
        return path


def _fields(obj) -> dict:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.init}


def _valid(name: str, kit: _Kit) -> dict:
    """Valid keyword arguments of the public callable ``name`` (required ones and those that keep a call cheap)."""
    from bundlerl.sim_data import generate_catalog, sample_personas
    from bundlerl.sim_data.synthetic import CatalogConfig

    w = lambda: kit.world  # noqa: E731
    small_cat = lambda: generate_catalog(CatalogConfig(n_items=40, seed=0))  # noqa: E731
    table = {
        "BundleRecEnv": lambda: {"preset": "small"},
        "BundleRecVecEnv": lambda: {"preset": "small", "num_envs": 2},
        "build_world": lambda: {"preset": "small", "progress": False},
        "make_baseline": lambda: {"name": "random"},
        "make_oracle": lambda: {"name": "oracle-one-step", "vec_env": kit.venv()},
        "SB3Policy": lambda: {"model": kit.model},
        "make_model": lambda: {"algo": "ppo", "venv": kit.venv(), "cfg": kit.ppo_cfg},
        "load_model": lambda: {"algo": "ppo", "path": kit.model_zip},
        "evaluate": lambda: {"policy": _baseline(), "preset": "small", "n_episodes": 2, "num_envs": 2,
                             "progress": False},
        "train": lambda: {"cfg": _train_cfg(), "out": kit.tmp / "runs", "log": lambda m: None},
        "RunDir": lambda: {"path": kit.tmp},
        "BundleBuilder": lambda: {"catalog": w().observable_catalog, "index": w().index,
                                  "complement_model": w().comp_model},
        "ItemIndex": lambda: {"vectors": _unit_rows(50, 16)},
        "default_encoder": lambda: {"cache_dir": kit.tmp / "enc"},
        "Catalog": lambda: _fields(kit.items_catalog),
        "Baskets": lambda: _fields(w().baskets),
        "load_instacart": lambda: {"folder": FIX / "instacart"},
        "load_instacart_orders": lambda: {"folder": FIX / "instacart", "catalog": _instacart_catalog()},
        "load_items_csv": lambda: {"path": FIX / "items.csv"},
        "load_baskets_csv": lambda: {"path": FIX / "baskets.csv", "catalog": kit.items_catalog},
        "load_bundles_csv": lambda: {"path": FIX / "bundles.csv", "catalog": kit.items_catalog},
        "load_steam_bundles": lambda: {"folder": FIX / "steam"},
        "load_groceries": lambda: {"path": FIX / "groceries.csv"},
        "get_config": lambda: {"preset": "small"},
        "instacart_config": lambda: {"path": FIX / "instacart"},
        "load_env_config": lambda: {"path": kit.env_yaml},
        "env_config_overrides": lambda: {"config": _env_config(), "overrides": ["horizon=5"]},
        "World": lambda: _fields(w()),
        "load_algo_config": lambda: {"algo": "ppo"},
        "EvalResult": lambda: _fields(kit.result),
        "bundle_metrics": lambda: {"res": kit.result, "world": w()},
        "summarize": lambda: {"res": kit.result, "world": w()},
        "markdown_table": lambda: {"results": [kit.result]},
        "estimates_table": lambda: {"table": kit.comparison.table},
        "bar_chart": lambda: {"table": kit.comparison.table, "path": kit.tmp / "chart.png"},
        "Comparison": lambda: _fields(kit.comparison),
        "compare": lambda: {"policies": {"random": _baseline()}, "preset": "small",
                            "config": _eval_config(), "log": lambda m: None},
        "write_comparison": lambda: {"cmp": kit.comparison, "out": kit.tmp / "cmp"},
        "Estimate": lambda: {"value": 1.0, "low": 0.5, "high": 1.5, "n": 10},
        "mean_ci": lambda: {"x": [1.0, 2.0, 3.0]},
        "ratio_ci": lambda: {"num": [1.0, 2.0], "den": [2.0, 3.0]},
        "mean_ratio_ci": lambda: {"a": [1.0, 2.0], "b": [2.0, 3.0]},
        "TrainResult": lambda: {"run_dir": kit.tmp, "timesteps": 1, "best_mean_return": 0.0, "final": {},
                                "wall_s": 0.0, "first_beat_s": None},
        "evaluate_runs": lambda: {"run_dirs": [], "baselines": ["random"], "preset": "small", "episodes": 2,
                                  "out": kit.tmp / "ev", "progress": False, "log": lambda m: None},
        "ComplementModel": lambda: _fields(w().comp_model),
        "CandidateSet": lambda: _fields(w().initial_pools()),
        "SentenceEncoder": lambda: {},
        "CachedEncoder": lambda: {"encoder": _stub_encoder(), "cache_dir": kit.tmp / "enc"},
        "add_clicked": lambda: {"sums": np.zeros((3, 4), np.float32), "rows": np.array([0, 2]),
                                "bundles": np.array([[0, -1], [1, 2]]), "table": np.ones((4, 4), np.float32)},
        "history_vectors": lambda: {"sums": np.ones((3, 4), np.float32)},
        "projected_history": lambda: {"sums": np.ones((3, 4), np.float32),
                                      "projected_sums": np.ones((3, 2), np.float32)},
        "Personas": lambda: _fields(w().personas),
        "Taxonomy": lambda: _fields(_taxonomy()),
        "CategorySpec": lambda: _fields(_taxonomy().categories[0]),
        "generate_catalog": lambda: {"config": CatalogConfig(n_items=40)},
        "category_centroid_accuracy": lambda: {"catalog": w().observable_catalog},
        "sample_personas": lambda: {"catalog": small_cat(), "n": 4, "rng": np.random.default_rng(0)},
        "generate_baskets": lambda: _baskets_args(small_cat(), sample_personas),
        "impute_prices": lambda: {"item_ids": ["1", "2"], "category": np.array([0, 1]), "category_names": ["a", "b"]},
        "calibrate_complement_graph": lambda: {"catalog": w().catalog, "baskets": w().baskets},
        "category_cooccurrence": lambda: {"catalog": w().catalog, "baskets": w().baskets},
        "named_policies": lambda: {"baselines": ["random"]},
    }
    if name in table:
        return table[name]()
    obj = PUBLIC[name]
    if inspect.isclass(obj) and dataclasses.is_dataclass(obj):
        return {}  # a config: every field has its default
    if inspect.isclass(obj) and issubclass(obj, tuple) and hasattr(obj, "_fields"):  # a NamedTuple (FeatureIndex)
        return dict(zip(obj._fields, range(len(obj._fields))))
    if all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
           for p in inspect.signature(obj).parameters.values()):
        return {}
    pytest.fail(f"{name}: give its valid arguments in _valid")


def _instacart_catalog():
    from bundlerl.sim_data.loaders import load_instacart

    return load_instacart(FIX / "instacart")[0]


def _baseline():
    from bundlerl.agents import make_baseline

    return make_baseline("random")


def _train_cfg():
    from bundlerl.experiment import TrainConfig

    return TrainConfig(preset="small", timesteps=1, num_envs=2, eval_episodes=1, final_episodes=0, progress=False,
                       hyperparams={"n_steps": 8, "batch_size": 16})


def _env_config():
    from bundlerl.env import EnvConfig

    return EnvConfig()


def _eval_config():
    from bundlerl.evaluation import EvalConfig

    return EvalConfig(episodes=2, num_envs=2, progress=False)


def _taxonomy():
    from bundlerl.sim_data import load_taxonomy

    return load_taxonomy()


def _unit_rows(n: int, d: int) -> np.ndarray:
    x = np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _stub_encoder():
    class Stub:
        name, dim, identity = "stub", 4, "stub@0"

        def encode(self, texts, **kw):
            return _unit_rows(len(texts), 4)

    return Stub()


def _baskets_args(cat, sample_personas) -> dict:
    return {"catalog": cat, "personas": sample_personas(cat, 4, np.random.default_rng(0)), "n_baskets": 3,
            "rng": np.random.default_rng(1)}


# --------------------------------------------------------------------------------------------------- the walk
def _params(obj) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(obj).parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "self"]


def _same_as_default(p: inspect.Parameter, value) -> bool:
    d = p.default
    if d is p.empty or isinstance(value, np.ndarray) or isinstance(d, np.ndarray):
        return False
    try:
        return d is value or (type(d) is type(value) and bool(d == value))
    except Exception:  # noqa: BLE001
        return False


def _names(message: str, arg: str) -> bool:
    return arg.lower() in message.lower() or arg.lower().replace("_", " ") in message.lower()


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    return _Kit(tmp_path_factory.mktemp("api"))


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_bad_arguments_are_bundlerl_errors_naming_them(name, kit):
    obj = PUBLIC[name]
    valid = _valid(name, kit)
    problems = []
    for p in _params(obj):
        for kind, value in BAD.items():
            if _same_as_default(p, value):
                continue
            args = {**valid, p.name: value}
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out = obj(**args)
                if hasattr(out, "close") and not isinstance(out, Path):
                    try:
                        out.close()
                    except Exception:  # noqa: BLE001 - closing is not under test
                        pass
            except BundlerlError as exc:
                if not _names(str(exc), p.name):
                    problems.append(f"{p.name}={kind}: BundlerlError not naming {p.name!r}: {exc}")
            except Exception as exc:  # noqa: BLE001 - what the test looks for
                problems.append(f"{p.name}={kind}: {type(exc).__name__}: {str(exc)[:160]}")
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("call, arg", [
    (lambda: __import__("bundlerl").BundleRecVecEnv("small", num_envs=0), "num_envs"),
    (lambda: __import__("bundlerl").evaluate(None, "small", n_episodes=2), "policy"),
    (lambda: __import__("bundlerl").SB3Policy(None), "model"),
    (lambda: __import__("bundlerl.candidates", fromlist=["IndexConfig"]).IndexConfig.for_size(0), "n_items"),
    (lambda: __import__("bundlerl.candidates", fromlist=["IndexConfig"]).IndexConfig.for_size(None), "n_items"),
    (lambda: __import__("bundlerl").load_model("ppo", "no/such/model.zip"), "path"),
])
def test_the_reported_examples(call, arg):
    """The new user's examples: each a BundlerlError naming the argument."""
    with pytest.raises(BundlerlError, match=arg):
        call()
