"""The reward: a function of the shopper's response and the reward weights. The one home of the reward modes.

RecSim's split: the shopper (:mod:`bundlerl.env.shopper`) responds to a shown bundle (click, items bought,
amount paid) and knows nothing of rewards; the environment turns the response into the reward here::

    r = w_click·click + w_buy·items_bought + w_rev·paid / p̄  −  penalty·[the action was masked]

``p̄`` is the catalogue's mean price (a revenue reward is counted in average items), ``penalty`` is
``EnvConfig.invalid_action_penalty`` (a masked action shows nothing, so its response is empty).
``EnvConfig.reward`` names a mode or gives the weights:

=============  ===========================  ======================================================
mode           (w_click, w_buy, w_rev)      the policy is paid for
=============  ===========================  ======================================================
``clicks``     (1, 0, 0)                    clicks
``purchases``  (0, 1, 0)                    items bought (the default)
``revenue``    (0, 0, 1)                    money spent, in units of the mean catalogue price
=============  ===========================  ======================================================

The reward is linear in the response, so the expected reward of a bundle is the reward of its expected
response (click probability, expected items bought, expected amount paid): the oracles' exact one-step value
(:meth:`bundlerl.env.session.SessionBatch.expected_reward`) goes through the same :func:`reward`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bundlerl.utils.errors import BundlerlError

__all__ = ["RewardError", "RewardWeights", "REWARD_MODES", "reward_weights", "reward", "penalised"]


class RewardError(BundlerlError):
    """Bad reward weights or an unknown reward mode; the message names the field and the fix."""


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the response in the reward (see the module docstring). Validated on construction."""

    w_click: float = 0.0
    """Reward per click; >= 0."""
    w_buy: float = 1.0
    """Reward per item bought; >= 0."""
    w_rev: float = 0.0
    """Reward per unit of amount paid / p̄ (p̄ = the catalogue's mean price); >= 0."""

    def __post_init__(self) -> None:
        for name in ("w_click", "w_buy", "w_rev"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise RewardError(f"RewardWeights.{name}={v!r}; it must be a finite number >= 0")
        if self.w_click + self.w_buy + self.w_rev == 0:
            raise RewardError("RewardWeights: w_click, w_buy and w_rev are all 0; give at least one a weight > 0")


REWARD_MODES: dict[str, RewardWeights] = {
    "clicks": RewardWeights(w_click=1.0, w_buy=0.0, w_rev=0.0),
    "purchases": RewardWeights(w_click=0.0, w_buy=1.0, w_rev=0.0),
    "revenue": RewardWeights(w_click=0.0, w_buy=0.0, w_rev=1.0),
}
"""The named reward modes (``EnvConfig.reward``)."""


def reward_weights(mode: "str | RewardWeights") -> RewardWeights:
    """The weights of a mode name (a key of :data:`REWARD_MODES`) or the weights themselves.

    :raises RewardError: an unknown mode name (the message lists the known ones) or another type.
    """
    if isinstance(mode, RewardWeights):
        return mode
    try:
        return REWARD_MODES[mode]
    except (KeyError, TypeError):
        raise RewardError(f"reward {mode!r}; use one of {sorted(REWARD_MODES)} or a RewardWeights") from None


def reward(click: np.ndarray, n_bought: np.ndarray, paid: np.ndarray, weights: RewardWeights,
           mean_price: float) -> np.ndarray:
    """(...) float64 reward of responses, elementwise: ``w_click·click + w_buy·n_bought + w_rev·paid / mean_price``.

    :param click: bool clicks, or click probabilities (expected response).
    :param n_bought: items bought, or their expectation.
    :param paid: amount paid after the bundle discount (currency units), or its expectation.
    :param mean_price: p̄ > 0, the catalogue's mean price.
    """
    return weights.w_click * click + weights.w_buy * n_bought + weights.w_rev * paid / mean_price


def penalised(rewards: np.ndarray, invalid: np.ndarray, penalty: float) -> np.ndarray:
    """(N,) float32 ``rewards − penalty·invalid``: the step reward once masked actions are charged."""
    return (np.asarray(rewards, np.float32) - np.float32(penalty) * invalid).astype(np.float32)
