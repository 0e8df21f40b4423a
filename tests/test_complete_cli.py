"""``bundlerl complete``: a completed bundle with each signal's contribution; bad input is one line, exit 2."""

from __future__ import annotations

import numpy as np
import pytest
from _cli import run_cli

ITEMS = ["item_id,title,category,price"] + [
    f"{k},{name},{cat},{price}" for k, (name, cat, price) in enumerate([
        ("espresso beans", "coffee", 9.5), ("milk frother", "kitchen", 25.0), ("coffee grinder", "kitchen", 40.0),
        ("paper filters", "coffee", 3.0), ("tea bags", "tea", 4.0), ("honey jar", "pantry", 6.0),
        ("tea pot", "kitchen", 30.0), ("lemon squeezer", "kitchen", 8.0), ("ground coffee", "coffee", 7.0),
        ("green tea", "tea", 5.0), ("sugar cubes", "pantry", 2.5), ("mug", "kitchen", 6.0)])]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("complete")
    (d / "items.csv").write_text("\n".join(ITEMS) + "\n")
    rng = np.random.default_rng(0)
    groups = [[0, 1, 2, 3, 8, 11], [4, 5, 6, 7, 9, 10]]
    rows = ["bundle_id,item_id"]
    for b in range(80):
        g = groups[b % 2]
        for i in rng.choice(g, size=3, replace=False):
            rows.append(f"b{b},{i}")
    rows.append("b999,unknown-item")
    (d / "bundles.csv").write_text("\n".join(rows) + "\n")
    return d


def test_complete_prints_items_with_contributions(files):
    r = run_cli("complete", "--catalog", str(files / "items.csv"), "--bundles", str(files / "bundles.csv"), "--item",
                "0", "--k", "3", "--skip-unknown", timeout=300)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "skipped 1 row(s)" in out
    lines = [x for x in out.splitlines() if x.strip()[:3].strip().rstrip(".").isdigit()]
    assert len(lines) == 3
    assert "text_cos" in out and "p=" in out
    # the bundles pair espresso beans with the coffee group only
    ids = [x.split()[1] for x in lines]
    assert set(ids) <= {"1", "2", "3", "8", "11"}


@pytest.mark.parametrize("args, message", [
    (["--bundles", "BUNDLES", "--item", "0"], "go with --catalog"),
    (["--catalog", "ITEMS", "--item", "0"], "--bundles FILE or --baskets FILE"),
    (["--catalog", "ITEMS", "--bundles", "BUNDLES", "--item", "nope", "--skip-unknown"], "--item 'nope' is not in"),
    (["--catalog", "ITEMS", "--bundles", "BUNDLES", "--item", "0"], "is not in catalogue"),  # unknown row, no skip
    (["--catalog", "ITEMS", "--bundles", "BUNDLES", "--item", "0", "--k", "0"], "--k"),
])
def test_complete_bad_input_is_one_line(files, args, message):
    args = [str(files / "items.csv") if a == "ITEMS" else str(files / "bundles.csv") if a == "BUNDLES" else a
            for a in args]
    r = run_cli("complete", *args, timeout=300)
    assert r.returncode == 2
    err = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(err) == 1 and message in err[0], r.stderr
