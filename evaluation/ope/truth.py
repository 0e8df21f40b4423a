"""The per-trajectory ground truth of off-policy validation: a target's on-policy mean return over fresh episodes,
computed once per (world, target, episodes, stream) and cached on disk by content.

Why cached: the truth needs >= 10,000 on-policy episodes per target (minutes each on the default world), and does not
depend on any log, so a validation run with hundreds of logging repeats needs each target's truth once, and a rerun
(more repeats, another logger) none. The key (:func:`truth_key`) is the world's identity
(``bundlerl.evaluation.world_identity``), the caller's ``identity`` of the target (what makes its behaviour: e.g. the
hash of its model file and its mode), the episode count, the seed stream and :data:`TRUTH_VERSION`. A damaged entry is
a warned miss, recomputed and rewritten; writes are atomic (``bundlerl.utils.atomic``).

The episodes come from the ``EVALUATE`` purpose (``bundlerl.evaluation.seeds``), disjoint by construction from the
``LOGGING`` stream the logs are drawn from.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bundlerl.agents.policy import Policy
from bundlerl.evaluation.ope.estimators import OPEError
from bundlerl.evaluation.world_identity import content_key, world_identity
from bundlerl.utils.atomic import write_text
from bundlerl.utils.cache import cache_root

__all__ = ["TRUTH_VERSION", "TrajectoryTruth", "truth_key", "truth_path", "trajectory_truth"]

TRUTH_VERSION = 1
"""Version of how a truth is computed (rollout settings); a change makes every cached truth another entry."""

TRUTH_SEED = 18
"""Default seed of the ``EVALUATE`` stream the truths are rolled out on (bench_ope's recorded runs)."""


@dataclass(frozen=True)
class TrajectoryTruth:
    """A target's on-policy mean return ``mean`` over ``episodes`` episodes, with its standard error ``se`` (the
    returns' sample standard deviation / sqrt(episodes)); ``seconds`` the rollout time when computed (0 from cache
    is not implied: the value stored is the original computation's)."""

    mean: float
    se: float
    episodes: int
    seconds: float = 0.0


def truth_key(world, identity: str, episodes: int, seed: int = TRUTH_SEED) -> str:
    """Content key of a truth: the world's identity, the target's ``identity``, ``episodes``, ``seed`` and
    :data:`TRUTH_VERSION`."""
    return content_key({"truth": TRUTH_VERSION, **world_identity(world), "policy": str(identity),
                        "episodes": int(episodes), "seed": int(seed)})


def truth_path(key: str) -> Path:
    """``<cache root>/ope_truth/<key>.json``."""
    return cache_root() / "ope_truth" / f"{key}.json"


def trajectory_truth(policy: Policy, world, *, identity: str, episodes: int = 10_000, seed: int = TRUTH_SEED,
                     num_envs: int = 256, cache: bool = True) -> TrajectoryTruth:
    """``policy``'s on-policy mean return on ``world`` over ``episodes`` episodes of the ``EVALUATE`` stream of
    ``seed`` (actions sampled from its distribution), from the cache when present.

    :param identity: names the target's behaviour exactly (e.g. ``"ppo:greedy sha256:<model file>"``): two targets
        with the same identity and world share one cached truth, so it must change whenever the policy does.
    :param cache: read and write the on-disk cache (False: always roll out).
    :raises OPEError: ``episodes`` < 2 or an empty ``identity``.
    """
    import time

    from bundlerl.evaluation.rollout import evaluate
    from bundlerl.evaluation.seeds import Purpose, env_stream

    if int(episodes) < 2 or not str(identity):
        raise OPEError(f"episodes={episodes} must be >= 2 and identity={identity!r} non-empty (it keys the cache)")
    path = truth_path(truth_key(world, identity, episodes, seed))
    if cache and path.is_file():
        try:
            got = TrajectoryTruth(**json.loads(path.read_text()))
            if got.episodes == int(episodes) and np.isfinite(got.mean) and np.isfinite(got.se):
                return got
            raise ValueError("fields out of range")
        except (ValueError, TypeError, OSError) as err:
            warnings.warn(f"trajectory truth cache entry {path} is unreadable ({err}); computing it again",
                          RuntimeWarning, stacklevel=2)
    t = time.perf_counter()
    res = evaluate(policy, world, n_episodes=int(episodes), seed=env_stream(Purpose.EVALUATE, int(seed)),
                   num_envs=num_envs, deterministic=False, keep_log=False, progress=False)
    ret = np.asarray(res.returns, np.float64)
    out = TrajectoryTruth(float(ret.mean()), float(ret.std(ddof=1) / np.sqrt(ret.size)), int(ret.size),
                          round(time.perf_counter() - t, 2))
    if cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text(path, json.dumps(asdict(out)))
        except OSError as err:  # a read-only cache: the truth is still usable
            warnings.warn(f"could not write trajectory truth cache entry {path} ({err})", RuntimeWarning,
                          stacklevel=2)
    return out
