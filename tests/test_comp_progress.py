"""The complementarity fit shows its progress (it runs ~56 s on ``small`` and used to print nothing).

With a bar on, stderr names every stage of both passes and ends at 100 %; with ``progress=False`` or
``BUNDLERL_PROGRESS=0`` nothing at all is written; the bar never changes the fitted model.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from _fit_data import fit_data

from bundlerl.candidates.complementarity import ComplementConfig, fit
from bundlerl.candidates.complementarity import progress as comp_progress

TINY = ComplementConfig(rank=4, n_pairs=2_000, epochs=2, batch_size=1024, top_k=4, pool_size=60, svd_rank=8,
                        blend_pairs=2_000, min_blend_pairs=40, threads=1, chunk=16)
STAGES = ["counting pairs", "text model, epoch 1/2", "text model, epoch 2/2", "PPMI embeddings", "top lists"]


@pytest.fixture(scope="module")
def data():
    return fit_data(60, 30, 600, 16)


def _fit(data, config=TINY, **kw):
    cat, baskets, emb = data
    return fit(cat, baskets, emb, np.random.default_rng(9), config, use_cache=False, **kw)


def _arrays(model):
    return {k: v for k, v in vars(model).items() if isinstance(v, np.ndarray)}


def _final(err: str) -> tuple[int, int]:
    """(steps done, total) of the bar's last rendering."""
    done, total = re.findall(r"(\d+)/(\d+) \[", err)[-1]
    return int(done), int(total)


def test_progress_names_every_stage_and_changes_nothing(data, capfd):
    shown = _fit(data, progress=True)
    err = capfd.readouterr().err
    for pass_name in ("[1/2 validation split]", "[2/2 all baskets]"):
        for stage in STAGES[:-1]:
            assert f"complementarity {pass_name} {stage}" in err, (pass_name, stage)
    assert "complementarity [1/2 validation split] blend fit" in err
    assert "complementarity [2/2 all baskets] top lists" in err
    # 2 x (counting + 2 epochs x 4 batches + PPMI) + blend + 60 items / 16 per block
    assert _final(err) == (2 * (1 + 8 + 1) + 1 + 4,) * 2 and "100%" in err
    quiet = _fit(data, progress=False)
    assert capfd.readouterr() == ("", "")
    a, b = _arrays(shown), _arrays(quiet)
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_default_follows_the_size_of_the_fit_and_the_environment(data, capfd, monkeypatch):
    assert not comp_progress.default_shown(TINY, 60)  # ~0.2 s: no bar
    assert comp_progress.default_shown(ComplementConfig(), 300)  # the presets' fit: ~56 s
    assert comp_progress.default_shown(TINY, 50_000)  # an Instacart-sized catalogue
    monkeypatch.setattr(comp_progress, "SLOW_TEXT_ROWS", 1)  # make the tiny fit count as slow
    monkeypatch.delenv("BUNDLERL_PROGRESS", raising=False)
    _fit(data)
    assert "complementarity [2/2 all baskets] top lists" in capfd.readouterr().err
    for off in ("0", "false", "off"):
        monkeypatch.setenv("BUNDLERL_PROGRESS", off)
        _fit(data)
        assert capfd.readouterr() == ("", "")
    monkeypatch.setenv("BUNDLERL_PROGRESS", "0")
    _fit(data, progress=True)  # an explicit request wins
    assert "top lists" in capfd.readouterr().err
    monkeypatch.setattr(comp_progress, "SLOW_TEXT_ROWS", 10**12)
    monkeypatch.delenv("BUNDLERL_PROGRESS")
    _fit(data)
    assert capfd.readouterr() == ("", "")


def test_a_fit_without_the_validation_pass_still_ends_at_its_total(data, capfd):
    no_blend = ComplementConfig(**{**TINY.to_dict(), "min_blend_pairs": 10**6})  # too few validation pairs
    model = _fit(data, no_blend, progress=True)
    err = capfd.readouterr().err
    assert model.blend_info["fitted"] is False and "min_blend_pairs" in model.blend_info["why"]
    assert "validation split" not in err and "complementarity [all baskets] top lists" in err
    assert _final(err) == (1 + 8 + 1 + 4,) * 2


def test_a_cache_hit_shows_nothing(data, capfd, tmp_path):
    cat, baskets, emb = data
    fit(cat, baskets, emb, np.random.default_rng(9), TINY, cache_dir=tmp_path, progress=True)
    assert "top lists" in capfd.readouterr().err
    hit = fit(cat, baskets, emb, np.random.default_rng(9), TINY, cache_dir=tmp_path, progress=True)
    assert hit.cache_hit and capfd.readouterr() == ("", "")
