"""Observable baselines: they read only the observation (the candidates' features and the mask).

None of them touches the simulator: they see the ``candidates`` (N, K, F) block, whose columns
follow ``bundlerl.candidates.types.CANDIDATE_FEATURES``, and the ``action_mask``. They are the bar a
learned policy must clear; oracles (``bundlerl.agents.oracles``) are the labelled exception that reads truth.
"""

from __future__ import annotations

import numpy as np

from bundlerl.agents.policy import (
    Observation,
    Policy,
    PolicyError,
    batch_size_of,
    check_name,
    greedy_probabilities,
    uniform_valid,
)
from bundlerl.candidates.features import CANDIDATE_FEATURES, COL
from bundlerl.env.observation import CANDIDATES_KEY, MASK_KEY
from bundlerl.utils.args import shown

__all__ = [
    "RandomPolicy", "PopularityPolicy", "RelevanceGreedyPolicy", "ComplementGreedyPolicy", "BASELINES",
    "make_baseline", "candidate_features",
]

def candidate_features(obs: Observation) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, F) candidate features and (N, K) mask of a batched observation; PolicyError if malformed."""
    n = batch_size_of(obs)
    try:
        feats = np.asarray(obs[CANDIDATES_KEY], dtype=np.float64)
    except KeyError:
        raise PolicyError(f"observation has no {CANDIDATES_KEY!r} key; got keys {sorted(obs)}") from None
    mask = np.asarray(obs[MASK_KEY])
    if feats.ndim != 3 or feats.shape[:2] != mask.shape or feats.shape[2] != len(CANDIDATE_FEATURES):
        raise PolicyError(
            f"{CANDIDATES_KEY} has shape {feats.shape}; expected (N={n}, K={mask.shape[1]}, F={len(CANDIDATE_FEATURES)})"
        )
    return feats, mask > 0


class RandomPolicy(Policy):
    """Uniform over the valid candidates.

    :param rng: generator used by :meth:`act` (always samples; ``deterministic`` is ignored since a
        deterministic uniform policy would be "first valid candidate").
    """

    name = "random"

    def __init__(self, rng: np.random.Generator):
        if not isinstance(rng, np.random.Generator):
            raise PolicyError("RandomPolicy needs a numpy.random.Generator, e.g. np.random.default_rng(0)")
        self.rng = rng

    def action_probabilities(self, obs: Observation) -> np.ndarray:
        _, mask = candidate_features(obs)
        return uniform_valid(mask)

    def act(self, obs, *, deterministic: bool = True, rng: np.random.Generator | None = None):
        return super().act(obs, deterministic=False, rng=rng if rng is not None else self.rng)


class _ScorePolicy(Policy):
    """Greedy on a linear score of the candidate features (ties -> lowest index)."""

    weights: dict[str, float] = {}

    def scores(self, obs: Observation) -> np.ndarray:
        """(N, K) float64 score of each candidate."""
        feats, _ = candidate_features(obs)
        s = np.zeros(feats.shape[:2])
        for col, w in self.weights.items():
            s += w * feats[:, :, getattr(COL, col)]
        return s

    def action_probabilities(self, obs: Observation) -> np.ndarray:
        _, mask = candidate_features(obs)
        return greedy_probabilities(self.scores(obs), mask)


class PopularityPolicy(_ScorePolicy):
    """Shows the candidate bundle with the highest mean (normalised log-) popularity."""

    name = "popularity"
    weights = {"popularity": 1.0}


class RelevanceGreedyPolicy(_ScorePolicy):
    """Shows the candidate most similar to the profile (and the session's click history).

    :param history_weight: weight of ``rel_history`` next to ``rel_profile`` (>= 0).
    """

    name = "relevance-greedy"

    def __init__(self, history_weight: float = 0.5):
        if not np.isfinite(history_weight) or history_weight < 0:
            raise PolicyError(f"history_weight={history_weight}; it must be finite and >= 0")
        self.weights = {"rel_profile": 1.0, "rel_history": float(history_weight)}


class ComplementGreedyPolicy(_ScorePolicy):
    """Relevance plus estimated complementarity, minus substitution and repeats.

    score = rel_profile + h·rel_history + c·mean_comp − s·max_sub + v·novelty

    :param history_weight: h >= 0. :param comp_weight: c >= 0. :param sub_weight: s >= 0.
    :param novelty_weight: v >= 0 (prefers bundles not yet shown).
    """

    name = "complement-greedy"

    def __init__(self, history_weight: float = 0.5, comp_weight: float = 1.0, sub_weight: float = 0.5,
                 novelty_weight: float = 0.1):
        vals = dict(history_weight=history_weight, comp_weight=comp_weight, sub_weight=sub_weight,
                    novelty_weight=novelty_weight)
        for k, v in vals.items():
            if not np.isfinite(v) or v < 0:
                raise PolicyError(f"{k}={v}; it must be finite and >= 0")
        self.weights = {"rel_profile": 1.0, "rel_history": float(history_weight), "mean_comp": float(comp_weight),
                        "max_sub": -float(sub_weight), "novelty": float(novelty_weight)}


_BASELINE_CLASSES: dict[str, type[Policy]] = {
    cls.name: cls for cls in (RandomPolicy, PopularityPolicy, RelevanceGreedyPolicy, ComplementGreedyPolicy)
}

BASELINES: tuple[str, ...] = tuple(_BASELINE_CLASSES)
"""The registry of baseline names, in table order (each class's ``name``): what ``make_baseline``, the training
comparison and ``bundlerl evaluate --baselines`` accept."""


def make_baseline(name: str, rng: np.random.Generator | None = None) -> Policy:
    """A baseline by name (one of :data:`BASELINES`); ``rng`` drives ``random`` (default: seed 0).

    :raises PolicyError: an unknown name (the message lists the valid ones).
    """
    try:
        cls = _BASELINE_CLASSES[check_name(name, BASELINES, "baseline")]
    except PolicyError as exc:
        raise PolicyError(f"make_baseline(name={shown(name)}): {exc}") from None
    if cls is RandomPolicy:
        return RandomPolicy(rng if rng is not None else np.random.default_rng(0))
    return cls()
