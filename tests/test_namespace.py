"""One import namespace: the rooms install as ``bundlerl.<room>`` only, a user's own ``env.py`` / ``agents/`` /
``scripts/`` neither shadows nor is shadowed by them, the packaging lists every package folder, the public verbs
are re-exported lazily, and the import layers and lint rules hold (import-linter and ruff, run as tools)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tomllib

import bundlerl
from bundlerl.env.registration import ENV_IDS

ROOT = Path(bundlerl.__file__).resolve().parent
ROOMS = ("env", "agents", "scripts", "encoders", "sim_data", "candidates", "evaluation", "experiment", "utils")
VENV_BIN = Path(sys.executable).parent


def _python(code: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """A fresh interpreter running ``code`` in ``cwd`` (``-c`` puts ``cwd`` first on sys.path, as a user's
    script or notebook in that folder would)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def _user_folder(tmp_path: Path) -> Path:
    """A user's project folder holding its own ``env.py``, ``agents/`` and ``scripts/``."""
    (tmp_path / "env.py").write_text("WHO = 'user env'\n")
    for pkg in ("agents", "scripts"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text(f"WHO = 'user {pkg}'\n")
    return tmp_path


def test_a_users_own_env_agents_and_scripts_neither_shadow_nor_are_shadowed(tmp_path):
    folder = _user_folder(tmp_path)
    ids = sorted(i for i in ENV_IDS if "instacart" not in i)  # instacart needs a data folder (tested in test_env)
    out = _python(f"""
        import gymnasium as gym
        import bundlerl
        import env, agents, scripts
        assert env.WHO == "user env" and agents.WHO == "user agents" and scripts.WHO == "user scripts"
        for env_id in {ids!r}:
            e = gym.make(env_id, preset="small")
            obs, info = e.reset(seed=0)
            e.step(int(info["action_mask"].argmax()))
            e.close()
        import bundlerl.env, bundlerl.agents, bundlerl.scripts.cli
        assert bundlerl.env.__file__ != env.__file__
        print("ok", len({ids!r}))
    """, folder)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == f"ok {len(ids)}"
    cli = subprocess.run([str(VENV_BIN / "bundlerl"), "--help"], cwd=folder, capture_output=True, text=True,
                         timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert "train" in cli.stdout and "evaluate" in cli.stdout


def test_no_room_is_importable_at_top_level(tmp_path):
    out = _python(f"""
        import importlib
        bad = []
        for name in {ROOMS!r}:
            try:
                importlib.import_module(name)
                bad.append(name)
            except ModuleNotFoundError:
                pass
        print(bad)
    """, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_suite_never_loaded_a_top_level_room():
    # conftest.pytest_sessionfinish checks the whole session; this checks what has loaded so far
    assert not [m for m in sys.modules if m.split(".")[0] in ROOMS]


def test_packaging_lists_every_package_folder_and_its_data():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(cfg["tool"]["setuptools"]["packages"])
    found = {"bundlerl"}
    for init in ROOT.glob("*/**/__init__.py"):
        rel = init.parent.relative_to(ROOT)
        if rel.parts[0] in {"tests", "benchmarks"} or rel.parts[0].startswith("."):
            continue
        found.add("bundlerl." + ".".join(rel.parts))
    assert listed == found
    assert cfg["project"]["scripts"]["bundlerl"] == "bundlerl.scripts.cli:main"
    torch_req = [d for d in cfg["project"]["dependencies"] if d.startswith("torch")]
    assert torch_req == ["torch>=2.3,<3"]  # a range: users with a CUDA build keep theirs


def test_gymnasium_ids_point_into_the_namespace():
    import gymnasium as gym

    for env_id in ENV_IDS:
        assert gym.spec(env_id).entry_point.startswith("bundlerl.env."), env_id


@pytest.mark.parametrize("name", ["BundleRecEnv", "BundleRecVecEnv", "EnvConfig", "make_baseline", "evaluate",
                                  "train", "TrainConfig", "SB3Policy", "BundleBuilder", "load_instacart",
                                  "load_items_csv", "load_baskets_csv", "load_bundles_csv", "load_steam_bundles",
                                  "load_groceries", "default_encoder"])
def test_public_verbs_are_re_exported(name):
    assert name in bundlerl.__all__ and name in dir(bundlerl)
    obj = getattr(bundlerl, name)
    assert obj.__module__.startswith("bundlerl."), obj.__module__


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        bundlerl.nothing_here  # noqa: B018


def test_import_is_light_and_the_version_comes_from_the_metadata(tmp_path):
    from importlib.metadata import version

    assert bundlerl.__version__ == version("bundlerl")
    out = _python("""
        import sys, time
        t = time.perf_counter()
        import bundlerl, bundlerl.scripts.cli
        bundlerl.scripts.cli.build_parser()
        heavy = sorted(m for m in ("torch", "faiss", "stable_baselines3", "sentence_transformers") if m in sys.modules)
        print(heavy)
    """, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"  # the CLI's --help and `import bundlerl` load none of the heavy libraries


def test_every_subpackage_init_exports_resolve():
    import importlib

    for room in ROOMS:
        mod = importlib.import_module(f"bundlerl.{room}")
        for name in getattr(mod, "__all__", ()):
            assert getattr(mod, name) is not None, (room, name)


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(VENV_BIN)) or shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; pip install -e '.[dev]'")
    return path


def test_import_layers_hold():
    """import-linter's layers contract (pyproject.toml): utils -> encoders -> sim_data -> candidates -> env ->
    agents -> evaluation -> experiment -> serving -> scripts, no import upwards."""
    out = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_ruff_is_clean():
    out = subprocess.run([_tool("ruff"), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout[-4000:]


def test_library_code_reads_no_repository_file():
    """No module of the package reaches outside its own folder through ``__file__`` (``parents[...]``, the
    ``../shared`` neighbour): installed code must not depend on the checkout around it."""
    offenders = []
    for room in ROOMS:
        for path in (ROOT / room).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) \
                        and node.value.attr == "parents":
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
                if isinstance(node, ast.Constant) and node.value == "shared":
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders


def test_architecture_page_names_every_module_and_only_existing_ones():
    """ARCHITECTURE.md has one line per module: a module added, moved or deleted must be reflected there."""
    import re

    text = (ROOT / "ARCHITECTURE.md").read_text()
    named = set(re.findall(r"`((?:%s)/[\w/]+\.py)`" % "|".join(ROOMS), text))
    actual = {p.relative_to(ROOT).as_posix() for room in ROOMS for p in (ROOT / room).rglob("*.py")
              if p.name != "__init__.py" or p.parent.parent != ROOT}  # a subpackage's __init__ is a module of its own
    assert not actual - named, f"modules missing from ARCHITECTURE.md: {sorted(actual - named)}"
    assert not named - actual, f"ARCHITECTURE.md names modules that do not exist: {sorted(named - actual)}"


def test_python_dash_m_bundlerl_is_the_command_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "bundlerl", "--help"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: bundlerl")
