"""The report of a training run: ``report.md`` and ``learning_curve.png`` in its run directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bundlerl.evaluation.metrics import UNITS
from bundlerl.evaluation.report import markdown_table, pyplot, save_figure
from bundlerl.evaluation.seeds import stream_label

__all__ = ["write_report", "plot_learning_curve"]


def write_report(rd, cfg, algo_cfg, history, base: dict, results: dict, eval_seed, final_seed,
                 timesteps_note: str = "") -> None:
    """report.md and learning_curve.png in the run directory ``rd``.

    :param cfg: the run's TrainConfig. :param algo_cfg: its algorithm config (PPOConfig, DQNConfig, ...).
    :param history: the run's :class:`bundlerl.experiment.callbacks.PeriodicEvaluation` (rows, best, first beat).
    :param base: baseline name -> ``{"mean", "low", "high"}`` on the periodic-evaluation stream ``eval_seed``.
    :param results: name -> EvalResult of the final evaluation on the stream ``final_seed`` ({} when skipped).
    :param timesteps_note: why the run's timesteps differ from ``cfg.timesteps`` ("" when they do not).
    """
    import yaml

    from bundlerl.utils.atomic import write_text

    net = algo_cfg.network
    rows = history.rows
    plot_learning_curve(rows, base, rd.path / "learning_curve.png", title=f"{rd.path.name}")
    lines = [f"# Training report: {rd.path.name}", "",
             f"- algorithm: **{cfg.algo}**, preset **{cfg.world_name}** ({cfg.action_mode} mode), seed {cfg.seed}",
             f"- network: {net.extractor} extractor"
             + (" with per-candidate head" if net.extractor == "set" and net.candidate_head else ""),
             f"- timesteps: {rows[-1]['timesteps'] if rows else 0:,}"
             + (f" (requested {cfg.timesteps:,}: {timesteps_note})" if timesteps_note else "")
             + f", training wall time {(rows[-1]['wall_s'] if rows else 0):.0f} s",
             f"- best periodic evaluation ({stream_label(eval_seed)}, {cfg.eval_episodes} episodes): {history.best:.3f}"]
    if history.first_beat_s is not None:
        lines.append(f"- first beat the best baseline by 10% after {history.first_beat_s:.0f} s "
                     f"({history.first_beat_t} timesteps)")
    elif history.beat_target is not None:
        lines.append(f"- never beat the best baseline by 10% (target {history.beat_target:.3f})")
    lines += ["", "## Final evaluation", ""]
    if results:
        lines += [f"Best model vs baselines on {cfg.final_episodes} fresh episodes ({stream_label(final_seed)}); "
                  "value ± 95% CI half-width.", "", markdown_table(results)]
    else:
        lines.append("(skipped: final_episodes = 0)")
    lines += ["## Baselines on the periodic-evaluation episodes", "", "| baseline | mean return | 95% CI |", "|---|---|---|"]
    lines += [f"| {k} | {v['mean']:.3f} | [{v['low']:.3f}, {v['high']:.3f}] |" for k, v in base.items()]
    lines += ["", "## Learning curve", "", "![learning curve](learning_curve.png)", "",
              "## Configuration", "", "```yaml", yaml.safe_dump(rd.config(), sort_keys=False).strip(), "```", ""]
    write_text(rd.path / "report.md", "\n".join(lines))


def plot_learning_curve(rows: list[dict], baselines: dict, path: Path, title: str = "") -> None:
    """Evaluation mean return (95% CI band) against timesteps, baselines as horizontal lines; written atomically."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    if rows:
        t = np.array([r["timesteps"] for r in rows])
        m = np.array([r["mean_return"] for r in rows])
        ax.plot(t, m, marker="o", label="agent (periodic evaluation)")
        ax.fill_between(t, [r["ci_low"] for r in rows], [r["ci_high"] for r in rows], alpha=0.25,
                        label="its 95% confidence interval")
        tr = np.array([r.get("train_return", np.nan) for r in rows], dtype=float)
        if np.isfinite(tr).any():
            ax.plot(t, tr, ls=":", color="gray", label="agent (training episodes)")
    for i, (name, v) in enumerate(baselines.items()):
        ax.axhline(v["mean"], ls="--", color=f"C{i + 1}", lw=1, label=f"{name} (baseline)")
    ax.set_xlabel("timesteps (env steps summed over users)")
    ax.set_ylabel(f"mean return: {UNITS['return']}", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    save_figure(fig, path)
