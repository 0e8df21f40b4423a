"""Headroom report: how much a policy could earn on a preset, and what each mechanism contributes.

Evaluates, on the same env seeds, the hand-set observable baselines (random, popularity,
relevance-greedy, complement-greedy), ``tuned-linear`` (greedy on a linear score of every observable
feature, weights from a cross-entropy fit on training streams: its cached fit, or a fit now with
``--tuned-budget``) and the two oracles that read simulator truth (one-step and lookahead), and prints
a markdown table (mean return, click rate, conversion, items / purchase, revenue, session length; each
with a 95% CI) and the ratios:

    lookahead oracle / one-step oracle  (property H: target >= 1.15)
    one-step oracle / best hand-set baseline  (property H compares with the hand-set baselines only: > 1)
    lookahead oracle / best observable baseline, tuned-linear included  (issue 17's first milestone:
        the observable headroom, target >= 1.25)
    best observable baseline / random  (> 1)

Ratios of means come with a 95% CI from the delta method on independent episode samples.
With ``--ablations`` the same is repeated with complement activation, fatigue and the budget
switched off one at a time (``ShopperParams.activation / fatigue / budget``); tuned-linear is fitted
again on every variant (cached by content).

    python benchmarks/bench_headroom.py                            # default preset, 2,000 episodes each
    python benchmarks/bench_headroom.py --ablations --ablation-episodes 500   # the recorded run
    python benchmarks/bench_headroom.py --episodes 300 --ablations --tuned-budget 4x12x100   # screening
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np


def ratio(a, b) -> str:
    """'r [lo, hi]': ratio of mean returns of two independent samples with its 95% CI."""
    from bundlerl.evaluation.stats import mean_ratio_ci

    e = mean_ratio_ci(a, b)
    return f"{e.value:.3f} [{e.low:.3f}, {e.high:.3f}]"


def run_config(config, episodes: int, lookahead_episodes: int, seed: int, num_envs: int, lookahead_kw: dict, progress: bool,
               tuned_budget=None):
    """Evaluate every policy on ``config``; returns {label: EvalResult} and {label: seconds} (the fit of tuned-linear,
    when not cached, counts in its seconds). ``tuned_budget`` None leaves tuned-linear out."""
    from bundlerl.agents.baselines import BASELINES, make_baseline
    from bundlerl.agents.oracles import LookaheadOracle, OneStepOracle
    from bundlerl.agents.tuned_linear import TUNED_LINEAR
    from bundlerl.evaluation.rollout import evaluate
    from bundlerl.evaluation.tuning import tuned_linear

    results, secs = {}, {}
    todo = [(b, lambda v, b=b: make_baseline(b, np.random.default_rng(seed)), episodes) for b in BASELINES]
    if tuned_budget is not None:
        todo.append((TUNED_LINEAR, lambda v: tuned_linear(config, budget=tuned_budget, progress=progress), episodes))
    todo += [(OneStepOracle.name, OneStepOracle, episodes),
             (LookaheadOracle.name, lambda v: LookaheadOracle(v, seed=seed, **lookahead_kw), lookahead_episodes)]
    for label, factory, n in todo:
        t = time.perf_counter()
        results[label] = evaluate(factory, config, n_episodes=n, seed=seed, num_envs=num_envs, progress=progress, keep_log=False)
        secs[label] = time.perf_counter() - t
    return results, secs


def best_baseline(results: dict, hand_set_only: bool = False) -> str:
    """Name of the observable policy with the highest mean return: among the hand-set baselines and tuned-linear
    (when evaluated), or the hand-set baselines only (property H's comparison)."""
    from bundlerl.agents.baselines import BASELINES
    from bundlerl.agents.tuned_linear import OBSERVABLE_POLICIES

    names = BASELINES if hand_set_only else [b for b in OBSERVABLE_POLICIES if b in results]
    return max(names, key=lambda b: results[b].returns.mean())


def report(title: str, results: dict, secs: dict) -> str:
    from bundlerl.evaluation.report import markdown_table

    best, hand = best_baseline(results), best_baseline(results, hand_set_only=True)
    la, one, rnd = (results[k].returns for k in ("oracle-lookahead", "oracle-one-step", "random"))
    lines = [f"### {title}", "", markdown_table(results),
             f"- lookahead / one-step oracle (H, >= 1.15): {ratio(la, one)}",
             f"- one-step oracle / best hand-set baseline ({hand}; H compares with the hand-set baselines only): "
             f"{ratio(one, results[hand].returns)}",
             f"- lookahead oracle / best observable baseline ({best}; the observable headroom, >= 1.25): "
             f"{ratio(la, results[best].returns)}",
             f"- best observable baseline / random: {ratio(results[best].returns, rnd)}",
             "- seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in secs.items()), ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--episodes", type=int, default=2000, help="episodes per policy (default 2000)")
    ap.add_argument("--lookahead-episodes", type=int, default=None, help="episodes for the lookahead oracle (default: --episodes)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num-envs", type=int, default=256)
    ap.add_argument("--rollouts", type=int, default=None, help="lookahead: simulated futures per candidate (default: the oracle's)")
    ap.add_argument("--depth", type=int, default=None, help="lookahead: steps per simulated future (default: the oracle's)")
    ap.add_argument("--top-m", type=int, default=None, help="lookahead: candidates planned per step (default: the oracle's)")
    ap.add_argument("--ablations", action="store_true", help="also run with activation / fatigue / budget off")
    ap.add_argument("--ablation-episodes", type=int, default=None, help="episodes per policy in the ablations (default: --episodes)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="override a field of the preset's EnvConfig, e.g. --set shopper.tau_c=2.5 (repeatable)")
    ap.add_argument("--tuned-budget", default="12x24x200",
                    help="tuned-linear's search budget ROUNDSxCANDIDATESxEPISODES (default: the recorded 12x24x200; "
                         "its fit is cached); 'none' leaves tuned-linear out")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    from bundlerl.evaluation.stats import EvaluationError
    from bundlerl.evaluation.tuning import CEMBudget

    try:
        tuned_budget = None if args.tuned_budget == "none" else CEMBudget.parse(args.tuned_budget)
    except EvaluationError as err:
        ap.error(str(err))
    from bundlerl.env.config import ConfigError, env_config_overrides, get_config

    config = get_config(args.preset)
    if args.set:
        try:
            config = env_config_overrides(config, args.set)
        except ConfigError as err:
            ap.error(str(err))
        print(f"overrides: {args.set}")
    kw = {k: v for k, v in dict(n_rollouts=args.rollouts, depth=args.depth, top_m=args.top_m).items() if v is not None}
    la_eps = args.lookahead_episodes or args.episodes
    variants = [("full model", {})]
    if args.ablations:
        variants += [("activation off", {"activation": False}), ("fatigue off", {"fatigue": False}), ("budget off", {"budget": False})]
    print(f"preset {config.name}: K={config.K}, K_max={config.K_max}, horizon {config.horizon}, reward {config.reward}; "
          f"{args.episodes} episodes per policy ({la_eps} for the lookahead oracle: {kw}), seed {args.seed}\n", flush=True)
    summary = []
    for title, change in variants:
        cfg = dataclasses.replace(config, shopper=config.shopper_params().replace(**change)) if change else config
        n_eps = args.episodes if not change else (args.ablation_episodes or args.episodes)
        results, secs = run_config(cfg, n_eps, min(la_eps, n_eps), args.seed, args.num_envs, kw, not args.no_progress,
                                   tuned_budget)
        print(report(f"{config.name}: {title}", results, secs), flush=True)
        best, hand = best_baseline(results), best_baseline(results, hand_set_only=True)
        summary.append((title, *(results[k].returns.mean() for k in ("oracle-lookahead", "oracle-one-step", hand, best,
                                                                      "random")), hand, best))
    if len(summary) > 1:
        print("### Ablation summary (mean return)\n")
        print("| variant | lookahead oracle | one-step oracle | best hand-set | best observable | random | "
              "lookahead / one-step | one-step / best hand-set | lookahead / best observable |")
        print("|---|---|---|---|---|---|---|---|---|")
        for title, la, one, hand, best, rnd, hname, bname in summary:
            print(f"| {title} | {la:.3f} | {one:.3f} | {hand:.3f} ({hname}) | {best:.3f} ({bname}) | {rnd:.3f} | "
                  f"{la / one:.3f} | {one / hand:.3f} | {la / best:.3f} |")


if __name__ == "__main__":
    main()
