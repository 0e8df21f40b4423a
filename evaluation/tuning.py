"""The cross-entropy fit of ``tuned-linear`` (:mod:`bundlerl.agents.tuned_linear`), on training streams, cached.

Search (the cross-entropy method, diagonal Gaussian over the weights): each round draws ``candidates`` weight
vectors (the first is the current mean), plays each on the same ``episodes`` shoppers (common random numbers: every
candidate meets the same shoppers and the same response draws, so differences between candidates are not sampling
noise), keeps the ``elite`` best by mean return, and moves the mean and standard deviation to theirs. It starts
from complement-greedy's hand-set weights. Every candidate of a round is one row block of one batched env, so a
round costs about as much as one evaluation of ``candidates x episodes`` episodes.

Episodes: round r plays the ``TUNE`` stream of ``bundlerl.evaluation.seeds`` with segment r: never an episode of
``bundlerl evaluate``, of a run's periodic or final evaluation, or of training (other purposes), whatever the seeds.

Budget (:class:`CEMBudget`): the recorded one is 12 rounds x 24 candidates x 200 episodes (57,600 episodes); a
fit is cached on disk by content (:func:`cache_key`: the world's config and data files, the budget, the seed, the
features, :data:`TUNING_VERSION` and the shopper model's version), so quickstart, ``bundlerl evaluate`` and the
benchmarks reuse fits. A damaged cache entry is a warned miss (refit, rewritten atomically).
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from bundlerl.agents.policy import PolicyError
from bundlerl.agents.tuned_linear import DEFAULT_INTERACTIONS, TunedLinearPolicy, feature_names
from bundlerl.evaluation.seeds import Purpose, env_stream, row_generator
from bundlerl.evaluation.stats import EvaluationError
from bundlerl.utils.cache import cache_root
from bundlerl.utils.progress import progress_bar, progress_enabled

__all__ = ["CEMBudget", "RECORDED_BUDGET", "TUNING_VERSION", "tuning_streams", "cache_key", "cache_path",
           "fit_tuned_linear", "tuned_linear", "rollout_returns", "cem_search"]

TUNING_VERSION = 1
"""Version of the search and of the cached files' meaning: bump it when the search or the features change."""

_BUDGET_RE = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*x\s*(\d+)\s*$")


@dataclass(frozen=True)
class CEMBudget:
    """How much search a fit gets (all >= 1; ``elite`` <= ``candidates``)."""

    rounds: int = 12
    """Rounds of the cross-entropy method."""
    candidates: int = 24
    """Weight vectors per round (the first is the current mean)."""
    episodes: int = 200
    """Episodes each candidate plays per round (the same shoppers for every candidate of the round)."""
    elite: int = 6
    """Best candidates the next round's distribution is fitted to."""
    init_std: float = 1.0
    """Initial standard deviation of every weight."""
    min_std: float = 0.05
    """Floor on every weight's standard deviation (keeps the search from collapsing on noise)."""

    def __post_init__(self) -> None:
        for name in ("rounds", "candidates", "episodes", "elite"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise EvaluationError(f"CEMBudget.{name}={v!r}; it must be an integer >= 1")
        if self.elite > self.candidates:
            raise EvaluationError(f"CEMBudget.elite={self.elite} > candidates={self.candidates}; lower it")
        for name in ("init_std", "min_std"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
                raise EvaluationError(f"CEMBudget.{name}={v!r}; it must be a finite number >= 0")

    @property
    def label(self) -> str:
        """``"12x24x200"``: rounds x candidates x episodes."""
        return f"{self.rounds}x{self.candidates}x{self.episodes}"

    @property
    def total_episodes(self) -> int:
        return self.rounds * self.candidates * self.episodes

    @classmethod
    def parse(cls, text: str) -> "CEMBudget":
        """``"ROUNDSxCANDIDATESxEPISODES"`` (e.g. ``"12x24x200"``); the elite is a quarter of the candidates (>= 1).

        :raises EvaluationError: another form, or values out of range.
        """
        m = _BUDGET_RE.match(str(text))
        if not m:
            raise EvaluationError(f"budget {text!r}; write ROUNDSxCANDIDATESxEPISODES, e.g. 12x24x200")
        r, c, e = (int(g) for g in m.groups())
        return cls(rounds=r, candidates=c, episodes=e, elite=max(1, c // 4))


RECORDED_BUDGET = CEMBudget()
"""The budget of recorded figures and of a fit that ``bundlerl evaluate`` makes: 12 x 24 x 200."""


def tuning_streams(seed: int, rounds: int) -> list[np.random.SeedSequence]:
    """The env streams a fit with ``seed`` plays, one per round: ``TUNE`` purpose, segment = round."""
    return [env_stream(Purpose.TUNE, seed, r) for r in range(rounds)]


# ---------------------------------------------------------------------- rollouts
def rollout_returns(world, weights: np.ndarray, episodes: int, stream: np.random.SeedSequence,
                    interactions: Sequence[str] = DEFAULT_INTERACTIONS, chunk_rows: int = 2400) -> np.ndarray:
    """(C, episodes) float64 returns of C weight vectors ``weights`` (C, D), each playing one episode per shopper of
    ``stream``'s first ``episodes`` rows (common random numbers: candidate c's episode j and candidate c''s episode
    j meet the same shopper and the same response draws).

    Rows are batched ``chunk_rows`` at a time (a whole number of candidates per batch when possible).
    """
    from bundlerl.env.vec_env import BundleRecVecEnv

    w = np.asarray(weights, dtype=np.float64)
    C = w.shape[0]
    per = max(1, chunk_rows // episodes)  # candidates per batch
    out = np.zeros((C, episodes))
    for lo in range(0, C, per):
        cs = np.arange(lo, min(C, lo + per))
        n = cs.size * episodes
        venv = BundleRecVecEnv(world, num_envs=n, seed=stream)
        try:
            venv.core.seed_rows(np.arange(n), [row_generator(stream, j) for _ in cs for j in range(episodes)])
            pol = TunedLinearPolicy.per_row(np.repeat(w[cs], episodes, axis=0), interactions)
            obs = venv.reset()
            ret, live = np.zeros(n), np.ones(n, bool)
            while live.any():
                actions, _ = pol.act(obs)
                obs, rewards, dones, _ = venv.step(actions)
                ret += np.where(live, rewards, 0.0)
                live &= ~dones
        finally:
            venv.close()
        out[cs] = ret.reshape(cs.size, episodes)
    return out


def cem_search(score: Callable[[np.ndarray, int], np.ndarray], mean0: np.ndarray, budget: CEMBudget,
               rng: np.random.Generator, on_round: Callable[[int, dict], None] | None = None):
    """The cross-entropy method: maximise ``score`` over weight vectors.

    :param score: ``score(W, round) -> (C,)`` mean return of the C candidates W (C, D) in round ``round``.
    :param mean0: (D,) initial mean.
    :returns: (final mean (D,), history: a dict per round with the mean candidate's, the best and the elite's scores).
    """
    mean = np.asarray(mean0, dtype=np.float64).copy()
    std = np.full(mean.shape, float(budget.init_std))
    history = []
    for r in range(budget.rounds):
        W = mean + std * rng.standard_normal((budget.candidates, mean.size))
        W[0] = mean
        s = np.asarray(score(W, r), dtype=np.float64)
        elite = np.argsort(-s, kind="stable")[: budget.elite]
        mean = W[elite].mean(0)
        std = np.maximum(W[elite].std(0), budget.min_std)
        rec = {"round": r, "mean_candidate": float(s[0]), "best": float(s[elite[0]]), "elite": float(s[elite].mean())}
        history.append(rec)
        if on_round is not None:
            on_round(r, rec)
    return mean, history


def _initial_weights(interactions: Sequence[str]) -> np.ndarray:
    """complement-greedy's hand-set weights on the candidate features, 0 on the interactions."""
    from bundlerl.agents.baselines import ComplementGreedyPolicy

    names = feature_names(interactions)
    hand = ComplementGreedyPolicy().weights
    return np.array([hand.get(n, 0.0) for n in names], dtype=np.float64)


def fit_tuned_linear(world, budget: CEMBudget = RECORDED_BUDGET, seed: int = 0,
                     interactions: Sequence[str] = DEFAULT_INTERACTIONS, progress: bool | None = None) -> TunedLinearPolicy:
    """Fit the weights of ``tuned-linear`` on ``world`` by the cross-entropy method (no cache: see :func:`tuned_linear`).

    :param world: preset name or EnvConfig. :param budget: the search budget. :param seed: the ``TUNE`` streams' seed
        and the search's own generator. :returns: the policy; its ``info`` records world, budget, seed and history.
    """
    from bundlerl.env import get_config

    config = get_config(world)
    streams = tuning_streams(seed, budget.rounds)
    bar = progress_bar(budget.total_episodes, f"fitting tuned-linear on '{config.name}' ({budget.label})", unit="ep",
                       show=progress_enabled(progress))

    def score(W, r):
        s = rollout_returns(config, W, budget.episodes, streams[r], interactions).mean(1)
        bar.update(W.shape[0] * budget.episodes)
        return s

    def on_round(r, rec):
        bar.set_postfix(round=r + 1, mean=f"{rec['mean_candidate']:.3f}", best=f"{rec['best']:.3f}")

    rng = np.random.default_rng([int(seed), 0xCE1])
    try:
        mean, history = cem_search(score, _initial_weights(interactions), budget, rng, on_round)
    finally:
        bar.close()
    info = {"world": config.name, "budget": dataclasses.asdict(budget), "seed": int(seed),
            "streams": f"TUNE purpose, seed {int(seed)}, segments 0..{budget.rounds - 1}", "history": history,
            "tuning_version": TUNING_VERSION}
    return TunedLinearPolicy(mean, interactions, info)


# ---------------------------------------------------------------------- cache
def cache_key(world, budget: CEMBudget = RECORDED_BUDGET, seed: int = 0,
              interactions: Sequence[str] = DEFAULT_INTERACTIONS) -> str:
    """Content hash of a fit: the world's config (every field but its name) and data files, the budget, the seed,
    the features, :data:`TUNING_VERSION`, the shopper model's version, and the versions of what the world's
    candidates and observations are computed by (observation spec, complementarity and learned-completion fits):
    weights fitted on other candidates or feature columns are another fit, not a cache hit."""
    from bundlerl.evaluation.world_identity import content_key, world_identity

    return content_key({"tuning": TUNING_VERSION, **world_identity(world), "budget": dataclasses.asdict(budget),
                        "seed": int(seed), "features": list(feature_names(interactions))})


def cache_path(key: str) -> Path:
    """``<cache root>/tuned_linear/<key>.json``."""
    return cache_root() / "tuned_linear" / f"{key}.json"


def tuned_linear(world, *, weights: str | Path | None = None, budget: CEMBudget = RECORDED_BUDGET, seed: int = 0,
                 interactions: Sequence[str] = DEFAULT_INTERACTIONS, progress: bool | None = None,
                 log: Callable[[str], None] | None = None) -> TunedLinearPolicy:
    """``tuned-linear`` for ``world``: loaded from ``weights`` (a JSON path) when given, else the cached fit of
    (world, budget, seed, features), else fitted now (:func:`fit_tuned_linear`) and cached.

    :raises PolicyError: an unreadable ``weights`` file (the message names it).
    """
    if weights is not None:
        return TunedLinearPolicy.load(weights)
    path = cache_path(cache_key(world, budget, seed, interactions))
    if path.is_file():
        try:
            pol = TunedLinearPolicy.load(path)
            if log:
                log(f"tuned-linear: cached fit {path} (budget {budget.label}, seed {seed})")
            return pol
        except PolicyError as err:
            warnings.warn(f"tuned-linear cache entry {path} is unreadable ({err}); fitting again", RuntimeWarning,
                          stacklevel=2)
    if log:
        log(f"tuned-linear: fitting on training streams, budget {budget.label} (rounds x candidates x episodes), "
            f"seed {seed}; cached in {path}")
    pol = fit_tuned_linear(world, budget, seed, interactions, progress)
    try:
        pol.save(path)
    except OSError as err:  # a read-only cache: the fit is still usable
        warnings.warn(f"could not write tuned-linear cache entry {path} ({err})", RuntimeWarning, stacklevel=2)
    return pol
