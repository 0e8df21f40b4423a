"""One training run, top to bottom: config -> run directory -> SB3 learn with callbacks -> report.

:func:`train` is what ``bundlerl train`` and ``bundlerl quickstart`` call. Read it in order:

1. build the :class:`bundlerl.env.vec_env.BundleRecVecEnv` (N users stepped together) and the model
   (:func:`bundlerl.agents.sb3.make_model`) or, with ``resume``, load the last checkpoint of a run directory;
2. evaluate the observable baselines once (``bundlerl.evaluation.rollout.evaluate``, fixed eval seed);
3. ``model.learn`` with callbacks: a progress bar, periodic atomic checkpoints, and an evaluation
   callback (mean return with 95% CI on the same eval episodes; best model saved; tensorboard scalars);
4. a final evaluation of the best model and the baselines on fresh episodes, ``report.md`` and
   ``learning_curve.png``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bundlerl.agents.config import (
    ALGOS,
    EXTRACTORS,
    AgentConfigError,
    config_from_dict,
    config_to_dict,
    load_algo_config,
)

__all__ = ["TrainConfig", "TrainResult", "train", "EVAL_SEED", "FINAL_EVAL_SEED"]

EVAL_SEED = 1_000_003
"""Env seed of the periodic evaluations (disjoint from training seeds, identical episodes every time)."""
FINAL_EVAL_SEED = 2_000_003
"""Env seed of the final evaluation (fresh episodes: the best model was selected on EVAL_SEED's)."""


@dataclass
class TrainConfig:
    """What one ``bundlerl train`` run does (the algorithm's hyperparameters live in its own config)."""

    algo: str = "ppo"
    """Learner: ppo, maskable_ppo or dqn."""
    preset: str = "default"
    """Env preset name (``bundlerl.env.config.PRESETS``)."""
    timesteps: int = 100_000
    """Total environment steps (summed over the N users) to train for."""
    seed: int = 0
    """Seed of the model and of the training envs (row i uses seed + i)."""
    action_mode: str = "bundle"
    """Env action mode: ``bundle`` (pick one of K bundles) or ``compose`` (item by item; PPO / MaskablePPO)."""
    extractor: str | None = None
    """Override of the network's extractor (``set`` or ``mlp``); None keeps the YAML's."""
    num_envs: int | None = None
    """Override of the algorithm config's num_envs; None keeps the YAML's."""
    hyperparams: dict = field(default_factory=dict)
    """Overrides of the algorithm config's fields (e.g. ``{"learning_rate": 1e-3}``)."""
    eval_freq: int = 0
    """Timesteps between evaluations; 0 = timesteps / 10 (at least one rollout)."""
    eval_episodes: int = 200
    """Episodes per periodic evaluation (and for the baselines)."""
    final_episodes: int = 500
    """Episodes of the final evaluation (best model and baselines, fresh episodes); 0 skips it."""
    checkpoint_freq: int = 0
    """Timesteps between checkpoints; 0 = same as eval_freq."""
    baselines: tuple = ("random", "popularity", "relevance-greedy", "complement-greedy")
    """Observable baselines evaluated for comparison (``bundlerl.agents.baselines.BASELINES``)."""
    max_wall_s: float = 0.0
    """Stop training after this many seconds of this invocation's training wall time (0 = no limit); the
    benchmark's time budget. ``timesteps`` still caps the run."""
    progress: bool = True
    """Show a progress bar while training."""
    device: str = "cpu"
    """Torch device."""
    torch_threads: int = 1
    """Torch intra-op threads. 1 by default: on the shared 2-core machine two threads made a PPO minibatch
    update ~25-100x slower than one (thread contention; see BENCHMARKS.md, Agents)."""

    def __post_init__(self) -> None:
        def bad(name: str, msg: str) -> AgentConfigError:
            return AgentConfigError(f"TrainConfig.{name}: {msg}")

        if self.algo not in ALGOS:
            raise bad("algo", f"{self.algo!r}; use one of {ALGOS}")
        if self.action_mode not in ("bundle", "compose"):
            raise bad("action_mode", f"{self.action_mode!r}; use bundle or compose")
        if self.action_mode == "compose" and self.algo == "dqn":
            raise bad("action_mode", "compose mode is supported for ppo and maskable_ppo; use --algo ppo")
        if self.extractor is not None and self.extractor not in EXTRACTORS:
            raise bad("extractor", f"{self.extractor!r}; use one of {EXTRACTORS}")
        for name, lo in (("timesteps", 1), ("eval_freq", 0), ("eval_episodes", 1), ("final_episodes", 0),
                         ("checkpoint_freq", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise bad(name, f"{v!r}; it must be an integer >= {lo}")
        if not (isinstance(self.max_wall_s, (int, float)) and self.max_wall_s >= 0):
            raise bad("max_wall_s", f"{self.max_wall_s!r}; it must be a number >= 0")
        if isinstance(self.torch_threads, bool) or not isinstance(self.torch_threads, int) or self.torch_threads < 1:
            raise bad("torch_threads", f"{self.torch_threads!r}; it must be an integer >= 1")
        if self.num_envs is not None and (not isinstance(self.num_envs, int) or self.num_envs < 1):
            raise bad("num_envs", f"{self.num_envs!r}; it must be an integer >= 1")
        from bundlerl.agents.baselines import BASELINES

        self.baselines = tuple(self.baselines)
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise bad("baselines", f"unknown {unknown}; use names from {BASELINES}")

    def algo_config(self):
        """The algorithm config: YAML for (algo, preset), then the extractor / num_envs / hyperparams overrides."""
        over: dict[str, Any] = dict(self.hyperparams)
        if self.num_envs is not None:
            over["num_envs"] = self.num_envs
        if self.extractor is not None:
            over["network"] = {**dict(over.get("network") or {}), "extractor": self.extractor}
        return load_algo_config(self.algo, self.preset, overrides=over)


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    run_dir: Path
    timesteps: int
    """Model timesteps at the end."""
    best_mean_return: float
    final: dict[str, Any]
    """Final evaluation: name -> {"mean": .., "low": .., "high": ..} (agent and baselines)."""
    wall_s: float
    """Wall time of this invocation (not counting a resumed run's earlier time)."""
    first_beat_s: float | None
    """Training wall time (cumulative over resumes) when an evaluation first beat the best baseline by 10%."""


def _make_venv(cfg: TrainConfig, num_envs: int, seed: int):
    """The training VecEnv: G's batched BundleRecVecEnv (an SB3 VecEnv)."""
    from bundlerl.env.vec_env import BundleRecVecEnv

    return BundleRecVecEnv(cfg.preset, num_envs=num_envs, seed=seed, action_mode=cfg.action_mode)


def _eval_policy(policy, cfg: TrainConfig, n: int, seed: int):
    from bundlerl.evaluation.rollout import evaluate

    return evaluate(policy, cfg.preset, n_episodes=n, seed=seed, num_envs=min(n, 128),
                    action_mode=cfg.action_mode, progress=False)


def _baseline_results(cfg: TrainConfig, n: int, seed: int) -> dict[str, Any]:
    from bundlerl.agents.baselines import make_baseline

    return {b: _eval_policy(make_baseline(b, np.random.default_rng([seed, 17])), cfg, n, seed) for b in cfg.baselines}


def _est(e) -> dict[str, float]:
    return {"mean": float(e.value), "low": float(e.low), "high": float(e.high), "n": int(e.n)}


def _make_callbacks(cfg: TrainConfig, rd, algo_cfg, total: int, start: int, state: dict):
    """The progress, checkpoint and evaluation callbacks (SB3 BaseCallback subclasses)."""
    from stable_baselines3.common.callbacks import BaseCallback

    from bundlerl.agents.sb3 import SB3Policy

    eval_freq = cfg.eval_freq or max(total // 10, 1)
    ck_freq = cfg.checkpoint_freq or eval_freq

    class Progress(BaseCallback):
        """A bar over timesteps, or over seconds when a wall-time budget (``max_wall_s``) ends the run first."""

        def _on_training_start(self) -> None:
            self.bar = None
            self.by_time = bool(cfg.max_wall_s) and total - start > 10**8  # "train for N minutes" runs
            if cfg.progress:
                from tqdm.auto import tqdm

                if self.by_time:
                    self.bar = tqdm(total=int(cfg.max_wall_s), desc=f"train {cfg.algo}", unit="s", dynamic_ncols=True)
                else:
                    self.bar = tqdm(total=total, initial=start, desc=f"train {cfg.algo}", unit="step", dynamic_ncols=True)

        def _position(self) -> int:
            if self.by_time:
                return min(int(time.perf_counter() - state["t0"]), int(cfg.max_wall_s))
            return min(self.num_timesteps, total)

        def _on_step(self) -> bool:
            if self.bar is not None:
                self.bar.n = self._position()
                post = {"steps": self.num_timesteps} if self.by_time else {}
                if state.get("last_eval") is not None:
                    post.update(eval_return=f"{state['last_eval']:.3f}", best=f"{state['best']:.3f}")
                if post:
                    self.bar.set_postfix(post, refresh=False)
                self.bar.update(0)
            return True

        def _on_training_end(self) -> None:
            if self.bar is not None:
                self.bar.n = self._position()
                self.bar.close()

    class Checkpoint(BaseCallback):
        def _on_training_start(self) -> None:
            self.next = (self.num_timesteps // ck_freq + 1) * ck_freq

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next:
                rd.save_checkpoint(self.model, self.num_timesteps, save_replay=cfg.algo == "dqn")
                self.next = (self.num_timesteps // ck_freq + 1) * ck_freq
            return True

    class Evaluate(BaseCallback):
        def _on_training_start(self) -> None:
            self.next = (self.num_timesteps // eval_freq + 1) * eval_freq

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next:
                self.run_eval()
                self.next = (self.num_timesteps // eval_freq + 1) * eval_freq
            return True

        def _on_training_end(self) -> None:
            if not state["rows"] or state["rows"][-1]["timesteps"] < self.num_timesteps:
                self.run_eval()

        def run_eval(self) -> None:
            res = _eval_policy(SB3Policy(self.model, name=cfg.algo), cfg, cfg.eval_episodes, EVAL_SEED)
            est = res.summary()["return"]
            train_s = state["prev_train_s"] + (time.perf_counter() - state["t0"])
            ep_buf = getattr(self.model, "ep_info_buffer", None) or []
            train_ret = float(np.mean([e["r"] for e in ep_buf])) if len(ep_buf) else float("nan")
            row = {"timesteps": int(self.num_timesteps), "wall_s": round(train_s, 2), "mean_return": est.value,
                   "ci_low": est.low, "ci_high": est.high, "train_return": train_ret}
            state["rows"].append(row)
            state["last_eval"] = est.value
            self.logger.record("eval/mean_return", est.value)
            self.logger.record("eval/ci_half_width", est.half_width)
            self.logger.record("eval/click_rate", res.summary()["click_rate"].value)
            if est.value > state["best"]:
                state["best"] = est.value
                rd.save_model(self.model, "best_model.zip")
            target = state["beat_target"]
            if state["first_beat_s"] is None and target is not None and est.value >= target:
                state["first_beat_s"] = train_s
                state["first_beat_t"] = int(self.num_timesteps)
            _write_eval_csv(rd, state["rows"])
            rd.write_json("progress.json", {k: state[k] for k in ("best", "first_beat_s", "first_beat_t")}
                          | {"train_s": train_s})

    class WallClock(BaseCallback):
        def _on_step(self) -> bool:
            return not cfg.max_wall_s or time.perf_counter() - state["t0"] < cfg.max_wall_s

    return [Progress(), Checkpoint(), Evaluate(), WallClock()]


def _write_eval_csv(rd, rows: list[dict]) -> None:
    from bundlerl.utils.atomic import write_text

    cols = ["timesteps", "wall_s", "mean_return", "ci_low", "ci_high", "train_return"]
    lines = [",".join(cols)] + [",".join(f"{r[c]:.6g}" if isinstance(r[c], float) else str(r[c]) for c in cols)
                                for r in rows]
    write_text(rd.path / "eval.csv", "\n".join(lines) + "\n")


def _read_eval_csv(rd) -> list[dict]:
    f = rd.path / "eval.csv"
    if not f.is_file():
        return []
    lines = f.read_text().strip().splitlines()
    cols = lines[0].split(",")
    out = []
    for line in lines[1:]:
        vals = line.split(",")
        out.append({c: (int(v) if c == "timesteps" else float(v)) for c, v in zip(cols, vals)})
    return out


def train(cfg: TrainConfig, out: str | Path = "runs", resume: str | Path | None = None,
          log=print) -> TrainResult:
    """Train per ``cfg`` into a new run directory under ``out`` (or continue ``resume``); see the module docstring.

    With ``resume``, ``cfg`` is read from the run's config.yaml except ``timesteps`` (the new total when
    larger than the saved one), ``progress`` and ``device``; the model, its timestep count and (DQN)
    its replay buffer come from the last checkpoint.

    :raises AgentConfigError: invalid configuration.  :raises RunDirError: ``resume`` is not a run directory.
    """
    import torch as th

    from bundlerl.agents.sb3 import algo_class, make_model
    from bundlerl.experiment.run_dir import RunDir, RunDirError
    from bundlerl.utils.threads import torch_threads

    t_start = time.perf_counter()
    if resume is not None:
        rd = RunDir.open(resume)
        saved = rd.config()
        tr = dict(saved["train"])
        tr["timesteps"] = max(int(tr["timesteps"]), int(cfg.timesteps)) if cfg.timesteps else int(tr["timesteps"])
        tr["progress"], tr["device"], tr["torch_threads"] = cfg.progress, cfg.device, cfg.torch_threads
        tr["baselines"] = tuple(tr.get("baselines") or ())
        cfg = TrainConfig(**tr)
        algo_cfg = config_from_dict(cfg.algo, saved["algo_config"])
        ck = rd.latest_checkpoint()
        if ck is None:
            raise RunDirError(f"{rd.path} has no checkpoint to resume from (checkpoints/latest.json)")
    else:
        algo_cfg = cfg.algo_config()
        rd = RunDir.create(out, cfg.preset, cfg.algo, cfg.seed,
                           {"train": _train_dict(cfg), "algo_config": config_to_dict(algo_cfg)})
        ck = None
    th.manual_seed(cfg.seed)
    # torch's thread count for this run only (restored on exit): setting it for the process is the CLI's job
    with torch_threads(cfg.torch_threads):
        log(f"== run directory: {rd.path}")

        # 1. env and model
        log(f"== building env '{cfg.preset}' ({algo_cfg.num_envs} users, {cfg.action_mode} mode)")
        if ck is None:
            venv = _make_venv(cfg, algo_cfg.num_envs, cfg.seed)
            model = make_model(cfg.algo, venv, algo_cfg, seed=cfg.seed, tensorboard_log=str(rd.path / "tb"),
                               device=cfg.device)
            start = 0
        else:
            # Fresh episodes after a resume: shift the env seed by the timesteps already done.
            venv = _make_venv(cfg, algo_cfg.num_envs, cfg.seed + ck["timesteps"])
            model = algo_class(cfg.algo).load(str(ck["model"]), env=venv, device=cfg.device)
            model.tensorboard_log = str(rd.path / "tb")
            if ck["replay"] is not None and ck["replay"].is_file():
                model.load_replay_buffer(str(ck["replay"]))
            start = int(model.num_timesteps)
            log(f"== resumed from {ck['model'].name} at {start} timesteps")

        # 2. baselines (once per run)
        if (rd.path / "baselines.json").is_file():
            base = rd.read_json("baselines.json")
        else:
            log(f"== evaluating baselines {', '.join(cfg.baselines)} ({cfg.eval_episodes} episodes each)")
            base = {k: _est(v.summary()["return"]) for k, v in _baseline_results(cfg, cfg.eval_episodes, EVAL_SEED).items()}
            rd.write_json("baselines.json", base)
        best_base = max(base.items(), key=lambda kv: kv[1]["mean"]) if base else None
        if best_base:
            log(f"   best baseline: {best_base[0]} mean return {best_base[1]['mean']:.3f}")

        # 3. learn
        prog = rd.read_json("progress.json") if (rd.path / "progress.json").is_file() else {}
        rows = _read_eval_csv(rd)
        state: dict[str, Any] = {
            "rows": rows, "best": float(prog.get("best", -np.inf)), "last_eval": rows[-1]["mean_return"] if rows else None,
            "first_beat_s": prog.get("first_beat_s"), "first_beat_t": prog.get("first_beat_t"),
            "prev_train_s": float(prog.get("train_s", 0.0)), "t0": time.perf_counter(),
            "beat_target": (1.1 * best_base[1]["mean"] if best_base and best_base[1]["mean"] > 0 else None),
        }
        remaining = cfg.timesteps - start
        if remaining > 0:
            log(f"== training {cfg.algo} for {remaining} timesteps")
            callbacks = _make_callbacks(cfg, rd, algo_cfg, cfg.timesteps, start, state)
            model.learn(remaining, callback=callbacks, reset_num_timesteps=start == 0, tb_log_name=cfg.algo,
                        progress_bar=False)
            rd.save_checkpoint(model, int(model.num_timesteps), save_replay=cfg.algo == "dqn")
        rd.save_model(model, "final_model.zip")

        # 4. final evaluation and report
        final: dict[str, Any] = {}
        results = {}
        if cfg.final_episodes:
            from bundlerl.agents.sb3 import SB3Policy

            log(f"== final evaluation: best model and baselines on {cfg.final_episodes} fresh episodes")
            best_model = algo_class(cfg.algo).load(str(rd.model_path("best")), device=cfg.device)
            results = {f"{cfg.algo} (best)": _eval_policy(SB3Policy(best_model, name=cfg.algo), cfg, cfg.final_episodes,
                                                          FINAL_EVAL_SEED)}
            results.update(_baseline_results(cfg, cfg.final_episodes, FINAL_EVAL_SEED))
            final = {k: _est(v.summary()["return"]) for k, v in results.items()}
            rd.write_json("final_eval.json", final)
        _write_report(rd, cfg, algo_cfg, state, base, results)
        wall = time.perf_counter() - t_start
        log(f"== done in {wall:.0f} s: {rd.path / 'report.md'}")
        return TrainResult(run_dir=rd.path, timesteps=int(model.num_timesteps), best_mean_return=float(state["best"]),
                           final=final, wall_s=wall, first_beat_s=state["first_beat_s"])


def _train_dict(cfg: TrainConfig) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    d["baselines"] = list(cfg.baselines)
    return d


def _write_report(rd, cfg: TrainConfig, algo_cfg, state: dict, base: dict, results: dict) -> None:
    """report.md and learning_curve.png in the run directory."""
    import yaml

    from bundlerl.utils.atomic import write_text

    plot_learning_curve(state["rows"], base, rd.path / "learning_curve.png", title=f"{rd.path.name}")
    lines = [f"# Training report: {rd.path.name}", "",
             f"- algorithm: **{cfg.algo}**, preset **{cfg.preset}** ({cfg.action_mode} mode), seed {cfg.seed}",
             f"- network: {algo_cfg.network.extractor} extractor"
             + (" with per-candidate head" if algo_cfg.network.extractor == "set" and algo_cfg.network.candidate_head else ""),
             f"- timesteps: {state['rows'][-1]['timesteps'] if state['rows'] else 0}, training wall time "
             f"{(state['rows'][-1]['wall_s'] if state['rows'] else 0):.0f} s",
             f"- best periodic evaluation (eval seed {EVAL_SEED}, {cfg.eval_episodes} episodes): {state['best']:.3f}"]
    if state.get("first_beat_s") is not None:
        lines.append(f"- first beat the best baseline by 10% after {state['first_beat_s']:.0f} s "
                     f"({state['first_beat_t']} timesteps)")
    elif state.get("beat_target") is not None:
        lines.append(f"- never beat the best baseline by 10% (target {state['beat_target']:.3f})")
    lines += ["", "## Final evaluation", ""]
    if results:
        from bundlerl.evaluation.rollout import markdown_table

        lines += [f"Best model vs baselines on {cfg.final_episodes} fresh episodes (env seed {FINAL_EVAL_SEED}); "
                  "value ± 95% CI half-width.", "", markdown_table(results)]
    else:
        lines.append("(skipped: final_episodes = 0)")
    lines += ["## Baselines at the periodic-evaluation seed", "", "| baseline | mean return | 95% CI |", "|---|---|---|"]
    lines += [f"| {k} | {v['mean']:.3f} | [{v['low']:.3f}, {v['high']:.3f}] |" for k, v in base.items()]
    lines += ["", "## Learning curve", "", "![learning curve](learning_curve.png)", "",
              "## Configuration", "", "```yaml", yaml.safe_dump(rd.config(), sort_keys=False).strip(), "```", ""]
    write_text(rd.path / "report.md", "\n".join(lines))


def plot_learning_curve(rows: list[dict], baselines: dict, path: Path, title: str = "") -> None:
    """Evaluation mean return (95% CI band) against timesteps, baselines as horizontal lines; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bundlerl.utils.atomic import atomic_write

    fig, ax = plt.subplots(figsize=(7, 4))
    if rows:
        t = np.array([r["timesteps"] for r in rows])
        m = np.array([r["mean_return"] for r in rows])
        ax.plot(t, m, marker="o", label="agent (eval)")
        ax.fill_between(t, [r["ci_low"] for r in rows], [r["ci_high"] for r in rows], alpha=0.25)
        tr = np.array([r.get("train_return", np.nan) for r in rows], dtype=float)
        if np.isfinite(tr).any():
            ax.plot(t, tr, ls=":", color="gray", label="agent (training episodes)")
    for i, (name, v) in enumerate(baselines.items()):
        ax.axhline(v["mean"], ls="--", color=f"C{i + 1}", lw=1, label=name)
    ax.set_xlabel("timesteps")
    ax.set_ylabel("mean episode return")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
