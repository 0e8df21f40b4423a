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

from bundlerl.evaluation.metrics import COMPARISON_METRICS, LABELS, METRICS
from bundlerl.evaluation.stats import Estimate

__all__ = [
    "ORACLE_NOTE", "policy_label", "estimates_table", "markdown_table", "table_json", "bar_chart", "pyplot",
    "save_figure",
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
    labels = labels or {}
    head = "| policy | episodes | " + " | ".join(LABELS[m] for m in metrics) + " |"
    rows = [head, "|" + "---|" * (len(metrics) + 2)]
    for name, est in table.items():
        n = next(iter(est.values())).n if est else 0  # every estimate of one evaluation counts its episodes
        cells = [est[m].format(digits) if m in est else "n/a" for m in metrics]
        rows.append(f"| {labels.get(name, name)} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def markdown_table(results, digits: int = 3) -> str:
    """A markdown table of EvalResults (a sequence, named by their policy, or a mapping name -> result) with the
    session metrics (:data:`bundlerl.evaluation.metrics.METRICS`); oracles labelled."""
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


def bar_chart(table: Table, path: str | Path, metrics: Sequence[str] = COMPARISON_METRICS, title: str = "") -> None:
    """One panel per metric, a bar per policy with its 95% CI; written atomically to ``path`` (PNG)."""
    plt = pyplot()
    names = list(table)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.0 * len(metrics), 3.8))
    for ax, m in zip(np.atleast_1d(axes), metrics):
        vals = np.array([table[n][m].value if m in table[n] else np.nan for n in names])
        err = np.array([table[n][m].half_width if m in table[n] else 0 for n in names])
        ax.bar(range(len(names)), np.nan_to_num(vals), yerr=np.nan_to_num(err), capsize=3,
               color=[f"C{i}" for i in range(len(names))])
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
        ax.set_title(LABELS[m], fontsize=9)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
