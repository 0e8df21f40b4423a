"""Reports of an off-policy evaluation: a markdown table (estimator x policy, value and bootstrap interval, effective
sample sizes, unsupported share) and a PNG of the estimates side by side (``bundlerl ope``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from bundlerl.evaluation.ope.estimators import DECISION_ESTIMATORS, MOMENT_ESTIMATORS, TRAJECTORY_ESTIMATORS
from bundlerl.evaluation.ope.evaluate import OPEResult
from bundlerl.evaluation.ope.intervals import MODEL_INTERVAL_ESTIMATORS
from bundlerl.evaluation.report import pyplot, save_figure

__all__ = ["ope_markdown", "ope_chart", "ranking_markdown", "write_ope_report", "LOW_EPISODE_ESS"]

LOW_EPISODE_ESS = 0.01
"""Episode-weight ESS, as a share of the episodes, below which the report warns that the per-trajectory estimates
and intervals are not to be trusted (issue 18's bar; bench_ope measured their intervals under-covering there)."""

_GROUPS = (("per decision: mean reward per decision", [c.name for c in DECISION_ESTIMATORS]),
           ("per trajectory: mean episode return", [c.name for c in TRAJECTORY_ESTIMATORS + MOMENT_ESTIMATORS]))


def _cell(e, digits: int) -> str:
    if not np.isfinite(e.value):
        return "n/a"
    ci = f" [{e.low:.{digits}f}, {e.high:.{digits}f}]" if np.isfinite(e.low) else ""
    return f"{e.value:.{digits}f}{ci}"


def ope_markdown(results: Sequence[OPEResult], digits: int = 3) -> str:
    """A markdown table: a row per estimator (value [95% bootstrap interval]) and per diagnostic, a column per policy."""
    head = "| estimator | " + " | ".join(r.policy for r in results) + " |"
    lines = [head, "|" + "---|" * (len(results) + 1)]
    for _, names in _GROUPS:
        for name in names:
            lines.append(f"| {name} | " + " | ".join(_cell(r.estimates[name], digits) for r in results) + " |")
    lines.append("| ESS (decisions) | " + " | ".join(f"{r.ess_decisions:,.0f} of {r.n_decisions:,}"
                                                   for r in results) + " |")
    lines.append("| ESS (episodes) | " + " | ".join(f"{r.ess_episodes:,.1f} of {r.n_episodes:,}"
                                                  for r in results) + " |")
    lines.append("| unsupported share | " + " | ".join(f"{r.unsupported_share:.2%}" for r in results) + " |")
    if any(r.truth is not None for r in results):
        lines.append("| ground truth per decision (simulator) | " + " | ".join(
            "n/a" if r.truth is None else f"{r.truth:.{digits}f}" for r in results) + " |")
    lines.append("")
    model = " and ".join(f"{c.name}'s" for c in MODEL_INTERVAL_ESTIMATORS)
    on = {"logged": f"the value on the logged contexts ({model}: on the traffic they came from, as they lean on the "
                    "reward model)",
          "population": "the value on the traffic they came from"}
    lines.append(f"Intervals: 95% bootstrap over episodes; per decision they cover "
                 f"{' / '.join(sorted({on.get(r.interval, r.interval) for r in results}))}, per trajectory the mean "
                 "return of new episodes.")
    low = [r.policy for r in results if r.n_episodes and r.ess_episodes < LOW_EPISODE_ESS * r.n_episodes]
    if low:
        lines.append(f"Per-trajectory estimates of {', '.join(low)} rest on an episode-weight ESS under "
                     f"{LOW_EPISODE_ESS:.0%} of the episodes: a few episodes decide them, the log may not follow the "
                     "target to the end of its sessions (the return model fills in the rest) and their intervals "
                     "under-cover (RegDR-traj's least); trust the per-decision DR / SNDR, or log closer to the target.")
    return "\n".join(lines) + "\n"


def ope_chart(results: Sequence[OPEResult], path: str | Path, title: str = "") -> None:
    """Two panels (per decision, per trajectory): each estimator's value and interval, the policies side by side."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / max(len(results), 1)
    colors = plt.get_cmap("tab10")
    for ax, (label, names) in zip(axes, _GROUPS):
        x = np.arange(len(names))
        for j, r in enumerate(results):
            est = [r.estimates[n] for n in names]
            v = np.array([e.value for e in est])
            lo = np.array([e.value - e.low if np.isfinite(e.low) else 0.0 for e in est])
            hi = np.array([e.high - e.value if np.isfinite(e.high) else 0.0 for e in est])
            ax.bar(x + (j - (len(results) - 1) / 2) * width, np.nan_to_num(v), width, yerr=[lo, hi], capsize=2,
                   color=colors(j % 10), label=r.policy)
        ax.set_xticks(x, names, rotation=20)
        ax.set_title(label, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(results), 5), fontsize=8, frameon=False)
    fig.suptitle(title or "off-policy estimates (95% bootstrap intervals)")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    save_figure(fig, path)


def ranking_markdown(table: Mapping[str, Mapping], k: int) -> str:
    """A markdown table of ranking metrics @k (``bundlerl.evaluation.ranking.log_ranking_metrics``'s
    ``{policy: {metric: Estimate}}``): a row per policy, value ± 95% half-width (delta method over sessions), and
    the number of sessions the intervals are over."""
    from bundlerl.evaluation.ranking import RANKING_METRICS

    lines = ["| policy | " + " | ".join(f"{m}@{k}" for m in RANKING_METRICS) + " | sessions |",
             "|" + "---|" * (len(RANKING_METRICS) + 2)]
    for name, row in table.items():
        lines.append(f"| {name} | " + " | ".join(row[m].format() for m in RANKING_METRICS) + " | "
                     f"{row[RANKING_METRICS[0]].n:,} |")
    lines.append("")
    lines.append(f"Ranking @{k}: each decision's valid candidates ranked by the policy's scores, relevant = holds an "
                 "item bought in the session; averaged over the decisions with a purchase.")
    return "\n".join(lines) + "\n"


def write_ope_report(results: Sequence[OPEResult], out: str | Path, title: str = "",
                     ranking: Mapping[str, Mapping] | None = None, ranking_k: int | None = None) -> dict[str, Path]:
    """``ope.md``, ``ope.json`` and ``ope.png`` in ``out`` (written atomically); returns their paths (keys ``md``,
    ``json``, ``png``, and ``ranking`` when written).

    :param ranking: ranking metrics @``ranking_k`` per policy (:func:`ranking_markdown`'s input), also written to
        ``ranking.md`` and, per policy, to ``ope.json`` under ``"ranking"`` (``{"k", metric: Estimate dict}``).
    """
    from bundlerl.utils.atomic import write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / "ope.md", "json": out / "ope.json", "png": out / "ope.png"}
    write_text(paths["md"], (f"# {title}\n\n" if title else "") + ope_markdown(results))
    rows = [r.to_dict() for r in results]
    if ranking is not None:
        for row in rows:
            table = ranking.get(row["policy"])
            if table is not None:
                row["ranking"] = {"k": ranking_k, **{m: e.to_dict() for m, e in table.items()}}
        paths["ranking"] = out / "ranking.md"
        write_text(paths["ranking"], ranking_markdown(ranking, ranking_k))
    write_text(paths["json"], json.dumps(rows, indent=2) + "\n")
    ope_chart(results, paths["png"], title)
    return paths
