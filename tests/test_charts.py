"""What a person looks at reads at a glance: results.png is a grid of panels with the policies' short names (not
rotated run-directory names), a unit on every value axis, error bars explained as 95% confidence intervals, and
oracles drawn apart (hatched, "oracle (reads simulator truth)" in the legend); the help texts promise no time they
were not measured to take and no command the CLI lacks."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from bundlerl.evaluation.metrics import COMPARISON_METRICS, LABELS, UNITS
from bundlerl.evaluation.report import ORACLE_LEGEND, chart_figure
from bundlerl.evaluation.stats import mean_ci

NAMES = {"small__ppo__0__20260101-120000": ("ppo (seed 0)", "trained"), "random": ("random", "baseline"),
         "complement-greedy": ("complement-greedy", "baseline"),
         "oracle-one-step": ("one-step (oracle)", "oracle")}


def _table(rng, names, metrics=COMPARISON_METRICS):
    return {n: {m: mean_ci(rng.random(50)) for m in metrics} for n in names}


@pytest.mark.parametrize("n_policies", [1, 4, 9])
def test_the_chart_is_a_readable_grid(n_policies):
    rng = np.random.default_rng(0)
    names = [*NAMES, *(f"baseline-{i}" for i in range(n_policies))][:n_policies]
    fig = chart_figure(_table(rng, names), title="t", labels={n: v[0] for n, v in NAMES.items()},
                       kinds={n: v[1] for n, v in NAMES.items()}, note="50 episodes")
    width, height = fig.get_size_inches()
    assert width / height < 3  # a grid, not a 2100x380 strip
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == [LABELS[m] for m in COMPARISON_METRICS]
    for ax, m in zip(panels, COMPARISON_METRICS):
        assert ax.get_xlabel() == UNITS[m] and UNITS[m]  # every value axis says its unit
        assert all(t.get_rotation() == 0 for t in ax.get_yticklabels() + ax.get_xticklabels())
    rows = {round(ax.get_position().y0, 3) for ax in panels}
    assert len(rows) == 2
    first_of_row = [ax for ax in panels if ax.get_position().x0 == min(a.get_position().x0 for a in panels)]
    for ax in first_of_row:  # short names, read top to bottom in the table's order
        assert [t.get_text() for t in ax.get_yticklabels()] == [NAMES.get(n, (n,))[0] for n in names]
    texts = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert "95% confidence interval" in texts and "50 episodes" in texts
    legend = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert ("oracle-one-step" in names) == (ORACLE_LEGEND in legend) and ORACLE_LEGEND == "oracle (reads simulator truth)"
    hatched = {p.get_hatch() for p in panels[0].patches}
    assert ("///" in hatched) == ("oracle-one-step" in names)  # oracles drawn apart from every other bar


def test_runs_get_short_names_in_the_chart(tmp_path, monkeypatch):
    """evaluate_runs names runs 'algo (seed s)' in the chart (their folder's time when two would share one) and
    lists the names in results.md; the table's rows lead with the short name, then the run directory's."""
    import _agents_fake_env as fake
    from _train_fakes import patch_training, tiny_cfg

    import bundlerl.env.vec_env
    import bundlerl.env.world
    from bundlerl.experiment.evaluate import _short_names, evaluate_runs
    from bundlerl.experiment.run_dir import RunDir
    from bundlerl.experiment.training import train

    patch_training(monkeypatch.setattr)
    monkeypatch.setattr(bundlerl.env.vec_env, "BundleRecVecEnv", fake.FakeBundleVecEnv)
    monkeypatch.setattr(bundlerl.env.world, "build_world", lambda preset: fake.fake_world())
    runs = [train(tiny_cfg(algo, timesteps=32, seed=seed, final_episodes=0), out=tmp_path / str(i),
                  log=lambda m: None).run_dir for i, (algo, seed) in enumerate([("ppo", 0), ("ppo", 0), ("dqn", 3)])]
    short = _short_names([RunDir.open(r) for r in runs])
    assert len(short) == 3 and short[runs[2].name] == "dqn (seed 3)"  # two ppo runs of one second: keyed by parent
    assert sorted(v for v in short.values() if v.startswith("ppo")) == ["ppo (seed 0) #1", "ppo (seed 0) #2"]
    res = evaluate_runs(runs[2:], baselines=["random"], episodes=4, out=tmp_path / "ev", progress=False,
                        log=lambda m: None)
    md = (tmp_path / "ev" / "results.md").read_text()
    assert f"- dqn (seed 3): {runs[2].name}" in md and f"| dqn (seed 3): {runs[2].name} |" in res["markdown"]


def test_help_texts_promise_only_what_was_measured_and_what_exists():
    from bundlerl.scripts import cli, quickstart

    parser = cli.build_parser()
    text = parser.format_help() + quickstart.HELP + quickstart.DESCRIPTION
    assert "10 min" not in text and "6 minutes" not in text
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands = set(sub.choices)  # the registered command names (module export_cmd registers "export")
    for word in ("serve", "export", "ope", "log"):
        assert f"bundlerl {word}" not in text or word in commands
