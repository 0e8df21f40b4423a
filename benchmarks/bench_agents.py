"""Agents benchmark (issue 5 §3): PPO / DQN trained under a wall-time budget vs baselines and oracles.

For every (algo, extractor, seed): ``bundlerl.experiment.training.train`` with ``max_wall_s = minutes * 60``
(periodic evaluation on a fixed eval seed records when the agent first beats the best observable
baseline by 10%), then the best model, the observable baselines and the oracles (one-step,
lookahead; they read simulator truth) are evaluated on the same fresh episodes. Printed and written
(markdown + JSON) per run and aggregated over seeds:

- mean return with 95% CI; ratio to the best observable baseline (the hand-set ones and tuned-linear, its cached
  fit at ``--tuned-budget``); "beats by >= 10% with CIs apart"
  (agent mean >= 1.1 x baseline mean and agent CI low > baseline CI high);
- share of the gap to the lookahead oracle closed: (agent - best baseline) / (lookahead - best baseline);
- training wall time (and timesteps) to first beat the best baseline by 10%.

    python benchmarks/bench_agents.py --algos ppo,dqn --seeds 0,1,2 --minutes 30            # the full run (~3 h)
    python benchmarks/bench_agents.py --algos ppo --seeds 0 --minutes 5 --extractors set,mlp  # a short run
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def _parse(argv=None):
    from bundlerl.agents.config import ALGOS, EXTRACTORS
    from bundlerl.agents.oracles import ORACLES, oracle_name
    from bundlerl.scripts.flags import names_type

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algos", default="ppo,dqn", type=names_type(ALGOS, "algorithm"),
                   help=f"comma-separated: {', '.join(ALGOS)} (default: ppo,dqn)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds (default: 0,1,2)")
    p.add_argument("--minutes", type=float, default=30.0, help="training wall-time budget per run (default: 30)")
    p.add_argument("--extractors", default="set", type=names_type(EXTRACTORS, "extractor"),
                   help=f"comma-separated networks: {', '.join(EXTRACTORS)} (default: set)")
    p.add_argument("--preset", default="default", help="env preset (default: default)")
    p.add_argument("--episodes", type=int, default=1000, help="final evaluation episodes per policy (default: 1000)")
    p.add_argument("--eval-episodes", type=int, default=200, help="episodes of each periodic evaluation (default: 200)")
    p.add_argument("--eval-every-s", type=float, default=60.0,
                   help="aim for a periodic evaluation about this often (sets eval_freq from a speed probe; default 60)")
    p.add_argument("--oracles", default="all", type=names_type(ORACLES, "oracle", oracle_name),
                   help=f"comma-separated oracles ({', '.join(ORACLES)}), 'all' or 'none' (default: all)")
    p.add_argument("--tuned-budget", default="12x24x200",
                   help="tuned-linear's search budget ROUNDSxCANDIDATESxEPISODES (cached fit; default: 12x24x200)")
    p.add_argument("--out", default="benchmarks/results/agents", help="output folder (default: benchmarks/results/agents)")
    p.add_argument("--micro", action="store_true",
                   help="only the network micro-benchmark (no env needed): policy forward+backward time, set vs mlp")
    return p.parse_args(argv)


def micro(repeats: int = 7, batch: int = 512) -> str:
    """Median time of a PPO policy's evaluate_actions (forward + backward) on a default-preset-shaped batch."""
    import dataclasses

    import torch as th
    from gymnasium import spaces
    from stable_baselines3.common.policies import MultiInputActorCriticPolicy

    from bundlerl.agents.config import NetworkConfig, load_algo_config
    from bundlerl.agents.sb3 import policy_kwargs_for
    from bundlerl.env.observation import MASK_KEY, observation_space

    P, K, F = 32, 16, 9
    th.set_num_threads(1)
    space = observation_space(P, K, F)
    rng = np.random.default_rng(0)
    obs = {k: th.as_tensor(rng.uniform(0, 1, (batch,) + sp.shape).astype(np.float32)) for k, sp in space.spaces.items()}
    obs[MASK_KEY] = (obs[MASK_KEY] > 0.3).float()
    actions = th.as_tensor(rng.integers(K, size=batch))
    out = [f"network micro-benchmark: PPO evaluate_actions + backward, batch {batch}, P={P} K={K} F={F}, "
           f"median of {repeats} after 3 warm-up calls, 1 torch thread"]
    base = None
    for ext in ("mlp", "set"):
        net = load_algo_config("ppo", "default").network
        cls, kw = policy_kwargs_for("ppo", NetworkConfig(**{**dataclasses.asdict(net), "extractor": ext}))
        cls = MultiInputActorCriticPolicy if cls == "MultiInputPolicy" else cls
        pol = cls(space, spaces.Discrete(K), lambda _: 3e-4, **kw)
        n_par = sum(p.numel() for p in pol.parameters())
        ts = []
        for i in range(repeats + 3):
            t = time.perf_counter()
            v, lp, ent = pol.evaluate_actions(obs, actions)
            (v.sum() + lp.sum() + ent.sum()).backward()
            if i >= 3:
                ts.append(time.perf_counter() - t)
        med = float(np.median(ts))
        base = base or med
        out.append(f"  {ext:>3}: {1e3 * med:7.2f} ms  ({med / base:.2f}x mlp), {n_par} parameters")
    return "\n".join(out)


def _steps_per_s(preset: str, algo: str, extractor: str) -> float:
    """Training speed probe: timesteps per second of a short learn() (includes SB3 updates)."""
    from bundlerl.agents.sb3 import make_model
    from bundlerl.env.vec_env import BundleRecVecEnv
    from bundlerl.experiment.training import TrainConfig

    cfg = TrainConfig(algo=algo, preset=preset, extractor=extractor).algo_config()
    venv = BundleRecVecEnv(preset, num_envs=cfg.num_envs, seed=999)
    model = make_model(algo, venv, cfg, seed=0)
    n = cfg.num_envs * (cfg.n_steps if hasattr(cfg, "n_steps") else 64)
    t = time.perf_counter()
    model.learn(n)
    return n / (time.perf_counter() - t)


def main(argv=None) -> int:
    args = _parse(argv)
    if args.micro:
        print(micro())
        return 0
    from bundlerl.agents.oracles import ORACLES
    from bundlerl.agents.tuned_linear import OBSERVABLE_POLICIES as BASELINES  # hand-set baselines and tuned-linear
    from bundlerl.evaluation.report import policy_label
    from bundlerl.evaluation.tuning import CEMBudget
    from bundlerl.experiment.evaluate import evaluate_runs
    from bundlerl.experiment.training import TrainConfig, train
    from bundlerl.utils.atomic import write_text

    algos, extractors, oracles = args.algos, args.extractors, args.oracles
    seeds = [int(s) for s in args.seeds.split(",") if s]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    budget = args.minutes * 60
    t_all = time.perf_counter()
    runs: list[dict] = []
    for algo in algos:
        for ext in extractors:
            sps = _steps_per_s(args.preset, algo, ext)
            eval_freq = max(int(sps * args.eval_every_s), 1)
            print(f"== {algo}/{ext}: ~{sps:.0f} steps/s while learning; eval every {eval_freq} steps", flush=True)
            for seed in seeds:
                cfg = TrainConfig(algo=algo, preset=args.preset, timesteps=10**9, seed=seed, extractor=ext,
                                  eval_freq=eval_freq, eval_episodes=args.eval_episodes, final_episodes=0,
                                  max_wall_s=budget)
                res = train(cfg, out=out / "runs")
                runs.append({"algo": algo, "extractor": ext, "seed": seed, "run_dir": str(res.run_dir),
                             "timesteps": res.timesteps, "train_wall_s": res.wall_s,
                             "first_beat_s": res.first_beat_s})
    # One evaluation per run (same episodes for everything), baselines and oracles once.
    print("== final evaluation", flush=True)
    base = evaluate_runs([], baselines=BASELINES, oracles=oracles, preset=args.preset, episodes=args.episodes,
                         seed=7, out=out / "eval_reference", progress=False,
                         tuned_budget=CEMBudget.parse(args.tuned_budget))["table"]
    best_name = max(BASELINES, key=lambda b: base[b]["return"].value)
    best = base[best_name]["return"]
    look = base.get("oracle-lookahead", {}).get("return")
    for r in runs:
        est = evaluate_runs([r["run_dir"]], preset=args.preset, episodes=args.episodes, seed=7,
                            out=Path(r["run_dir"]) / "bench_eval", progress=False)["table"]
        e = next(iter(est.values()))["return"]
        r.update(mean=e.value, low=e.low, high=e.high, ratio=e.value / best.value if best.value else float("nan"),
                 beats_10pct_ci_apart=bool(e.value >= 1.1 * best.value and e.low > best.high),
                 gap_closed=((e.value - best.value) / (look.value - best.value)) if look is not None
                 and look.value != best.value else None)
    lines = [f"# Agents benchmark: preset {args.preset}, {args.minutes:g} min per run, {args.episodes} eval episodes",
             "", "| policy | mean return (95% CI) | ratio to best baseline |", "|---|---|---|"]
    for name, est in base.items():
        e = est["return"]
        lab = policy_label(name, name in ORACLES)
        lines.append(f"| {lab} | {e.value:.3f} [{e.low:.3f}, {e.high:.3f}] | {e.value / best.value:.3f} |")
    lines += ["", f"best observable baseline: **{best_name}** ({best.value:.3f})", "",
              "| algo | network | seed | timesteps | mean return (95% CI) | ratio | >=10% & CIs apart | gap to lookahead closed | first beat +10% (s) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        gap = "n/a" if r["gap_closed"] is None else f"{100 * r['gap_closed']:.0f}%"
        fb = "never" if r["first_beat_s"] is None else f"{r['first_beat_s']:.0f}"
        lines.append(f"| {r['algo']} | {r['extractor']} | {r['seed']} | {r['timesteps']} | {r['mean']:.3f} "
                     f"[{r['low']:.3f}, {r['high']:.3f}] | {r['ratio']:.3f} | {'yes' if r['beats_10pct_ci_apart'] else 'no'} "
                     f"| {gap} | {fb} |")
    lines += ["", "Across seeds (mean ± sd of per-seed mean returns):", ""]
    for algo in algos:
        for ext in extractors:
            ms = [r["mean"] for r in runs if r["algo"] == algo and r["extractor"] == ext]
            lines.append(f"- {algo}/{ext}: {np.mean(ms):.3f} ± {np.std(ms, ddof=1) if len(ms) > 1 else 0:.3f} "
                         f"(ratio {np.mean(ms) / best.value:.3f}, {len(ms)} seeds)")
    lines.append(f"\ntotal wall time {time.perf_counter() - t_all:.0f} s")
    text = "\n".join(lines) + "\n"
    print(text)
    write_text(out / "results.md", text)
    write_text(out / "results.json", json.dumps({"runs": runs, "best_baseline": best_name}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
