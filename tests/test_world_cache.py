"""The world cache (env/world_cache.py) and the build's progress (env/world.py), one test per kind of fault.

Worlds here are the instacart preset on copies of tests/fixtures/instacart (5 products, 8 personas: a build takes
well under a second once the encoder is loaded), with ``$BUNDLERL_CACHE`` pointing at a folder of this module (the
encoder's and the complementarity fit's caches stay warm across tests) and an empty in-process cache per test.

- Edited inputs: every kind of edit (a title, an aisle or department name, an order line, the optional orders.csv
  removed), with the mtime kept or not, in the same process or a new one, on a fine or a coarse filesystem clock:
  the rebuilt world holds what ``load_instacart`` reads from the edited folder. Unchanged (even touched) inputs
  rebuild nothing and hash nothing once their digests are memoised.
- Damaged entries: truncated, garbage, empty, another format, wrong parts or sizes, a folder in its place: one
  RuntimeWarning naming the file, the world equals a clean build, and the entry is rewritten whole.
- Temporaries of killed writers in the worlds folder (and its memo folder) are swept; others are kept.
- Progress: the stage names on stderr when on (explicitly, or by default on a cold build); silence when off
  (``progress=False`` or ``BUNDLERL_PROGRESS=0``) and on a warm build by default.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bundlerl.candidates import complementarity
from bundlerl.candidates.complementarity import ComplementConfig
from bundlerl.env import world as world_mod
from bundlerl.env import world_cache
from bundlerl.env.config import instacart_config
from bundlerl.env.world import build_world
from bundlerl.sim_data.loaders import load_instacart

FIXTURE = Path(__file__).parent / "fixtures" / "instacart"
SMALL_FIELDS = dict(n_personas=8, K=4, K_max=2, profile_dim=4, compose_items=4, horizon=5)
STAGES = ("loading", "encoding texts", "calibrating the complement graph", "fitting complementarity",
          "building the item index", "building the initial candidate pools")


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    """This module's cache root, set for the whole module (tests may point elsewhere for a while)."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BUNDLERL_CACHE", str(root))
        yield root


FAST_FIT = ComplementConfig(n_pairs=2_000, epochs=1, blend_pairs=2_000)


@pytest.fixture(autouse=True)
def isolated(cache_root, monkeypatch):
    """An empty in-process world cache for each test, and a cheap complementarity fit: every edited world is refit
    (the fit's cache is keyed by content), and ~20 s of the default text model per fit is not what is tested
    here (the fit's cache: tests/test_comp_cache_healing.py)."""
    monkeypatch.setattr(world_mod, "_WORLDS", {})
    real_fit = complementarity.fit
    monkeypatch.setattr(complementarity, "fit", lambda *a, **k: real_fit(*a, **{"config": FAST_FIT, **k}))


def _folder(tmp_path: Path, name: str = "ic") -> Path:
    folder = tmp_path / name
    shutil.copytree(FIXTURE, folder)
    return folder


def _config(folder: Path):
    return instacart_config(folder, **SMALL_FIELDS)


def _assert_world_reads(world, folder: Path) -> None:
    """The world's catalogue and baskets are what the loader reads from ``folder`` now."""
    catalog, baskets = load_instacart(folder)
    assert list(world.catalog.titles) == list(catalog.titles)
    assert list(world.catalog.category_names) == list(catalog.category_names)
    assert list(world.catalog.department_names) == list(catalog.department_names)
    np.testing.assert_array_equal(world.baskets.items, baskets.items)
    np.testing.assert_array_equal(world.baskets.indptr, baskets.indptr)
    assert (world.baskets.user is None) == (baskets.user is None)


# ---------------------------------------------------------------------------------------- (a) edited inputs
def test_input_files_are_the_files_the_loader_opens(monkeypatch):
    from bundlerl.sim_data.loaders import _csv

    opened = []
    real_open = _csv.open_text
    monkeypatch.setattr(_csv, "open_text", lambda path, *a, **k: (opened.append(Path(path).name), real_open(path, *a, **k))[1])
    load_instacart(FIXTURE)
    present = [n for n in world_cache.INPUT_FILES["instacart"] if (FIXTURE / n).is_file()]
    assert sorted(opened) == sorted(present)
    assert set(world_cache.INPUT_FILES["instacart"]) - set(present) == {"order_products__prior.csv",
                                                                          "order_products__train.csv"}


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


EDITS = {
    "title, same size": lambda f: _replace(f / "products.csv", "Banana,", "Banane,"),
    "title, longer": lambda f: _replace(f / "products.csv", "Peanut Butter Granola Bar", "Peanut Butter Granola Bar XL"),
    "aisle name": lambda f: _replace(f / "aisles.csv", (f / "aisles.csv").read_text().splitlines()[1].split(",")[1],
                                     "renamed aisle"),
    "department name": lambda f: _replace(f / "departments.csv",
                                          (f / "departments.csv").read_text().splitlines()[1].split(",")[1], "elsewhere"),
    "order line": lambda f: _replace(f / "order_products.csv", *_swap_product(f)),
    "orders.csv removed": lambda f: (f / "orders.csv").unlink(),
}


def _swap_product(folder: Path) -> tuple[str, str]:
    """(old, new) text of an order line with its product replaced by one its order does not hold yet."""
    lines = (folder / "order_products.csv").read_text().splitlines()
    header = lines[0].split(",")
    o, p = header.index("order_id"), header.index("product_id")
    rows = [line.split(",") for line in lines[1:]]
    products = sorted({r[p] for r in rows} | {line.split(",")[0] for line in
                                               (folder / "products.csv").read_text().splitlines()[1:]})
    row = rows[0]
    in_order = {r[p] for r in rows if r[o] == row[o]}
    other = next(x for x in products if x not in in_order)
    new = list(row)
    new[p] = other
    return ",".join(row), ",".join(new)


@pytest.mark.parametrize("coarse_clock", [False, True], ids=["fine-clock", "coarse-clock"])
@pytest.mark.parametrize("new_process", [False, True], ids=["same-process", "new-process"])
@pytest.mark.parametrize("keep_mtime", [False, True], ids=["mtime-changes", "mtime-kept"])
@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_edited_input_file_rebuilds_the_world(tmp_path, monkeypatch, edit, keep_mtime, new_process, coarse_clock):
    if coarse_clock:  # a filesystem clock in whole seconds: an edit in the same second is left to the racy rule
        monkeypatch.setattr(world_cache, "_stat_tuple", lambda st: [st.st_size, st.st_mtime_ns // 10**9 * 10**9,
                                                                    st.st_ctime_ns // 10**9 * 10**9, st.st_ino, st.st_dev])
    folder = _folder(tmp_path)
    before = build_world(_config(folder))
    _assert_world_reads(before, folder)
    stats = {p.name: p.stat() for p in folder.iterdir()}
    EDITS[edit](folder)
    if keep_mtime:
        for p in folder.iterdir():
            os.utime(p, ns=(stats[p.name].st_atime_ns, stats[p.name].st_mtime_ns))
    if new_process:
        monkeypatch.setattr(world_mod, "_WORLDS", {})
    after = build_world(_config(folder))
    assert after is not before
    _assert_world_reads(after, folder)
    if edit == "title, same size":
        assert "Banane" in list(after.catalog.titles) and "Banana" not in list(after.catalog.titles)


def test_unchanged_inputs_rebuild_nothing_and_hash_nothing_once_memoised(tmp_path, monkeypatch):
    folder = _folder(tmp_path)
    old = time.time() - 3600  # settled files: their digests are trusted from the memo
    for p in folder.iterdir():
        os.utime(p, (old, old))
    monkeypatch.setattr(world_cache, "RACY_S", 0.0)  # utime just changed ctime; a real file would have settled too
    first = build_world(_config(folder))
    hashed = []
    real = world_cache.file_sha256
    monkeypatch.setattr(world_cache, "file_sha256", lambda p: (hashed.append(p.name), real(p))[1])
    assert build_world(_config(folder)) is first  # in-process hit
    assert hashed == []
    monkeypatch.setattr(world_mod, "_WORLDS", {})
    monkeypatch.setattr(world_mod, "_make_raw", lambda config: pytest.fail("rebuilt the raw parts of an unchanged world"))
    again = build_world(_config(folder))  # "a new process": from disk
    assert hashed == []
    _assert_world_reads(again, folder)
    (folder / "products.csv").touch()  # touched, not changed: hashed again, same key, no rebuild
    monkeypatch.setattr(world_mod, "_WORLDS", {})
    build_world(_config(folder))
    assert hashed == ["products.csv"]


@pytest.mark.parametrize("order", ["asked first", "asked after the others"])
def test_configs_of_one_world_each_get_their_own_config(tmp_path, order):
    """Configs that differ only where the world key does not look (horizon, reward, name) share the world's parts
    but each gets a World whose ``config`` is its own, whichever was built first (a test that built a horizon-6 copy
    of 'small' once gave every later ``build_world('small')`` its horizon)."""
    base = _config(_folder(tmp_path))
    variants = [base.replace(horizon=base.horizon + 3), base.replace(reward="revenue"), base.replace(name="other")]
    asked = [base, *variants] if order == "asked first" else [*variants, base]
    worlds = [build_world(c) for c in asked]
    assert len({c.world_key() for c in asked}) == 1
    for c, w in zip(asked, worlds):
        assert w.config == c and w.config.horizon == c.horizon and w.config.reward == c.reward
        assert w.catalog is worlds[0].catalog and w.builder is worlds[0].builder
    pools = worlds[0].initial_pools()
    assert build_world(asked[-1]).initial_pools() is pools and build_world(asked[0]) is worlds[0]


# ---------------------------------------------------------------------------------------- (b) damaged entries
@pytest.fixture(scope="module")
def reference(cache_root, tmp_path_factory):
    """A folder, its config, the cache key and the bytes of its clean entry."""
    folder = _folder(tmp_path_factory.mktemp("ref"))
    config = _config(folder)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(world_mod, "_WORLDS", {})
        real_fit = complementarity.fit
        mp.setattr(complementarity, "fit", lambda *a, **k: real_fit(*a, **{"config": FAST_FIT, **k}))
        build_world(config)
    key = world_cache.world_cache_key(config)
    return folder, config, key, world_cache.entry_path(key).read_bytes()


def _wrong_entries(clean: dict) -> dict[str, object]:
    return {
        "another format": {**clean, "format": -1},
        "no format": {k: v for k, v in clean.items() if k != "format"},
        "a list": [clean],
        "None": None,
        "a part missing": {k: v for k, v in clean.items() if k != "baskets"},
        "parts swapped": {**clean, "catalog": clean["baskets"], "baskets": clean["catalog"]},
        "a string for the personas": {**clean, "personas": "personas"},
    }


damage = st.one_of(
    st.tuples(st.just("truncated"), st.floats(0.0, 0.999)),
    st.tuples(st.just("garbage"), st.binary(min_size=1, max_size=4096)),
    st.tuples(st.just("garbage after a pickle header"), st.binary(max_size=512)),
    st.tuples(st.just("wrong content"), st.sampled_from(["another format", "no format", "a list", "None",
                                                          "a part missing", "parts swapped",
                                                          "a string for the personas"])),
    st.tuples(st.just("empty"), st.none()),
    st.tuples(st.just("folder"), st.none()),
)


def _damage(path: Path, clean_bytes: bytes, kind: str, arg) -> None:
    path.unlink()
    if kind == "truncated":
        path.write_bytes(clean_bytes[: int(arg * len(clean_bytes))])
    elif kind == "garbage":
        path.write_bytes(arg)
    elif kind == "garbage after a pickle header":
        path.write_bytes(b"\x80\x04" + arg)
    elif kind == "wrong content":
        path.write_bytes(pickle.dumps(_wrong_entries(pickle.loads(clean_bytes))[arg]))
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        path.mkdir()


@given(damage)
@example(("folder", None))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_damaged_entry_warns_once_and_is_rebuilt(reference, monkeypatch, dmg):
    folder, config, key, clean_bytes = reference
    monkeypatch.setattr(world_mod, "_WORLDS", {})
    path = world_cache.entry_path(key)
    if path.is_dir():
        path.rmdir()
    path.write_bytes(clean_bytes)
    kind, arg = dmg
    _damage(path, clean_bytes, kind, arg)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        world = build_world(config)
    mine = [w for w in caught if issubclass(w.category, RuntimeWarning) and str(path) in str(w.message)]
    assert mine, f"no RuntimeWarning naming {path} for {kind}"
    assert "unreadable" in str(mine[0].message)
    _assert_world_reads(world, folder)
    if kind == "folder":  # cannot be overwritten by a file: a second warning says so, the world is still built
        assert len(mine) == 2 and "could not write" in str(mine[1].message)
        path.rmdir()
        return
    assert len(mine) == 1, [str(w.message) for w in mine]
    assert path.read_bytes() == clean_bytes  # rewritten whole (the pickle of the same parts)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")], "no temporaries left"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert world_cache.load_raw(config, key) is not None


# ---------------------------------------------------------------------------------------- (c) temporaries
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("where", ["", "inputs"])
def test_temporaries_of_killed_writers_are_swept(tmp_path, cache_root, monkeypatch, where):
    root = tmp_path / "cache"
    monkeypatch.setenv("BUNDLERL_CACHE", str(root))
    for sub in ("embeddings", "complementarity"):  # keep the warm caches: link them in
        if (cache_root / sub).exists():
            (root).mkdir(exist_ok=True)
            os.symlink(cache_root / sub, root / sub)
    folder = world_cache.worlds_dir() / where
    folder.mkdir(parents=True)
    dead, alive, hour, days = _dead_pid(), os.getpid(), time.time() - 3600, time.time() - 3 * 86400
    files = {  # name -> (mtime, expected to survive)
        f".abc.pkl.{dead}.k3j4h5g6.tmp.pkl": (hour, False),  # killed writer, old: swept
        f".abc.pkl.{dead}.a1b2c3d4.tmp.pkl": (time.time(), True),  # too fresh: maybe another machine's writer
        f".abc.pkl.{alive}.q1w2e3r4.tmp.pkl": (hour, True),  # its writer runs
        f".abc.pkl.{alive}.z9x8c7v6.tmp.pkl": (days, False),  # older than a day: swept whoever wrote it
        "abc.pkl": (days, True),  # not a temporary
        ".notes": (days, True),
    }
    for name, (mtime, _) in files.items():
        (folder / name).write_bytes(b"x")
        os.utime(folder / name, (mtime, mtime))
    build_world(_config(_folder(tmp_path)))
    left = {p.name for p in folder.iterdir()}
    for name, (_, survives) in files.items():
        assert (name in left) == survives, name


# ---------------------------------------------------------------------------------------- progress
def _stage_lines(err: str) -> str:
    return err.replace("\r", "\n")


def test_progress_on_names_every_stage_on_stderr(tmp_path, capsys):
    build_world(_config(_folder(tmp_path)), progress=True)
    err = _stage_lines(capsys.readouterr().err)
    assert "world instacart" in err
    for stage in STAGES:
        assert stage in err, (stage, err[-2000:])
    assert "world instacart: built" in err


def test_progress_by_default_on_a_cold_build_only(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("BUNDLERL_PROGRESS", raising=False)
    folder = _folder(tmp_path)
    build_world(_config(folder))  # cold: shown
    err = _stage_lines(capsys.readouterr().err)
    assert all(stage in err for stage in STAGES), err[-2000:]
    monkeypatch.setattr(world_mod, "_WORLDS", {})
    build_world(_config(folder))  # warm (raw parts, embeddings and fit cached): silent
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_progress_off_is_silent(tmp_path, monkeypatch, capsys, how):
    if how == "environment":
        monkeypatch.setenv("BUNDLERL_PROGRESS", "0")
    build_world(_config(_folder(tmp_path)), progress=False if how == "argument" else None)
    assert capsys.readouterr().err == ""
