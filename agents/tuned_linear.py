"""``tuned-linear``: the myopic control — greedy on a linear score of every observable feature, weights tuned for return.

The score of candidate k of row n is ``phi[n, k] @ w``, where ``phi`` holds

- the ten candidate features (``bundlerl.candidates.features.CANDIDATE_FEATURES``; they already summarise the
  profile and history vectors as ``rel_profile`` / ``rel_history``), and
- interactions ``candidate feature x session counter`` (``bundlerl.env.observation.SESSION_FEATURES``): a session
  counter alone is the same for every candidate of a row and cannot change a greedy choice, but its product with a
  candidate feature lets the preference shift during a session (e.g. cheaper bundles once money has been spent).

The policy is greedy (one step): whatever it earns, it earns by ranking the candidates of the moment. The weights
come from a cross-entropy search for mean return on training streams (:mod:`bundlerl.evaluation.tuning`, which
also caches fits) and are saved and loaded as JSON (:meth:`TunedLinearPolicy.save` / :meth:`TunedLinearPolicy.load`).
It reads only the observation: it is an observable baseline, not an oracle.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from bundlerl.agents.baselines import BASELINES, candidate_features
from bundlerl.agents.policy import Observation, Policy, PolicyError, greedy_probabilities
from bundlerl.candidates.features import CANDIDATE_FEATURES
from bundlerl.env.observation import SESSION_FEATURES, SESSION_KEY

__all__ = ["TUNED_LINEAR", "OBSERVABLE_POLICIES", "DEFAULT_INTERACTIONS", "WEIGHTS_FORMAT", "feature_names",
           "linear_features", "TunedLinearPolicy"]

TUNED_LINEAR = "tuned-linear"
"""The registered name of the tuned linear ranker."""

OBSERVABLE_POLICIES: tuple[str, ...] = (*BASELINES, TUNED_LINEAR)
"""Every observable (non-oracle, non-learned) policy by name: the hand-set baselines and ``tuned-linear``. "Best
observable baseline" is the best of these."""

DEFAULT_INTERACTIONS: tuple[str, ...] = ("progress", "log_spent", "miss_streak")
"""Session counters crossed with every candidate feature by default: where the session is (time), how much has been
bought (money) and how tired the shopper looks (misses in a row), the recommender's proxies of the three session
mechanisms (horizon, budget, fatigue)."""

WEIGHTS_FORMAT = 1
"""Layout version of the weights JSON."""


def feature_names(interactions: Sequence[str] = DEFAULT_INTERACTIONS) -> tuple[str, ...]:
    """Names of the linear features: the candidate features, then ``"<candidate>*<session>"`` per interaction.

    :raises PolicyError: an interaction that is not a session counter.
    """
    for s in interactions:
        if s not in SESSION_FEATURES:
            raise PolicyError(f"interaction {s!r} is not a session feature; use one of {', '.join(SESSION_FEATURES)}")
    return (*CANDIDATE_FEATURES, *(f"{c}*{s}" for s in interactions for c in CANDIDATE_FEATURES))


def linear_features(obs: Observation, interactions: Sequence[str] = DEFAULT_INTERACTIONS) -> np.ndarray:
    """(N, K, D) float64 features of :func:`feature_names` for a batched observation (D = F · (1 + interactions), F =
    len(CANDIDATE_FEATURES) = 10).

    :raises PolicyError: a malformed observation (no candidates, wrong shapes, no session block with interactions).
    """
    feats, _ = candidate_features(obs)
    if not interactions:
        return feats
    try:
        session = np.asarray(obs[SESSION_KEY], dtype=np.float64)
    except KeyError:
        raise PolicyError(f"observation has no {SESSION_KEY!r} key; the interactions need it") from None
    if session.shape != (feats.shape[0], len(SESSION_FEATURES)):
        raise PolicyError(f"{SESSION_KEY} has shape {session.shape}; expected (N={feats.shape[0]}, {len(SESSION_FEATURES)})")
    cols = [feats] + [feats * session[:, None, SESSION_FEATURES.index(s), None] for s in interactions]
    return np.concatenate(cols, axis=-1)


def _check_interactions(interactions) -> tuple[str, ...]:
    out = tuple(interactions)
    feature_names(out)  # validates
    return out


class TunedLinearPolicy(Policy):
    """Greedy on ``linear_features(obs) @ weights`` (ties -> lowest index); an observable baseline.

    :param weights: (D,) finite weights in the order of :func:`feature_names` ``(interactions)``.
    :param interactions: the session counters crossed with the candidate features.
    :param info: what the fit recorded (world, budget, seed, ...), kept in the JSON.
    :raises PolicyError: weights of the wrong length or not finite; an unknown interaction.

    ``weights`` may also be (N, D): batch row n is then scored with ``weights[n]`` (:meth:`per_row`; the
    cross-entropy search scores many weight vectors in one batch this way).
    """

    name = TUNED_LINEAR

    def __init__(self, weights, interactions: Sequence[str] = DEFAULT_INTERACTIONS, info: Mapping[str, Any] | None = None):
        self.interactions = _check_interactions(interactions)
        self.names = feature_names(self.interactions)
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim not in (1, 2) or w.shape[-1] != len(self.names):
            raise PolicyError(f"weights have shape {w.shape}; expected ({len(self.names)},) for features {list(self.names)}")
        if not np.isfinite(w).all():
            raise PolicyError("weights must be finite")
        self.weights = w
        self.info = dict(info or {})

    @classmethod
    def per_row(cls, weights: np.ndarray, interactions: Sequence[str] = DEFAULT_INTERACTIONS) -> "TunedLinearPolicy":
        """A policy whose batch row n is scored with ``weights[n]`` ((N, D)): many weight vectors in one rollout."""
        return cls(np.asarray(weights, dtype=np.float64).reshape(-1, len(feature_names(interactions))), interactions)

    def scores(self, obs: Observation) -> np.ndarray:
        """(N, K) float64 linear scores."""
        phi = linear_features(obs, self.interactions)
        if self.weights.ndim == 1:
            return phi @ self.weights
        if self.weights.shape[0] != phi.shape[0]:
            raise PolicyError(f"per-row weights for {self.weights.shape[0]} rows, observation has {phi.shape[0]}")
        return np.einsum("nkd,nd->nk", phi, self.weights)

    def action_probabilities(self, obs: Observation) -> np.ndarray:
        _, mask = candidate_features(obs)
        return greedy_probabilities(self.scores(obs), mask)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: format, feature names, interactions, weights (by name) and the fit's record."""
        if self.weights.ndim != 1:
            raise PolicyError("only a policy with one weight vector can be saved")
        return {"format": WEIGHTS_FORMAT, "policy": TUNED_LINEAR, "interactions": list(self.interactions),
                "weights": {n: float(v) for n, v in zip(self.names, self.weights)}, "info": self.info}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "weights") -> "TunedLinearPolicy":
        """The policy of :meth:`to_dict`'s data. :raises PolicyError: naming ``where`` and the field that is wrong."""
        if not isinstance(data, Mapping):
            raise PolicyError(f"{where}: expected a JSON object with 'weights'; got {type(data).__name__}")
        if data.get("format") != WEIGHTS_FORMAT:
            raise PolicyError(f"{where}: field 'format' is {data.get('format')!r}, this version reads {WEIGHTS_FORMAT}; "
                              "fit the weights again (bundlerl evaluate --baselines tuned-linear)")
        inter = data.get("interactions", [])
        if not isinstance(inter, list) or not all(isinstance(s, str) for s in inter):
            raise PolicyError(f"{where}: field 'interactions' must be a list of session feature names")
        names = feature_names(inter)
        w = data.get("weights")
        if not isinstance(w, Mapping) or set(w) != set(names):
            got = sorted(w) if isinstance(w, Mapping) else type(w).__name__
            raise PolicyError(f"{where}: field 'weights' must map exactly the features {list(names)}; got {got}")
        vals = [w[n] for n in names]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in vals):
            raise PolicyError(f"{where}: field 'weights' holds a value that is not a finite number")
        return cls(np.array(vals, dtype=np.float64), inter, data.get("info") or {})

    def save(self, path: str | Path) -> Path:
        """Write the weights JSON to ``path`` atomically; returns the path."""
        from bundlerl.utils.atomic import write_text

        write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "TunedLinearPolicy":
        """The policy saved at ``path``. :raises PolicyError: a missing or unreadable file, or bad content (the
        message names the file and the field)."""
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise PolicyError(f"{p}: no such weights file; fit one with 'bundlerl evaluate --baselines tuned-linear'") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"{p}: cannot read the weights file ({exc})") from None
        except json.JSONDecodeError as exc:
            raise PolicyError(f"{p}, line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg})") from None
        return cls.from_dict(data, where=str(p))
