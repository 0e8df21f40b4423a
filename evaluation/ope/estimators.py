"""Off-policy estimators of a target policy's value from logged decisions, in the style of Open Bandit Pipeline's
``obp/ope/estimators.py`` (small validated dataclasses, documented array shapes) and, per trajectory, of SCOPE-RL and
Thomas & Brunskill (2016, "Data-efficient off-policy policy evaluation for reinforcement learning").

Every estimator is a ratio of sums over logged units (decisions, or episodes per step index), so each is written once
as ``value(sums)`` of per-unit *terms*; the in-memory :meth:`estimate_policy_value` sums the terms of its arrays, the
streaming evaluator (``bundlerl.evaluation.ope.evaluate``) sums them part by part and over bootstrap replicates.

Per decision (unit i: context x_i, logged action a_i, reward r_i, propensity pi_b(a_i|x_i); target pi_e;
w_i = min(pi_e(a_i|x_i) / pi_b(a_i|x_i), clip); q(x, a) a fitted reward model, v_i = sum_a pi_e(a|x_i) q(x_i, a)):

=========  ===========================================================================
DM         mean v_i
IPS        mean w_i r_i
SNIPS      sum w_i r_i / sum w_i
DR         mean [v_i + w_i (r_i - q(x_i, a_i))]
SNDR       mean v_i + sum w_i (r_i - q(x_i, a_i)) / sum w_i
Switch-DR  mean [v_i + 1{w_i <= tau} w_i (r_i - q(x_i, a_i))]   (OBP's form; ``tau`` the switch threshold)
=========  ===========================================================================

Per trajectory (n episodes i, steps t; rho_{i,t} = prod_{s<=t} pi_e/pi_b (clipped at ``clip``); an ended episode is
absorbed: no reward, its last rho carried on; q(s, a) a fitted return-to-go model, v_{i,t} = sum_a pi_e q(s_{i,t}, a);
W_t = sum_i rho_{i,t}, W_{-1} = n; gamma the discount):

=========  ===========================================================================
PDIS       sum_t gamma^t sum_i rho_{i,t} r_{i,t} / n
WPDIS      sum_t gamma^t sum_i rho_{i,t} r_{i,t} / W_t
DR         sum_t gamma^t sum_i [rho_{i,t} (r_{i,t} - q_{i,t}) + rho_{i,t-1} v_{i,t}] / n
WDR        sum_t gamma^t sum_i [rho_{i,t} (r_{i,t} - q_{i,t}) / W_t + rho_{i,t-1} v_{i,t} / W_{t-1}]
RegDR      mean v_{i,0} + sum_t gamma^t [a_t + beta_t (1 - b_t)]   (the regression estimator, below)
=========  ===========================================================================

RegDR: with delta_{i,t} = r_{i,t} - q_{i,t} + gamma v_{i,t+1} (the episode's TD error under the model), DR is
mean v_{i,0} + sum_t gamma^t a_t with a_t = sum_i rho_{i,t} delta_{i,t} / n, and WDR the same with a_t / b_t,
b_t = W_t / n: the ratio estimator. b_t is a sample mean of weights whose expectation under the logger is exactly 1
(the cumulative weight is a martingale; an ended episode keeps its last one), so it is a control variate of known
mean, and the *regression* estimator a_t + beta_t (1 - b_t), beta_t the least-squares slope of rho_{i,t}
delta_{i,t} on rho_{i,t} over the episodes, is its variance-optimal use (Hesterberg 1995, "Weighted average
importance sampling and defensive mixture distributions"; Owen 2013, "Monte Carlo theory, methods and examples",
ch. 9; Kallus & Uehara 2019's REG estimators for RL). beta_t = a_t / b_t gives WDR back, beta_t = 0 DR. It needs
the per-step sums of rho_t^2 and rho_t rho_t delta_t: the episodes' second moments
(``bundlerl.evaluation.ope.intervals.EpisodeMoments``), so it is a :data:`MOMENT_ESTIMATORS` class whose value is a
function of those moments.

Effective sample sizes: per decision (sum w)^2 / sum w^2, per trajectory the same of the final episode weights. The
unsupported share is the target's mean mass on actions the logger gave zero probability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bundlerl.evaluation.stats import EvaluationError

__all__ = [
    "OPEError", "DECISION_TERMS", "TRAJECTORY_TERMS", "decision_terms", "trajectory_terms", "cumulative_weights", "importance_weights",
    "unsupported_mass", "DirectMethod", "IPS", "SNIPS", "DoublyRobust", "SelfNormalizedDR", "SwitchDR", "PDIS",
    "WeightedPDIS", "TrajectoryDR", "WeightedDR", "RegressionDR", "DECISION_ESTIMATORS", "TRAJECTORY_ESTIMATORS",
    "MOMENT_ESTIMATORS", "episode_moments", "decision_ess", "trajectory_ess",
]


class OPEError(EvaluationError):
    """Bad input to an off-policy estimator: shapes, probabilities, unsupported target mass."""


def _arr(x, name: str, shape: tuple | None = None, ndim: int | None = None) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if ndim is not None and a.ndim != ndim:
        raise OPEError(f"{name} must be {ndim}-d; got shape {a.shape}")
    if shape is not None and a.shape != shape:
        raise OPEError(f"{name} has shape {a.shape}; expected {shape}")
    if not np.isfinite(a).all():
        raise OPEError(f"{name} holds NaN or inf")
    return a


def _checked(reward, action, pscore, action_dist, q_hat=None):
    r = _arr(reward, "reward", ndim=1)
    n = r.size
    a = np.asarray(action)
    if a.shape != (n,) or not np.issubdtype(a.dtype, np.integer):
        raise OPEError(f"action must be ({n},) integers; got {a.shape} {a.dtype}")
    ps = _arr(pscore, "pscore", (n,))
    if (ps <= 0).any():
        raise OPEError(f"pscore must be > 0 (row {int(np.flatnonzero(ps <= 0)[0])}); the logger must be able to "
                       "take its logged action")
    pe = _arr(action_dist, "action_dist", ndim=2)
    if pe.shape[0] != n or (a >= pe.shape[1]).any() or (a < 0).any():
        raise OPEError(f"action_dist has shape {pe.shape}; expected ({n}, K) with every action in [0, K)")
    q = None if q_hat is None else _arr(q_hat, "q_hat", pe.shape)
    return r, a.astype(np.int64), ps, pe, q


def importance_weights(action_dist: np.ndarray, action: np.ndarray, pscore: np.ndarray,
                       clip: float = np.inf) -> np.ndarray:
    """(n,) w = min(pi_e(a|x) / pi_b(a|x), clip): ``action_dist`` (n, K) the target's distribution, ``action`` (n,)
    the logged actions, ``pscore`` (n,) > 0 their logged propensities."""
    pe = np.asarray(action_dist, np.float64)
    return np.minimum(pe[np.arange(pe.shape[0]), action] / pscore, clip)


def unsupported_mass(action_dist: np.ndarray, logged_dist: np.ndarray) -> np.ndarray:
    """(n,) the target's mass on actions the logger could not take: sum_a pi_e(a|x) 1{pi_b(a|x) = 0}."""
    return np.where(np.asarray(logged_dist) <= 0, np.asarray(action_dist), 0.0).sum(axis=1)


DECISION_TERMS = ("n", "w", "w2", "wr", "v", "wres", "swres")
"""Per-decision terms (each summed over decisions): 1, w, w^2, w r, v, w (r - q_a), 1{w <= tau} w (r - q_a)."""


def decision_terms(reward, action, pscore, action_dist, q_hat=None, *, clip: float = np.inf,
                   tau: float = np.inf) -> np.ndarray:
    """(n, len(DECISION_TERMS)) per-decision terms (see the module docstring).

    :param reward: (n,) rewards. :param action: (n,) int logged actions in [0, K). :param pscore: (n,) > 0 logged
        propensities. :param action_dist: (n, K) the target's distribution. :param q_hat: (n, K) fitted expected
        rewards (None: zeros, the DM terms are then 0). :param clip: largest importance weight. :param tau: the
        Switch-DR threshold on the (clipped) weight.
    """
    r, a, ps, pe, q = _checked(reward, action, pscore, action_dist, q_hat)
    if q is None:
        q = np.zeros_like(pe)
    w = importance_weights(pe, a, ps, clip)
    qa = q[np.arange(r.size), a]
    res = w * (r - qa)
    return np.stack([np.ones_like(w), w, w * w, w * r, (pe * q).sum(axis=1), res, np.where(w <= tau, res, 0.0)],
                    axis=1)


def _safe(num: float, den: float) -> float:
    return float(num / den) if den > 0 else float("nan")


@dataclass(frozen=True)
class _Decision:
    """Base of the per-decision estimators: ``value(sums)`` from summed :data:`DECISION_TERMS`."""

    clip: float = np.inf
    """Largest importance weight (clipping; inf: none). Lower it to trade bias for variance."""

    def __post_init__(self):
        if not (self.clip > 0):
            raise OPEError(f"{type(self).__name__}: clip={self.clip}; it must be > 0")

    name = "?"
    uses_model = False

    def value(self, s: dict) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def estimate_policy_value(self, reward, action, pscore, action_dist, q_hat=None) -> float:
        """The estimate from in-memory arrays (shapes as in :func:`decision_terms`); NaN when undefined."""
        if self.uses_model and q_hat is None:
            raise OPEError(f"{self.name} needs q_hat, a fitted reward model's (n, K) predictions")
        t = decision_terms(reward, action, pscore, action_dist, q_hat, clip=self.clip,
                           tau=getattr(self, "tau", np.inf)).sum(axis=0)
        return self.value(dict(zip(DECISION_TERMS, t)))


@dataclass(frozen=True)
class DirectMethod(_Decision):
    """DM: the mean of the reward model's prediction under the target (no importance weights; biased if q is)."""

    name = "DM"
    uses_model = True

    def value(self, s):
        return _safe(s["v"], s["n"])


@dataclass(frozen=True)
class IPS(_Decision):
    """Inverse propensity scoring (unbiased without clipping)."""

    name = "IPS"

    def value(self, s):
        return _safe(s["wr"], s["n"])


@dataclass(frozen=True)
class SNIPS(_Decision):
    """Self-normalised IPS (consistent; small bias, lower variance)."""

    name = "SNIPS"

    def value(self, s):
        return _safe(s["wr"], s["w"])


@dataclass(frozen=True)
class DoublyRobust(_Decision):
    """DR: DM plus the importance-weighted residual of the logged action."""

    name = "DR"
    uses_model = True

    def value(self, s):
        return _safe(s["v"] + s["wres"], s["n"])


@dataclass(frozen=True)
class SelfNormalizedDR(_Decision):
    """SNDR: DR with the residual term self-normalised by the sum of weights."""

    name = "SNDR"
    uses_model = True

    def value(self, s):
        return _safe(s["v"], s["n"]) + (_safe(s["wres"], s["w"]) if s["w"] > 0 else 0.0)


@dataclass(frozen=True)
class SwitchDR(_Decision):
    """Switch-DR: DR whose residual is dropped where the weight exceeds ``tau`` (there only DM)."""

    tau: float = 10.0
    name = "Switch-DR"
    uses_model = True

    def __post_init__(self):
        super().__post_init__()
        if not (self.tau >= 0):
            raise OPEError(f"SwitchDR: tau={self.tau}; it must be >= 0")

    def value(self, s):
        return _safe(s["v"] + s["swres"], s["n"])


def decision_ess(s: dict) -> float:
    """Effective sample size of the per-decision weights, (sum w)^2 / sum w^2 (0 when every weight is 0)."""
    return float(s["w"] ** 2 / s["w2"]) if s["w2"] > 0 else 0.0


# ---------------------------------------------------------------------------------------------- per trajectory
TRAJECTORY_TERMS = ("A", "W", "Q", "V")
"""Per-step-index sums over episodes (each (H,)): sum rho_t r_t, sum rho_t (ended episodes carried), sum rho_t q_t,
sum rho_{t-1} v_t. With the episode count n and ``E1``, ``E2`` (sum of final weights and of their squares)."""


def cumulative_weights(episode: np.ndarray, ratio: np.ndarray, *, clip: float = np.inf
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the step index ``t`` (n,) int, the cumulative weight ``rho`` (n,) = min(prod_{s<=t} ratio_s, clip)
    within its episode and ``rho_prev`` (n,), the same up to the step before (1 at an episode's first step).

    :param episode: (n,) episode index of each decision; rows grouped by episode, in step order.
    :param ratio: (n,) pi_e / pi_b of the logged actions (>= 0; a zero keeps the weight at zero from then on).
    :raises OPEError: rows not grouped by episode.
    """
    ep = np.asarray(episode, np.int64)
    n = ep.size
    start = np.r_[True, ep[1:] != ep[:-1]] if n else np.zeros(0, bool)
    if n and (np.diff(ep) < 0).any():
        raise OPEError("trajectory rows must be grouped by episode, in step order")
    idx = np.arange(n)
    first = np.maximum.accumulate(np.where(start, idx, 0)) if n else idx  # each row's episode's first row
    ratio = np.asarray(ratio, np.float64)
    logr = np.log(np.maximum(ratio, 1e-300))
    # cumulative products within each episode, in log space; a zero ratio keeps the weight at zero from then on
    cs = np.cumsum(logr)
    cum = cs - (cs - logr)[first]
    zc = np.cumsum(ratio <= 0)
    dead = (zc - (zc - (ratio <= 0))[first]) > 0
    rho = np.where(dead, 0.0, np.minimum(np.exp(np.minimum(cum, 700.0)), clip))
    rho_prev = np.where(start, 1.0, np.r_[1.0, rho[:-1]])
    return idx - first, rho, rho_prev


def trajectory_terms(episode: np.ndarray, ratio: np.ndarray, reward: np.ndarray, q: np.ndarray, v: np.ndarray,
                     horizon: int, *, clip: float = np.inf) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-episode contributions for the trajectory estimators.

    :param episode: (n,) episode index in [0, E) of each decision; rows of an episode in step order.
    :param ratio: (n,) pi_e(a_t|s_t) / pi_b(a_t|s_t) of the logged actions. :param reward: (n,) rewards.
    :param q: (n,) fitted return-to-go of the logged action. :param v: (n,) sum_a pi_e(a|s_t) q(s_t, a).
    :param horizon: H, the largest episode length. :param clip: largest cumulative weight.
    :returns: ``terms`` (E, 4, H) per episode and step index (:data:`TRAJECTORY_TERMS`), ``final`` (E,) the final
        cumulative weights, ``length`` (E,) the episode lengths.
    """
    ep = np.asarray(episode, np.int64)
    n = ep.size
    E = int(ep.max()) + 1 if n else 0
    t, rho, rho_prev = cumulative_weights(ep, ratio, clip=clip)
    if n and t.max() >= horizon:
        raise OPEError(f"an episode has {int(t.max()) + 1} steps, more than horizon={horizon}")
    start = t == 0
    terms = np.zeros((E, 4, horizon))
    np.add.at(terms[:, 0], (ep, t), rho * reward)
    np.add.at(terms[:, 1], (ep, t), rho)
    np.add.at(terms[:, 2], (ep, t), rho * q)
    np.add.at(terms[:, 3], (ep, t), rho_prev * v)
    length = np.bincount(ep, minlength=E)
    final = np.zeros(E)
    if n:
        last = np.r_[np.flatnonzero(start[1:]), n - 1]
        final[ep[last]] = rho[last]
    # absorbed episodes keep their last weight in the normaliser W_t
    steps = np.arange(horizon)[None, :]
    terms[:, 1] += np.where(steps >= length[:, None], final[:, None], 0.0)
    return terms, final, length


def _discount(H: int, gamma: float) -> np.ndarray:
    return gamma ** np.arange(H)


@dataclass(frozen=True)
class _Trajectory:
    """Base of the per-trajectory estimators: ``value(sums, n)`` from the summed :data:`TRAJECTORY_TERMS`."""

    gamma: float = 1.0
    clip: float = np.inf

    def __post_init__(self):
        if not (0 <= self.gamma <= 1) or not (self.clip > 0):
            raise OPEError(f"{type(self).__name__}: gamma={self.gamma} must be in [0, 1] and clip={self.clip} > 0")

    name = "?"
    uses_model = False

    def value(self, s: np.ndarray, n: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def gradient(self, s: np.ndarray, n: float) -> np.ndarray:  # pragma: no cover - abstract
        """(4 H + 1,) d value / d (s flattened row-major, n): the linearisation behind the studentized interval
        (``bundlerl.evaluation.ope.intervals``). Every estimator here is homogeneous of degree 0 in (s, n), so the
        gradient is orthogonal to (s, n) (Euler) and per-episode influences g . x_i sum to zero."""
        raise NotImplementedError

    def _terms(self, episode, ratio, reward, q=None, v=None, horizon: int | None = None) -> np.ndarray:
        n = np.asarray(reward).size
        q = np.zeros(n) if q is None else np.asarray(q, np.float64)
        v = np.zeros(n) if v is None else np.asarray(v, np.float64)
        ep = np.asarray(episode)
        H = horizon or (int(np.bincount(ep).max()) if n else 1)
        return trajectory_terms(ep, ratio, reward, q, v, H, clip=self.clip)[0]

    def estimate_policy_value(self, episode, ratio, reward, q=None, v=None, horizon: int | None = None) -> float:
        """The estimate from in-memory arrays (shapes as in :func:`trajectory_terms`)."""
        terms = self._terms(episode, ratio, reward, q, v, horizon)
        return self.value(terms.sum(axis=0), float(terms.shape[0]))


@dataclass(frozen=True)
class PDIS(_Trajectory):
    """Per-decision importance sampling (unbiased)."""

    name = "PDIS"

    def value(self, s, n):
        return float(_discount(s.shape[1], self.gamma) @ s[0] / n) if n else float("nan")

    def gradient(self, s, n):
        g = np.zeros_like(s, dtype=np.float64)
        if not n:
            return np.r_[g.ravel(), 0.0]
        g[0] = _discount(s.shape[1], self.gamma) / n
        return np.r_[g.ravel(), -self.value(s, n) / n]


@dataclass(frozen=True)
class WeightedPDIS(_Trajectory):
    """Weighted PDIS: each step's weighted rewards normalised by that step's sum of weights."""

    name = "WPDIS"

    def value(self, s, n):
        return float(_discount(s.shape[1], self.gamma) @ np.divide(s[0], s[1], out=np.zeros_like(s[0]),
                                                                    where=s[1] > 0)) if n else float("nan")

    def gradient(self, s, n):
        d = _discount(s.shape[1], self.gamma)
        g = np.zeros_like(s, dtype=np.float64)
        W = s[1]
        ok = W > 0
        g[0, ok] = d[ok] / W[ok]
        g[1, ok] = -d[ok] * s[0, ok] / W[ok] ** 2
        return np.r_[g.ravel(), 0.0]


@dataclass(frozen=True)
class TrajectoryDR(_Trajectory):
    """Per-trajectory doubly robust (Jiang & Li 2016; Thomas & Brunskill 2016)."""

    name = "DR-traj"
    uses_model = True

    def value(self, s, n):
        return float(_discount(s.shape[1], self.gamma) @ (s[0] - s[2] + s[3]) / n) if n else float("nan")

    def gradient(self, s, n):
        g = np.zeros_like(s, dtype=np.float64)
        if not n:
            return np.r_[g.ravel(), 0.0]
        d = _discount(s.shape[1], self.gamma) / n
        g[0], g[2], g[3] = d, -d, d
        return np.r_[g.ravel(), -self.value(s, n) / n]


@dataclass(frozen=True)
class WeightedDR(_Trajectory):
    """Weighted doubly robust (Thomas & Brunskill 2016): DR with per-step self-normalised weights."""

    name = "WDR-traj"
    uses_model = True

    def value(self, s, n):
        if not n:
            return float("nan")
        W = s[1]
        W_prev = np.r_[n, W[:-1]]
        div = lambda a, b: np.divide(a, b, out=np.zeros_like(a), where=b > 0)  # noqa: E731
        return float(_discount(s.shape[1], self.gamma) @ (div(s[0] - s[2], W) + div(s[3], W_prev)))

    def gradient(self, s, n):
        H = s.shape[1]
        g = np.zeros_like(s, dtype=np.float64)
        if not n:
            return np.r_[g.ravel(), 0.0]
        d = _discount(H, self.gamma)
        W = s[1].astype(np.float64)
        W_prev = np.r_[n, W[:-1]]
        ok, okp = W > 0, W_prev > 0
        g[0, ok] = d[ok] / W[ok]
        g[2, ok] = -d[ok] / W[ok]
        g[3, okp] = d[okp] / W_prev[okp]
        # W_t is the normaliser of step t's residual and of step t + 1's model term
        g[1, ok] = -d[ok] * (s[0, ok] - s[2, ok]) / W[ok] ** 2
        nxt = np.zeros(H)
        nxt[:-1] = np.where(okp[1:], d[1:] * s[3, 1:] / np.where(okp[1:], W_prev[1:], 1.0) ** 2, 0.0)
        g[1] -= nxt
        gn = -d[0] * s[3, 0] / n ** 2
        return np.r_[g.ravel(), gn]


@dataclass(frozen=True)
class RegressionDR(_Trajectory):
    """Per-trajectory DR with the per-step weight means as control variates of known mean 1 (the regression
    estimator; module docstring): a function of the episodes' second moments, not of the summed terms alone.

    The moments ``M`` ((4 H + 1, 4 H + 1)) are sum_i c_i x_i x_i^T over episodes i (weights c_i: 1, or a bootstrap
    replicate's), x_i = (the episode's :func:`trajectory_terms` (4, H) flattened row-major, 1): its last row holds the
    summed terms and the episode count. A step whose weights do not vary (e.g. every weight 1: target == logger, or
    every episode's weight 0) has beta_t = 0 there, where the estimate is DR's (and WDR's, since then b_t = 1 or
    a_t = 0).
    """

    name = "RegDR-traj"
    uses_model = True

    def _parts(self, M: np.ndarray):
        M = np.asarray(M, np.float64)
        H = (M.shape[0] - 1) // 4
        n = M[-1, -1]
        S = M[-1, :-1].reshape(4, H)
        t = np.arange(H)
        iA, iW, iQ, iV = t, H + t, 2 * H + t, 3 * H + t
        nxt = np.r_[S[3, 1:], 0.0]  # sum rho_t v_{t+1}: the next step's model term, weighted by this step's rho
        a = (S[0] - S[2] + self.gamma * nxt) / n
        b = S[1] / n
        swd = M[iW, iA] - M[iW, iQ]
        swd[:-1] += self.gamma * M[iW[:-1], iV[1:]]
        cov = swd / n - a * b
        var = M[iW, iW] / n - b * b
        # a step whose weights (nearly) do not vary carries no control-variate information: beta 0 there
        ok = var > 1e-12 * np.maximum(b * b, 1.0)
        beta = np.where(ok, cov / np.where(ok, var, 1.0), 0.0)
        return H, n, S, a, b, beta

    def value_moments(self, M: np.ndarray) -> float:
        """The estimate from the episodes' second moments ``M`` (class docstring); NaN without episodes."""
        M = np.asarray(M, np.float64)
        if M[-1, -1] <= 0:
            return float("nan")
        H, n, S, a, b, beta = self._parts(M)
        return float(S[3, 0] / n + _discount(H, self.gamma) @ (a + beta * (1 - b)))

    def gradient_moments(self, M: np.ndarray) -> np.ndarray:
        """(4 H + 1,) g with g . x_i = episode i's influence / n, the slopes beta_t held fixed (the usual linearisation
        of a control-variate estimator): g^T M g is the delta-method variance (``EpisodeMoments.se``). The
        influences sum to zero over the episodes (g . (summed x) = 0)."""
        M = np.asarray(M, np.float64)
        H = (M.shape[0] - 1) // 4
        g = np.zeros((4, H))
        if M[-1, -1] <= 0:
            return np.zeros(4 * H + 1)
        H, n, S, a, b, beta = self._parts(M)
        d = _discount(H, self.gamma)
        g[0], g[2], g[1] = d / n, -d / n, -d * beta / n
        g[3, 0] = 1.0 / n
        g[3, 1:] += self.gamma * d[:-1] / n
        const = -(S[3, 0] / n + d @ (a - beta * b)) / n
        return np.r_[g.ravel(), const]

    def value(self, s, n):  # pragma: no cover - the moments carry what it needs
        raise OPEError(f"{self.name} is a function of the episodes' second moments: use value_moments")

    def estimate_policy_value(self, episode, ratio, reward, q=None, v=None, horizon: int | None = None) -> float:
        """The estimate from in-memory arrays (shapes as in :func:`trajectory_terms`)."""
        return self.value_moments(episode_moments(self._terms(episode, ratio, reward, q, v, horizon)))


def episode_moments(terms: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(4 H + 1, 4 H + 1) sum_i c_i x_i x_i^T of the episodes' terms ``terms`` (E, 4, H) (x_i = the terms flattened,
    1), c = ``weights`` (E,) or 1: what :class:`RegressionDR` reads (in memory; the evaluator streams the same sums)."""
    E = terms.shape[0]
    X = np.concatenate([terms.reshape(E, -1), np.ones((E, 1))], axis=1)
    c = np.ones(E) if weights is None else np.asarray(weights, np.float64)
    return (X * c[:, None]).T @ X


def trajectory_ess(e1: float, e2: float) -> float:
    """Effective sample size of the final episode weights, (sum rho)^2 / sum rho^2."""
    return float(e1 * e1 / e2) if e2 > 0 else 0.0


DECISION_ESTIMATORS = (DirectMethod, IPS, SNIPS, DoublyRobust, SelfNormalizedDR, SwitchDR)
"""The per-decision estimator classes, in table order."""
TRAJECTORY_ESTIMATORS = (PDIS, WeightedPDIS, TrajectoryDR, WeightedDR)
"""The per-trajectory estimator classes that are functions of the summed terms (``value(s, n)``), in table order."""
MOMENT_ESTIMATORS = (RegressionDR,)
"""The per-trajectory estimator classes that are functions of the episodes' second moments (``value_moments(M)``),
after :data:`TRAJECTORY_ESTIMATORS` in table order."""
