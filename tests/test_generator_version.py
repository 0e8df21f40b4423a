"""Cached worlds are keyed by explicit output versions of the generators and loaders
(``bundlerl.sim_data.versions``), not by source bytes: this snapshot makes sure a change of output comes with a
version bump, so a stale cached world is never reused. Regenerate with ``python tests/golden/regenerate.py``
in the commit that bumps the version."""

from __future__ import annotations

import _generators  # tests/golden is on the path (pyproject: pythonpath)
import pytest

from bundlerl.env.config import PRESETS


@pytest.fixture(scope="module")
def snapshot_and_now():
    return _generators.load(), _generators.compute()


@pytest.mark.parametrize("part", ["generator", "loader"])
def test_output_changes_only_with_a_version_bump(snapshot_and_now, part):
    (versions, want), got = snapshot_and_now
    bad = _generators.differences(want[part], got[part])
    now = _generators.versions()[part]
    if versions[part] == now:
        assert not bad, (
            f"the {part}s' output changed ({', '.join(bad)}) but {part.upper()}_VERSION is still {now}: bump it in "
            "sim_data/versions.py (cached worlds would be silently stale), then run python tests/golden/regenerate.py"
        )
    else:
        pytest.fail(f"{part.upper()}_VERSION is {now} but the snapshot was made at {versions[part]}: run "
                    "python tests/golden/regenerate.py and commit the snapshot with the bump")


def test_world_key_follows_the_versions(monkeypatch):
    import bundlerl.env.config as config_module

    cfg = PRESETS["small"]
    key = cfg.world_key()
    assert cfg.world_key() == key  # stable within a process
    monkeypatch.setattr(config_module, "GENERATOR_VERSION", config_module.GENERATOR_VERSION + 1)
    assert cfg.world_key() != key
    monkeypatch.undo()
    monkeypatch.setattr(config_module, "LOADER_VERSION", config_module.LOADER_VERSION + 1)
    assert cfg.world_key() != key


def test_the_differences_check_can_fail():
    import numpy as np

    a = {"x": np.arange(3), "f": np.ones(2), "s": np.array(["a", "b"])}
    assert _generators.differences(a, dict(a)) == []
    assert _generators.differences(a, {**a, "x": np.array([0, 1, 3])}) == ["x (1 of 3 entries)"]
    assert _generators.differences(a, {**a, "f": np.ones(2) + 1e-3})[0].startswith("f (max abs diff")
    assert _generators.differences(a, {**a, "s": np.array(["a", "c"])}) == ["s (1 of 2 entries)"]
    assert _generators.differences(a, {"x": a["x"]})[0].startswith("f (missing")
