"""Linear fitted-Q evaluation (LSTD-Q) of each target: the return model of the per-trajectory DR and weighted DR.

Why: the per-trajectory DR / WDR use a return model q(s, a) as control variate. A Monte-Carlo fit of the logged
returns-to-go models the *logger's* continuation, not the target's, so for targets far from the logger the direct
part of WDR was biased (~ -1 on values 8.4-9.0 for greedy targets at 10k decisions) and, with a few episodes
holding the importance weight (ESS 1-112 episodes), the bootstrap saw neither that bias nor the heavy tail: coverage
80-90%. Fitted-Q evaluation (Le, Voloshin & Yue 2019; SCOPE-RL's and OBP's DR use it) fits q to the target's own
Bellman equation, q(s, a) = r + gamma sum_a' pi(a'|s') q(s', a'). Over a linear class q = phi(s, a) w its fixed point
is LSTD-Q (Lagoudakis & Parr 2003) in closed form:

    A w = b,   A = sum_i phi_i (phi_i - gamma phibar_{i+1})^T,   b = sum_i phi_i r_i,
    phibar_{i+1} = sum_a pi(a|s_{i+1}) phi(s_{i+1}, a)   (0 after the episode's last step),

with a small ridge (``ridge`` x mean diagonal of sum_i phi_i phi_i^T). The features (:func:`q_features`) are the
(decision, candidate) pair features of the reward models plus the cross-fitted logged reward model and Monte-Carlo
return model themselves, so the fit is a target-specific linear correction of the logger's models.

Everything is a sum over episodes of small per-episode statistics (:func:`fqe_stats`: A (d, d), b (d,), and the
weighted feature sums whose products with w are the DR terms), so it streams part by part at flat memory, and the
bootstrap *refits* w in every replicate from the Poisson-weighted sums (:class:`FittedQ`): the interval then holds the
return model's own sampling error, which dominates WDR when few episodes carry the weight. Cross-fitting as for the
regressors: the episodes of fold f (context id parity) are valued with the w fitted on the other fold.
"""

from __future__ import annotations

import numpy as np

from bundlerl.evaluation.ope.estimators import OPEError

__all__ = ["RETURN_MODELS", "FQE_RIDGE", "q_features", "fqe_stats", "lstdq_solve", "FittedQ"]

RETURN_MODELS = ("mc", "fqe")
"""Return models of the per-trajectory DR / WDR; the first is the default. ``"mc"``: the logger's Monte-Carlo
return-to-go regressor, shared by all targets and fixed across replicates. ``"fqe"``: each target's linear fitted-Q
evaluation (this module), refitted per bootstrap replicate. On bench_ope's 10k-decision repeats (h18c's logs, 9 per
logger, 9 targets, the same bootstrap draws) fitted-Q lowered WDR's mean relative error (21.4% against 24.5%) but
narrowed its intervals more than its bias fell: coverage 81.5% against 85.8% of 162 (benchmarks/HISTORY.md), hence
not the default."""

FQE_RIDGE = 1e-3
"""Ridge of the LSTD-Q solve, relative to the mean diagonal of the features' Gram matrix (scale-free)."""


def q_features(pairs: np.ndarray, q_return: np.ndarray, q_reward: np.ndarray) -> np.ndarray:
    """(n, K, d) float64 features of every (decision, candidate): the pair features, the fitted return-to-go and
    reward models' predictions, and a constant; d = p + 3.

    :param pairs: (n, K, p) pair features (``bundlerl.evaluation.ope.reward_model.pair_features``).
    :param q_return: (n, K) Monte-Carlo return-to-go model. :param q_reward: (n, K) reward model.
    """
    n, K = q_return.shape
    return np.concatenate([np.asarray(pairs, np.float64), np.asarray(q_return, np.float64)[..., None],
                           np.asarray(q_reward, np.float64)[..., None], np.ones((n, K, 1))], axis=2)


def fqe_stats(episode: np.ndarray, step: np.ndarray, phi: np.ndarray, action: np.ndarray, reward: np.ndarray,
              target: np.ndarray, rho: np.ndarray, rho_prev: np.ndarray, horizon: int, gamma: float = 1.0
              ) -> dict[str, np.ndarray]:
    """Per-episode sufficient statistics of LSTD-Q and of the DR terms that use q = phi w.

    :param episode: (n,) episode index in [0, E); rows grouped by episode in step order, each episode complete.
    :param step: (n,) step index within the episode, < ``horizon``. :param phi: (n, K, d) :func:`q_features`.
    :param action: (n,) logged actions. :param reward: (n,) rewards. :param target: (n, K) the target's distribution.
    :param rho: (n,) cumulative importance weight up to and including the step; :param rho_prev: (n,) up to the
        step before (1 at an episode's first step). :param gamma: discount.
    :returns: ``A`` (E, d, d) sum phi_a (phi_a - gamma phibar_next)^T, ``b`` (E, d) sum phi_a r, ``G`` (E,) sum
        |phi_a|^2, ``PQ`` (E, H, d) rho phi_a and ``PV`` (E, H, d) rho_prev phibar per step (their products with w are
        the DR terms sum rho q_a and sum rho_prev v).
    """
    ep = np.asarray(episode, np.int64)
    n, K, d = phi.shape
    E = int(ep.max()) + 1 if n else 0
    t = np.asarray(step, np.int64)
    if n and t.max() >= horizon:
        raise OPEError(f"a step index {int(t.max())} is >= horizon={horizon}")
    phi_a = phi[np.arange(n), np.asarray(action, np.int64)]
    phibar = np.einsum("nk,nkd->nd", np.asarray(target, np.float64), phi)
    last = np.r_[ep[1:] != ep[:-1], True] if n else np.zeros(0, bool)
    nxt = np.concatenate([phibar[1:], np.zeros((1, d))])[:n]
    nxt[last] = 0.0
    Pa = np.zeros((E, horizon, d))
    Pd = np.zeros((E, horizon, d))
    Pa[ep, t] = phi_a
    Pd[ep, t] = phi_a - gamma * nxt
    PQ = np.zeros((E, horizon, d))
    PV = np.zeros((E, horizon, d))
    PQ[ep, t] = np.asarray(rho, np.float64)[:, None] * phi_a
    PV[ep, t] = np.asarray(rho_prev, np.float64)[:, None] * phibar
    b = np.zeros((E, d))
    np.add.at(b, ep, phi_a * np.asarray(reward, np.float64)[:, None])
    return {"A": np.einsum("ehd,ehk->edk", Pa, Pd), "b": b, "G": np.einsum("ehd,ehd->e", Pa, Pa), "PQ": PQ, "PV": PV}


def lstdq_solve(A: np.ndarray, b: np.ndarray, gram_trace: np.ndarray, ridge: float = FQE_RIDGE) -> np.ndarray:
    """(..., d) w solving (A + ridge * tr(G) / d * I) w = b, batched over leading axes.

    :param A: (..., d, d). :param b: (..., d). :param gram_trace: (...) trace of sum phi phi^T (the ridge's scale);
        0 (no data) gives w = 0.
    """
    A = np.asarray(A, np.float64)
    d = A.shape[-1]
    lam = ridge * np.asarray(gram_trace, np.float64) / d
    M = A + (lam[..., None, None] + 1e-12) * np.eye(d)
    try:
        return np.linalg.solve(M, np.asarray(b, np.float64)[..., None])[..., 0]
    except np.linalg.LinAlgError:  # a singular replicate: the least-norm solution, one system at a time
        flat_M, flat_b = M.reshape(-1, d, d), np.asarray(b, np.float64).reshape(-1, d)
        return np.stack([np.linalg.lstsq(m, v, rcond=None)[0] for m, v in zip(flat_M, flat_b)]).reshape(b.shape)


class FittedQ:
    """The LSTD-Q fit of one target, cross-fitted by fold and refitted per bootstrap replicate, accumulated part by
    part; afterwards the DR terms' rows ``Q`` (sum rho q_a) and ``V`` (sum rho_prev v) per step, for the full log and
    each replicate.

    :param B: bootstrap replicates. :param d: feature dimension. :param ridge: see :data:`FQE_RIDGE`.
    """

    def __init__(self, B: int, d: int, ridge: float = FQE_RIDGE):
        self.B, self.d, self.ridge = int(B), int(d), float(ridge)
        self.A = np.zeros((B + 1, 2, d, d))  # index 0: the full log; 1..B: the replicates
        self.b = np.zeros((B + 1, 2, d))
        self.G = np.zeros((B + 1, 2))
        self.PQ = np.zeros((B + 1, 2, 0, d))
        self.PV = np.zeros((B + 1, 2, 0, d))

    def add(self, stats: dict[str, np.ndarray], fold: np.ndarray, boot: np.ndarray) -> None:
        """Add one part's :func:`fqe_stats` of E episodes: ``fold`` (E,) in {0, 1}, ``boot`` (B, E) the episodes'
        Poisson weights in each replicate."""
        E, H, d = stats["PQ"].shape
        if H > self.PQ.shape[2]:  # later steps: zero terms so far (no episode reached them)
            pad = ((0, 0), (0, 0), (0, H - self.PQ.shape[2]), (0, 0))
            self.PQ, self.PV = np.pad(self.PQ, pad), np.pad(self.PV, pad)
        wts = np.concatenate([np.ones((1, E)), np.asarray(boot, np.float64)])  # (B + 1, E)
        for f in (0, 1):
            wf = wts * (np.asarray(fold) == f)[None, :]
            self.A[:, f] += (wf @ stats["A"].reshape(E, d * d)).reshape(-1, d, d)
            self.b[:, f] += wf @ stats["b"]
            self.G[:, f] += wf @ stats["G"]
            self.PQ[:, f, :H] += (wf @ stats["PQ"].reshape(E, H * d)).reshape(-1, H, d)
            self.PV[:, f, :H] += (wf @ stats["PV"].reshape(E, H * d)).reshape(-1, H, d)

    def weights(self) -> np.ndarray:
        """(B + 1, 2, d) w per replicate (0: the full log) and fold; a fold without data uses both folds' sums."""
        A, b, G = self.A, self.b, self.G
        w = np.empty_like(b)
        for f in (0, 1):
            empty = G[:, f] <= 0
            Af = np.where(empty[:, None, None], A.sum(axis=1), A[:, f])
            bf = np.where(empty[:, None], b.sum(axis=1), b[:, f])
            Gf = np.where(empty, G.sum(axis=1), G[:, f])
            w[:, f] = lstdq_solve(Af, bf, Gf, self.ridge)
        return w

    def terms(self, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """``Q`` and ``V``, each (B + 1, H): per replicate (0: the full log) and step, sum rho q_a and sum rho_prev v
        with each fold's episodes valued by the other fold's w."""
        w = self.weights()
        H = self.PQ.shape[2]
        Q = np.einsum("bfhd,bfd->bh", self.PQ, w[:, ::-1])  # fold f's terms times w of fold 1 - f
        V = np.einsum("bfhd,bfd->bh", self.PV, w[:, ::-1])
        if horizon > H:
            Q, V = np.pad(Q, ((0, 0), (0, horizon - H))), np.pad(V, ((0, 0), (0, horizon - H)))
        return Q[:, :horizon], V[:, :horizon]
