"""Next-basket ranking on real Instacart orders (issue 18, section 4): each user's last order held out (users with at
least two orders, ``bundlerl.sim_data.splits.last_order_split``), Recall@10 / NDCG@10 with 95% CIs over users of
global popularity, the user's own most-bought items and the recommender side (candidate bundles from the user's
earlier orders ranked by observable policies, ``bundlerl.evaluation.next_basket``).

    python benchmarks/bench_next_basket.py                      # ../shared/data/instacart
    python benchmarks/bench_next_basket.py --instacart DIR --k 10 --tuned-budget 4x16x100
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instacart", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "instacart"))
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--tuned-budget", default="", help="also rank with tuned-linear fitted on 'default' (e.g. 4x16x100)")
    args = p.parse_args(argv)

    from bundlerl.agents.baselines import ComplementGreedyPolicy, PopularityPolicy, RelevanceGreedyPolicy
    from bundlerl.evaluation.next_basket import next_basket_evaluation
    from bundlerl.sim_data.loaders.instacart import load_instacart
    from bundlerl.sim_data.splits import last_order_split

    t = time.perf_counter()
    _, orders = load_instacart(args.instacart)
    split = last_order_split(orders)
    policies = {"complement-greedy": ComplementGreedyPolicy(), "relevance-greedy": RelevanceGreedyPolicy(),
                "popularity": PopularityPolicy()}
    if args.tuned_budget:
        from bundlerl.env.config import get_config
        from bundlerl.evaluation.tuning import CEMBudget, tuned_linear

        policies["tuned-linear"] = tuned_linear(get_config("default"), budget=CEMBudget.parse(args.tuned_budget))
    res = next_basket_evaluation(orders, policies, k=args.k, split=split)
    print(f"Instacart ({args.instacart}): {len(orders):,} orders, {len(split.heldout):,} users with >= 2 orders "
          f"(last order held out), {len(split.train):,} training orders; {time.perf_counter() - t:.1f} s\n")
    k = args.k
    print(f"| method | Recall@{k} (95% CI) | NDCG@{k} (95% CI) |\n|---|---|---|")
    for name, m in res.items():
        r, n = m[f"recall@{k}"], m[f"ndcg@{k}"]
        print(f"| {name} | {r.value:.3f} [{r.low:.3f}, {r.high:.3f}] | {n.value:.3f} [{n.low:.3f}, {n.high:.3f}] |")


if __name__ == "__main__":
    main()
