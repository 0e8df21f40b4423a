"""Reports of an off-policy evaluation: a markdown table (estimator x policy, value and bootstrap interval, effective
sample sizes, unsupported share), a PNG of the estimates side by side, and ``ope.json``: the run's settings (the
estimator settings of its :class:`OPEConfig`, and whatever the caller adds: log identity, policies, versions) next to
the figures (``bundlerl ope``). A report folder is written only when empty or with ``overwrite``."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from bundlerl.evaluation.ope.estimators import (
    DECISION_ESTIMATORS,
    MOMENT_ESTIMATORS,
    TRAJECTORY_ESTIMATORS,
    OPEError,
)
from bundlerl.evaluation.ope.evaluate import OPEConfig, OPEResult
from bundlerl.evaluation.ope.intervals import MODEL_INTERVAL_ESTIMATORS
from bundlerl.evaluation.report import pyplot, save_figure

__all__ = ["ope_markdown", "ope_chart", "ranking_markdown", "write_ope_report", "LOW_EPISODE_ESS", "REPORT_FILES",
           "OPE_JSON_VERSION", "check_report_folder", "config_settings", "config_from_settings", "read_ope_json",
           "ReportWrittenInterrupt"]

REPORT_FILES = ("ope.md", "ranking.md", "ope.png", "ope.json")
"""The files of a report folder, in the order written (``ope.json`` last: a folder holding it holds a report)."""

OPE_JSON_VERSION = 2
"""Layout of ``ope.json``: 2 = ``{"version", "settings", "results"}`` (1, before it: the bare list of results)."""

_NOT_SETTINGS = ("progress",)
"""OPEConfig fields that do not change the figures (display only), left out of the recorded settings."""

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
            xs = x + (j - (len(results) - 1) / 2) * width
            ax.bar(xs, np.nan_to_num(v), width, color=colors(j % 10), label=r.policy)
            # the interval as drawn lines, not yerr: a bootstrap interval need not hold its point estimate (a
            # studentized or population one on a small log), and yerr refuses a negative extent
            ok = np.array([np.isfinite(e.low) and np.isfinite(e.high) for e in est])
            if ok.any():
                lo, hi = np.array([e.low for e in est])[ok], np.array([e.high for e in est])[ok]
                ax.vlines(xs[ok], lo, hi, colors="black", linewidth=1)
                ax.hlines(np.r_[lo, hi], np.r_[xs[ok], xs[ok]] - width / 6, np.r_[xs[ok], xs[ok]] + width / 6,
                          colors="black", linewidth=1)
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
                 "item bought in the session; averaged over the decisions with a purchase. sessions: the log's "
                 "sessions, the units of the 95% intervals (those without a purchase add no decision).")
    return "\n".join(lines) + "\n"


def config_settings(config: OPEConfig) -> dict[str, Any]:
    """The estimator settings of ``config`` as JSON data: every field that changes the figures (not ``progress``);
    no clipping (``clip`` inf) is ``None``. :func:`config_from_settings` is the inverse."""
    out = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name not in _NOT_SETTINGS}
    out["clip"] = None if not np.isfinite(out["clip"]) else float(out["clip"])
    return out


def config_from_settings(settings: Mapping[str, Any]) -> OPEConfig:
    """The OPEConfig of :func:`config_settings`' output (e.g. ``read_ope_json(path)["settings"]["estimator"]``), to
    re-run a report's estimates. :raises OPEError: an unknown setting, or a value OPEConfig refuses."""
    known = {f.name for f in dataclasses.fields(OPEConfig)} - set(_NOT_SETTINGS)
    unknown = sorted(set(settings) - known)
    if unknown:
        raise OPEError(f"estimator settings {', '.join(map(repr, unknown))}: not OPEConfig settings; known: "
                       f"{', '.join(sorted(known))}")
    d = dict(settings)
    if "clip" in d and d["clip"] is None:
        d["clip"] = float("inf")
    return OPEConfig(**d)


def read_ope_json(path: str | Path) -> dict[str, Any]:
    """An ``ope.json`` (a file or its report folder) as ``{"version", "settings", "results"}``; a version-1 file
    (the bare list of results, before settings were recorded) reads with ``"settings": None``.

    :raises OPEError: not JSON, or neither layout."""
    path = Path(path)
    path = path / "ope.json" if path.is_dir() else path
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise OPEError(f"{path}: cannot read it as JSON ({exc}); re-run bundlerl ope") from None
    if isinstance(data, list):
        return {"version": 1, "settings": None, "results": data}
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise OPEError(f"{path}: not an ope.json (no list of results); re-run bundlerl ope")
    return data


def check_report_folder(out: str | Path, *, overwrite: bool = False, out_name: str = "out",
                        overwrite_name: str = "overwrite=True") -> Path:
    """``out`` as a Path, once it is sure a report may be written there: a missing or empty folder, or any folder
    with ``overwrite`` (only :data:`REPORT_FILES` are then replaced; nothing else in it is touched). Nothing is made.

    :param out_name: / :param overwrite_name: the arguments' names in the message (the CLI's ``--out`` /
        ``--overwrite``).
    :raises OPEError: a non-empty folder without ``overwrite`` (the message says whether it holds a previous report
        and what to do), or a file in the way.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OPEError(f"{out_name} {out}: a file, not a folder; give a folder for the report")
    if overwrite or not out.is_dir():
        return out
    entries = sorted(e.name for e in out.iterdir() if not (e.name.startswith(".") and ".tmp" in e.name))
    if not entries:
        return out
    ours = ", ".join(f for f in REPORT_FILES if f in entries)
    if ours:
        what = "a report already" if "ope.json" in entries else "an unfinished report (no ope.json: interrupted?)"
        raise OPEError(f"{out_name} {out}: holds {what} ({ours}); pass {overwrite_name} to replace it, or choose "
                       f"another {out_name}")
    shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
    raise OPEError(f"{out_name} {out}: not empty ({shown}) and not a report; choose an empty or new folder, or pass "
                   f"{overwrite_name} to write the report's files ({', '.join(REPORT_FILES)}) among them")


def write_ope_report(results: Sequence[OPEResult], out: str | Path, title: str = "",
                     ranking: Mapping[str, Mapping] | None = None, ranking_k: int | None = None,
                     settings: Mapping[str, Any] | None = None, *, overwrite: bool = False,
                     notes: str = "") -> dict[str, Path]:
    """``ope.md``, ``ope.json`` and ``ope.png`` in ``out``; returns their paths (keys ``md``, ``json``, ``png``, and
    ``ranking`` when written).

    The files are written into a temporary sibling folder first, then swapped in by renames with Ctrl-C held back
    (``bundlerl.utils.atomic.interrupts_deferred``): a new or empty ``out`` is that folder renamed; otherwise the
    previous report's files are replaced one by one (``ope.json`` removed first and renamed in last: a folder holding
    it holds a whole report), and nothing else in ``out`` is touched. An interrupt before the swap leaves the previous
    report intact; one during it is delivered after, as :class:`ReportWrittenInterrupt`.

    :param ranking: ranking metrics @``ranking_k`` per policy (:func:`ranking_markdown`'s input), also written to
        ``ranking.md`` and, per policy, to ``ope.json`` under ``"ranking"`` (``{"k", metric: Estimate dict}``).
    :param settings: what produced the figures, as JSON data (``bundlerl ope``: the log folder and its ``log.json``
        hash, the policies, :func:`config_settings`, ranking k, versions and git commit), stored as ``ope.json``'s
        ``"settings"`` (layout :data:`OPE_JSON_VERSION`, read by :func:`read_ope_json`).
    :param overwrite: write into a non-empty folder (:func:`check_report_folder`); a ``ranking.md`` of an earlier
        report is removed when this one has no ranking.
    :param notes: markdown put in ``ope.md`` between the title and the table (``bundlerl ope``: the evaluated models).
    :raises OPEError: a non-empty ``out`` without ``overwrite``.
    :raises ReportWrittenInterrupt: a Ctrl-C arrived during the swap; the report is complete.
    """
    import shutil
    import tempfile

    from bundlerl.utils.atomic import _UMASK, interrupts_deferred, sweep_temporaries

    out = check_report_folder(out, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    sweep_temporaries(out.parent, dirs=True)  # staging folders of killed runs (SIGKILL: no finally ran)
    stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.{os.getpid()}.", suffix=".tmp-report"))
    try:
        names = {"md": "ope.md", "json": "ope.json", "png": "ope.png"}
        (stage / names["md"]).write_text((f"# {title}\n\n" if title else "") + (f"{notes}\n\n" if notes else "")
                                         + ope_markdown(results), encoding="utf-8")
        rows = [r.to_dict() for r in results]
        if ranking is not None:
            for row in rows:
                table = ranking.get(row["policy"])
                if table is not None:
                    row["ranking"] = {"k": ranking_k, **{m: e.to_dict() for m, e in table.items()}}
            names["ranking"] = "ranking.md"
            (stage / names["ranking"]).write_text(ranking_markdown(ranking, ranking_k), encoding="utf-8")
        ope_chart(results, stage / names["png"], title)
        doc = {"version": OPE_JSON_VERSION, "settings": None if settings is None else dict(settings), "results": rows}
        (stage / names["json"]).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        os.chmod(stage, 0o777 & ~_UMASK)  # mkdtemp makes 0700; a report folder gets the usual permissions
        with interrupts_deferred() as late:
            if not out.is_dir() or not any(out.iterdir()):
                os.replace(stage, out)
            else:
                (out / "ope.json").unlink(missing_ok=True)
                for name in REPORT_FILES:
                    if name not in names.values():
                        (out / name).unlink(missing_ok=True)  # an earlier report's, not this one's
                for name in sorted(names.values(), key=lambda n: n == "ope.json"):  # ope.json last
                    os.replace(stage / name, out / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    if late.interrupted:
        raise ReportWrittenInterrupt(f"interrupted after the report was written to {out}")
    return {k: out / n for k, n in names.items()}


class ReportWrittenInterrupt(KeyboardInterrupt):
    """Ctrl-C arrived while :func:`write_ope_report` swapped the new report in; it was finished first (complete)."""
