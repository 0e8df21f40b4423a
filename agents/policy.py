"""The one small policy protocol that evaluation and serving depend on.

A policy maps a *batch* of observations (a dict of arrays with a leading batch axis N, as a
SB3 ``VecEnv`` returns them) to action probabilities over the ``K`` candidate bundles. SB3-backed
agents, ONNX-exported agents, baselines and oracles all implement it.

Oracles read simulator truth (the shopper's hidden state); they say so with
``uses_simulator_truth = True`` and must be labelled "oracle" wherever they are reported.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Mapping

import numpy as np

from bundlerl.env.observation import MASK_KEY
from bundlerl.utils.errors import BundlerlError

Observation = Mapping[str, np.ndarray]
"""A batch of observations: each value has shape (N, ...), keys as in ``bundlerl.env.observation``."""



class PolicyError(BundlerlError):
    """Bad observation or configuration given to a policy."""


def check_name(name: str, registry, kind: str) -> str:
    """``name`` when ``registry`` (a mapping or a sequence of names) holds it; else PolicyError listing the valid
    names of this ``kind`` (e.g. ``"baseline"``). The registries (``BASELINES``, ``ORACLES``) call it so that a
    misspelt name is an error everywhere, never an empty selection."""
    if name not in registry:
        raise PolicyError(f"unknown {kind} {name!r}; use one of: {', '.join(registry)}")
    return name


def batch_size_of(obs: Observation) -> int:
    """N of a batched observation; raises PolicyError when the batch is malformed."""
    try:
        mask = np.asarray(obs[MASK_KEY])
    except KeyError:
        raise PolicyError(f"observation has no {MASK_KEY!r} key; got keys {sorted(obs)}") from None
    if mask.ndim != 2:
        raise PolicyError(
            f"{MASK_KEY} has shape {mask.shape}; expected (N, K). Add a batch axis to a single observation "
            "(e.g. {k: v[None] for k, v in obs.items()})"
        )
    return int(mask.shape[0])


class Policy(ABC):
    """Chooses which candidate bundle to show.

    Subclasses implement :meth:`action_probabilities`; :meth:`act` is derived from it.
    """

    #: Short name used in tables and plots.
    name: str = "policy"
    #: True for oracles that read the simulator's hidden state (never deployable).
    uses_simulator_truth: bool = False

    @abstractmethod
    def action_probabilities(self, obs: Observation) -> np.ndarray:
        """(N, K) float64 rows summing to 1, zero on masked-out actions.

        ``deterministic`` policies put all mass on one action. Raises PolicyError on a malformed batch.
        """

    def act(
        self, obs: Observation, *, deterministic: bool = True, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Actions (N,) int64 and their probabilities (N,) float64 under this policy.

        ``deterministic=True`` takes the most probable action (ties -> lowest index); otherwise samples
        with ``rng`` (required then). The returned probability is the policy's probability of the
        returned action, i.e. the propensity logged for off-policy evaluation.
        """
        probs = self.action_probabilities(obs)
        if deterministic:
            actions = probs.argmax(axis=1)
        else:
            if rng is None:
                raise PolicyError("act(deterministic=False) needs rng: pass a numpy.random.Generator")
            cdf = probs.cumsum(axis=1)
            u = rng.random(probs.shape[0])[:, None] * cdf[:, -1:]
            actions = (cdf <= u).sum(axis=1).clip(max=probs.shape[1] - 1)
        return actions.astype(np.int64), probs[np.arange(probs.shape[0]), actions]

    def reset(self, env_indices: np.ndarray | None = None) -> None:
        """Forget per-episode memory for the given batch rows (all when None). Stateless policies ignore it."""


def greedy_probabilities(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N, K) one-hot on the highest-scoring valid action (ties -> lowest index).

    A row with no valid action gets uniform probabilities (the env then decides what an
    invalid action means), so the result always sums to 1.
    """
    scores = np.where(mask > 0, scores, -np.inf)
    out = np.zeros(scores.shape, dtype=np.float64)
    has_valid = np.isfinite(scores).any(axis=1)
    out[np.arange(len(out))[has_valid], scores[has_valid].argmax(axis=1)] = 1.0
    out[~has_valid] = 1.0 / scores.shape[1]
    return out
