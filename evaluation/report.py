"""Reports of evaluations: markdown tables, the JSON form and bar charts of per-policy estimates, and the
matplotlib plumbing (headless backend, atomic PNG writes) every figure of bundlerl uses.

A *table* here is ``{policy name: {metric: Estimate}}`` (metrics named as in :mod:`bundlerl.evaluation.metrics`).
Oracles are labelled "(oracle, reads simulator truth)" wherever they are reported (:func:`policy_label`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from bundlerl.evaluation.metrics import COMPARISON_METRICS, LABELS, METRICS, UNITS
from bundlerl.evaluation.stats import Estimate, EvaluationError
from bundlerl.utils.args import need_int, need_names, need_path, need_str, shown

__all__ = [
    "ORACLE_NOTE", "ORACLE_LEGEND", "POLICY_KINDS", "policy_label", "estimates_table", "markdown_table", "table_json",
    "bar_chart", "chart_figure", "pyplot", "save_figure",
]

Table = Mapping[str, Mapping[str, Estimate]]

ORACLE_NOTE = " (oracle, reads simulator truth)"
"""Appended to the name of a policy that reads simulator truth in every table."""


def policy_label(name: str, uses_simulator_truth: bool) -> str:
    """``name``, with :data:`ORACLE_NOTE` when the policy reads simulator truth."""
    return name + (ORACLE_NOTE if uses_simulator_truth else "")


def estimates_table(table: Table, metrics: Sequence[str] = COMPARISON_METRICS, labels: Mapping[str, str] | None = None,
                    digits: int = 3) -> str:
    """A markdown table: a row per policy (``labels[name]``, default the name), its episode count, and
    ``value ± 95% CI half-width`` per metric ("n/a" where the policy has no such estimate or it is undefined)."""
    metrics, labels = _check_table(table, metrics, labels, "estimates_table")
    need_int(digits, "digits", "estimates_table", minimum=0, error=EvaluationError)
    labels = labels or {}
    head = "| policy | episodes | " + " | ".join(LABELS[m] for m in metrics) + " |"
    rows = [head, "|" + "---|" * (len(metrics) + 2)]
    for name, est in table.items():
        n = next(iter(est.values())).n if est else 0  # every estimate of one evaluation counts its episodes
        cells = [est[m].format(digits) if m in est else "n/a" for m in metrics]
        rows.append(f"| {labels.get(name, name)} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def _check_table(table, metrics, labels, where: str) -> tuple[list[str], Mapping | None]:
    """(metrics as a list, labels) once ``table`` is {name: {metric: Estimate}}, ``metrics`` names of
    :data:`bundlerl.evaluation.metrics.LABELS` and ``labels`` a mapping or None; else EvaluationError."""
    if not isinstance(table, Mapping) or not all(
            isinstance(est, Mapping) and all(isinstance(e, Estimate) for e in est.values()) for est in table.values()):
        raise EvaluationError(f"{where}(table={shown(table)}): table must map each policy to {{metric: Estimate}} "
                              "(Comparison.table)")
    metrics = list(need_names(metrics, "metrics", where, error=EvaluationError))
    unknown = [m for m in metrics if m not in LABELS]
    if unknown:
        raise EvaluationError(f"{where}(metrics={shown(metrics)}): unknown metric(s) {unknown}; use names of "
                              f"{sorted(LABELS)}")
    if labels is not None and not isinstance(labels, Mapping):
        raise EvaluationError(f"{where}(labels={shown(labels)}): labels must be a mapping name -> label, or None")
    return metrics, labels


def markdown_table(results, digits: int = 3) -> str:
    """A markdown table of EvalResults (a sequence, named by their policy, or a mapping name -> result) with the
    session metrics (:data:`bundlerl.evaluation.metrics.METRICS`); oracles labelled."""
    from bundlerl.evaluation.rollout import EvalResult

    if isinstance(results, EvalResult):
        results = [results]
    ok = isinstance(results, (Mapping, list, tuple)) and all(
        isinstance(r, EvalResult) for r in (results.values() if isinstance(results, Mapping) else results))
    if not ok:
        raise EvaluationError(f"markdown_table(results={shown(results)}): results must be EvalResults (a list, or a "
                              "mapping name -> EvalResult)")
    need_int(digits, "digits", "markdown_table", minimum=0, error=EvaluationError)
    items = list(results.items()) if isinstance(results, Mapping) else [(r.policy, r) for r in results]
    table = {name: r.summary() for name, r in items}
    labels = {name: policy_label(name, r.uses_simulator_truth) for name, r in items}
    return estimates_table(table, METRICS, labels, digits)


def table_json(table: Table) -> str:
    """The table as JSON text: ``{name: {metric: {"mean", "low", "high", "n"}}}``."""
    return json.dumps({n: {m: e.to_dict() for m, e in est.items()} for n, est in table.items()}, indent=2) + "\n"


def pyplot():
    """``matplotlib.pyplot`` on the headless Agg backend (figures are only ever written to files)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 100) -> None:
    """Write ``fig`` to ``path`` as PNG atomically, then close it."""
    from bundlerl.utils.atomic import atomic_write

    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    pyplot().close(fig)


def bar_chart(table: Table, path: str | Path, metrics: Sequence[str] = COMPARISON_METRICS, title: str = "",
              labels: Mapping[str, str] | None = None, kinds: Mapping[str, str] | None = None,
              note: str = "") -> None:
    """:func:`chart_figure` written atomically to ``path`` (PNG)."""
    metrics, labels = _check_table(table, metrics, labels, "bar_chart")
    need_path(path, "path", "bar_chart", what="a .png file path", error=EvaluationError)
    if kinds is not None and not isinstance(kinds, Mapping):
        raise EvaluationError(f"bar_chart(kinds={shown(kinds)}): kinds must be a mapping name -> kind, or None")
    need_str(title, "title", "bar_chart", error=EvaluationError)
    need_str(note, "note", "bar_chart", error=EvaluationError)
    save_figure(chart_figure(table, metrics, title, labels, kinds, note), path)


def chart_figure(table: Table, metrics: Sequence[str] = COMPARISON_METRICS, title: str = "",
                 labels: Mapping[str, str] | None = None, kinds: Mapping[str, str] | None = None, note: str = ""):
    """A matplotlib figure: a grid of panels (four a row), one per metric, a horizontal bar per policy (its mean)
    with its 95% CI as an error bar, and a last cell with the legend.

    Policies are named by ``labels`` (short names; default: the names) on the left of each row of panels, in the
    table's order; each value axis says its unit (:data:`bundlerl.evaluation.metrics.UNITS`). ``kinds`` (name ->
    one of :data:`POLICY_KINDS`) sets the bars' look: trained runs in blues, baselines in oranges, oracles hatched
    grey and named "oracle (reads simulator truth)" in the legend, which also says what the error bars are. ``note``
    is printed under the legend (e.g. the episodes and the seed).
    """
    plt = pyplot()
    names = list(table)
    labels = {n: (labels or {}).get(n, n) for n in names}
    kinds = {n: (kinds or {}).get(n, "baseline") for n in names}
    ncols = min(4, len(metrics) + 1)
    nrows = -(-(len(metrics) + 1) // ncols)  # one cell more: the legend
    row_h = max(0.32 * len(names) + 1.3, 2.4)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.5 * ncols + 1.2, row_h * nrows + 0.6), squeeze=False)
    colors = _kind_colors(names, kinds)
    y = np.arange(len(names))
    for i, (ax, m) in enumerate(zip(axes.flat, metrics)):
        vals = np.array([table[n][m].value if m in table[n] else np.nan for n in names])
        err = np.array([table[n][m].half_width if m in table[n] else 0.0 for n in names])
        for j, n in enumerate(names):
            oracle = kinds[n] == "oracle"
            ax.barh(y[j], np.nan_to_num(vals[j]), xerr=np.nan_to_num(err[j]), capsize=3, color=colors[n],
                    hatch="///" if oracle else None, edgecolor="0.35" if oracle else colors[n],
                    linestyle="--" if oracle else "-", error_kw={"elinewidth": 1, "ecolor": "black"})
        for k in _group_edges(names, kinds):  # a thin line between trained runs, baselines and oracles
            ax.axhline(k - 0.5, color="0.75", lw=0.8)
        ax.set_yticks(y)
        ax.set_yticklabels([labels[n] for n in names] if i % ncols == 0 else [], fontsize=8)
        ax.set_ylim(max(len(names), 3) - 0.5, -0.5)  # the table's order, top to bottom (no fat lone bars)
        ax.set_title(LABELS[m], fontsize=10)
        ax.set_xlabel(UNITS.get(m, ""), fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", color="0.9", lw=0.8)
        ax.set_axisbelow(True)
    for ax in axes.flat[len(metrics):]:
        ax.axis("off")
    _legend(axes.flat[len(metrics)], kinds, note)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


POLICY_KINDS = ("trained", "baseline", "oracle")
"""How a chart draws a policy: a trained run, an observable baseline, an oracle (reads simulator truth)."""

ORACLE_LEGEND = "oracle (reads simulator truth)"
"""The legend entry of oracles in charts."""


def _kind_colors(names: list[str], kinds: Mapping[str, str]) -> dict[str, tuple]:
    """A color per policy: shades of blue for trained runs, of orange for baselines, light grey for oracles."""
    plt = pyplot()
    out: dict[str, tuple] = {}
    for kind, cmap in (("trained", "Blues"), ("baseline", "Oranges")):
        group = [n for n in names if kinds[n] == kind]
        shades = np.linspace(0.85, 0.45, len(group)) if len(group) > 1 else [0.7]
        out.update({n: plt.get_cmap(cmap)(s) for n, s in zip(group, shades)})
    out.update({n: (0.88, 0.88, 0.88, 1.0) for n in names if kinds[n] == "oracle"})
    return out


def _group_edges(names: list[str], kinds: Mapping[str, str]) -> list[int]:
    return [j for j in range(1, len(names)) if kinds[names[j]] != kinds[names[j - 1]]]


def _legend(ax, kinds: Mapping[str, str], note: str) -> None:
    from matplotlib.patches import Patch

    shown = [k for k in POLICY_KINDS if k in kinds.values()]
    handles = {"trained": Patch(facecolor=pyplot().get_cmap("Blues")(0.7), label="trained run"),
               "baseline": Patch(facecolor=pyplot().get_cmap("Oranges")(0.7), label="baseline (observable)"),
               "oracle": Patch(facecolor=(0.88, 0.88, 0.88), edgecolor="0.35", hatch="///", linestyle="--",
                               label=ORACLE_LEGEND)}
    ax.axis("off")
    ax.legend(handles=[handles[k] for k in shown], loc="upper left", fontsize=9, frameon=False,
              title="policies", title_fontsize=9, alignment="left")
    ax.text(0.03, 0.58, "bar: the mean\nerror bar: its 95% confidence interval" + (f"\n\n{note}" if note else ""),
            transform=ax.transAxes, fontsize=9, va="top")
