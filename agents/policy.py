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
from bundlerl.utils.args import shown
from bundlerl.utils.errors import BundlerlError

Observation = Mapping[str, np.ndarray]
"""A batch of observations: each value has shape (N, ...), keys as in ``bundlerl.env.observation``."""



class PolicyError(BundlerlError):
    """Bad observation or configuration given to a policy."""


def check_name(name: str, registry, kind: str) -> str:
    """``name`` when ``registry`` (a mapping or a sequence of names) holds it; else PolicyError listing the valid
    names of this ``kind`` (e.g. ``"baseline"``). The registries (``BASELINES``, ``ORACLES``) call it so that a
    misspelt name is an error everywhere, never an empty selection."""
    if not isinstance(name, str) or name not in registry:
        raise PolicyError(f"unknown {kind} {shown(name)}; use one of: {', '.join(registry)}")
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
        """(N, K) float64 rows summing to 1, zero on masked-out actions (a row with no valid action: uniform,
        and the env decides what an invalid action means).

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
        probs = check_probabilities(self.action_probabilities(obs), obs, getattr(self, "name", type(self).__name__))
        actions = choose_actions(probs, deterministic=deterministic, rng=rng)
        return actions, probs[np.arange(probs.shape[0]), actions]

    def reset(self, env_indices: np.ndarray | None = None) -> None:
        """Forget per-episode memory for the given batch rows (all when None). Stateless policies ignore it."""


def choose_actions(probs: np.ndarray, *, deterministic: bool, rng: np.random.Generator | None = None) -> np.ndarray:
    """(N,) int64 actions from checked (N, K) probabilities: the most probable (ties -> lowest index) when
    ``deterministic``, else one draw per row from ``rng`` (inverse CDF; required then, PolicyError without)."""
    if deterministic:
        return probs.argmax(axis=1).astype(np.int64)
    if rng is None:
        raise PolicyError("act(deterministic=False) needs rng: pass a numpy.random.Generator")
    cdf = probs.cumsum(axis=1)
    u = rng.random(probs.shape[0])[:, None] * cdf[:, -1:]
    return (cdf <= u).sum(axis=1).clip(max=probs.shape[1] - 1).astype(np.int64)


def check_probabilities(probs: np.ndarray, obs: Observation, name: str = "policy") -> np.ndarray:
    """``probs`` as (N, K) float64 after checking it is what :meth:`Policy.action_probabilities` promises for the
    batch ``obs``: shape (N, K) of its action mask, finite, >= 0, rows summing to 1 (within 1e-6).

    :raises PolicyError: naming the policy and the first violation (a broken policy must not be evaluated as
        "always action 0", which is what an argmax over NaN or zeros silently gives).
    """
    mask = np.asarray(obs[MASK_KEY]) if MASK_KEY in obs else None
    p = np.asarray(probs, dtype=np.float64)
    want = None if mask is None else mask.shape
    if p.ndim != 2 or (want is not None and p.shape != want):
        raise PolicyError(f"{name}: action probabilities have shape {p.shape}; expected (N, K) = {want}")
    if not np.isfinite(p).all():
        row = int(np.flatnonzero(~np.isfinite(p).all(axis=1))[0])
        raise PolicyError(f"{name}: action probabilities are not finite (row {row}: {p[row].tolist()}); "
                          "check the policy's inputs (NaN features?) and its scores")
    if (p < 0).any():
        raise PolicyError(f"{name}: negative action probabilities (min {p.min():.3g}); they must be >= 0")
    sums = p.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-6):
        row = int(np.argmax(np.abs(sums - 1.0)))
        raise PolicyError(f"{name}: action probabilities of row {row} sum to {sums[row]:.6g}, not 1; normalise them")
    return p


def uniform_valid(mask: np.ndarray) -> np.ndarray:
    """(N, K) float64 uniform over the valid candidates of ``mask`` (uniform over all K in a row without any, the
    protocol's rule for such rows)."""
    valid = np.asarray(mask) > 0
    valid = np.where(valid.any(axis=1, keepdims=True), valid, True).astype(np.float64)
    return valid / valid.sum(axis=1, keepdims=True)


def greedy_probabilities(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N, K) one-hot on the highest-scoring valid action (ties -> lowest index).

    A row with no valid action gets uniform probabilities (the env then decides what an
    invalid action means), so the result always sums to 1. A NaN score of a valid action raises
    :class:`PolicyError` (it would otherwise lose every comparison silently).
    """
    valid = np.asarray(mask) > 0
    if np.isnan(np.where(valid, scores, 0.0)).any():
        raise PolicyError("a valid candidate's score is NaN; check the observation's candidate features for NaN")
    scores = np.where(valid, scores, -np.inf)
    out = np.zeros(scores.shape, dtype=np.float64)
    has_valid = np.isfinite(scores).any(axis=1)
    out[np.arange(len(out))[has_valid], scores[has_valid].argmax(axis=1)] = 1.0
    out[~has_valid] = 1.0 / scores.shape[1]
    return out


def masked_softmax(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N, K) float64 softmax of ``logits`` over the valid (``mask`` true) entries, 0 elsewhere; rows with no
    valid entry are uniform over all K, rows whose valid mass underflows are uniform over the valid ones."""
    valid = np.asarray(mask) > 0
    valid = np.where(valid.any(axis=1, keepdims=True), valid, True)
    z = np.where(valid, np.asarray(logits, np.float64), -np.inf)
    z = z - z.max(axis=1, keepdims=True)
    e = np.where(valid, np.exp(z), 0.0)
    tot = e.sum(axis=1, keepdims=True)
    uniform = valid / valid.sum(axis=1, keepdims=True)
    return np.where(tot > 1e-12, e / np.maximum(tot, 1e-300), uniform)
