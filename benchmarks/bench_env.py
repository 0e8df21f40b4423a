"""Environment speed: user-steps/s of the batched env with the full pipeline.

Full pipeline = shopper response + event log + candidate pools (rebuilt on click / purchase /
every ``refresh_every`` steps / new episode) + the observation. Random *valid* actions,
auto-reset on. Baseline in the same process: the same env rebuilding every user's candidates at
every step (``refresh_every=1``), i.e. without the pool cache.

    python benchmarks/bench_env.py                 # default preset, N = 1024
    python benchmarks/bench_env.py --preset small --num-envs 256 --steps 50 --repeats 3 --profile
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time

import numpy as np


def run(venv, steps: int, rng: np.random.Generator) -> float:
    """Seconds for ``steps`` batched steps with random valid actions (after one warm-up step)."""
    venv.reset()
    venv.step(np.argmax(rng.random(venv.action_masks().shape) * venv.action_masks(), axis=1))
    t0 = time.perf_counter()
    for _ in range(steps):
        m = venv.action_masks()
        venv.step(np.argmax(rng.random(m.shape) * m, axis=1))
    return time.perf_counter() - t0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--num-envs", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="print a cProfile summary of one run")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--refresh-every", type=int, default=None, help="override EnvConfig.refresh_every")
    ap.add_argument("--no-purchase-refresh", action="store_true", help="EnvConfig.refresh_on_purchase=False")
    args = ap.parse_args(argv)

    from bundlerl.env.config import get_config
    from bundlerl.env.vec_env import BundleRecVecEnv

    cfg = get_config(args.preset)
    if args.refresh_every is not None:
        cfg = cfg.replace(refresh_every=args.refresh_every)
    if args.no_purchase_refresh:
        cfg = cfg.replace(refresh_on_purchase=False)
    t0 = time.perf_counter()
    venv = BundleRecVecEnv(cfg, num_envs=args.num_envs, seed=0)
    print(f"world + env construction: {time.perf_counter() - t0:.2f} s "
          f"({venv.world.n_items} items, K={cfg.K}, K_max={cfg.K_max}, horizon={cfg.horizon})")
    rng = np.random.default_rng(0)
    N = args.num_envs
    times = [run(venv, args.steps, rng) for _ in range(args.repeats)]
    med = float(np.median(times))
    rate = N * args.steps / med
    print(f"cached pools : {rate:>12,.0f} user-steps/s  (median of {args.repeats}: "
          f"{med / args.steps * 1e3:.1f} ms per batched step of N={N}; runs {', '.join(f'{t:.2f}' for t in times)} s)")
    # share of rows rebuilt per step (the builder dominates the step cost)
    core = venv.core
    calls = {"rows": 0}
    real = core._refresh

    def counting(rows):
        calls["rows"] += len(rows)
        return real(rows)

    core._refresh = counting
    run(venv, args.steps, rng)
    core._refresh = real
    print(f"rows rebuilt per step: {calls['rows'] / (args.steps + 1) / N:.1%} of N "
          f"(refresh_every={cfg.refresh_every}, on_purchase={cfg.refresh_on_purchase}, on_click={cfg.refresh_on_click})")
    if not args.no_baseline:
        base_env = BundleRecVecEnv(cfg.replace(refresh_every=1), num_envs=N, seed=0)
        bt = [run(base_env, max(5, args.steps // 3), rng) for _ in range(args.repeats)]
        bmed = float(np.median(bt))
        brate = N * max(5, args.steps // 3) / bmed
        print(f"refresh every step (no pool cache): {brate:>12,.0f} user-steps/s; cache speed-up x{rate / brate:.2f}")
    if args.profile:
        pr = cProfile.Profile()
        pr.enable()
        run(venv, args.steps, rng)
        pr.disable()
        s = io.StringIO()
        pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(25)
        print(s.getvalue())


if __name__ == "__main__":
    main()
