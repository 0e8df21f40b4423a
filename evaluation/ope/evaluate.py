"""Off-policy evaluation of target policies on a log, streamed part by part (memory: one part, whatever the log's
size), with bootstrap confidence intervals, effective sample sizes and the unsupported share.

Two passes over the log (``bundlerl.evaluation.logs.LogDataset``): the first fits the cross-fitted reward and
return-to-go models (``bundlerl.evaluation.ope.reward_model``) on at most ``max_fit_rows`` decisions per fold; the
second computes, per part and target, the estimators' terms (``bundlerl.evaluation.ope.estimators``) and adds them to
the full sums and to ``n_boot`` bootstrap replicates (and, per trajectory, the episodes' second moments for the
studentized intervals and for RegDR, and, with ``return_model="fqe"``, each target's fitted-Q statistics). The bootstrap is a
Poisson bootstrap over episodes (contexts): each replicate weighs every episode by a Poisson(1) draw (Hanley & MacGibbon 2006; Chamandy et al. 2012), which
resamples the episodes as units (a decision's neighbours in its episode are not independent of it) and needs no
second pass; per decision the interval is the replicates' percentile interval, per trajectory by default the
symmetric bootstrap-t (``bundlerl.evaluation.ope.intervals``). The draws are shared by all targets. What the
per-decision intervals cover (the value on the logged contexts, or on their distribution) is
``bundlerl.evaluation.ope.intervals``'s choice.

Ground truth, when the log has it and ``truth=True``: per decision, the mean over logged decisions of
sum_a pi_e(a|x) E[r|x, a] (validation only; simulated logs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from bundlerl.agents.policy import Policy, check_probabilities
from bundlerl.evaluation.logs.loader import LogDataset, LogPart
from bundlerl.evaluation.ope.estimators import (
    DECISION_ESTIMATORS,
    DECISION_TERMS,
    MOMENT_ESTIMATORS,
    TRAJECTORY_ESTIMATORS,
    OPEError,
    SwitchDR,
    cumulative_weights,
    decision_ess,
    decision_terms,
    importance_weights,
    trajectory_ess,
    trajectory_terms,
    unsupported_mass,
)
from bundlerl.evaluation.ope.fitted_q import RETURN_MODELS, FittedQ, fqe_stats, q_features
from bundlerl.evaluation.ope.intervals import (
    INTERVALS,
    TRAJECTORY_INTERVALS,
    EpisodeMoments,
    decision_replicates,
    percentile_estimate,
    studentized_estimate,
)
from bundlerl.evaluation.ope.reward_model import CrossFitModel, pair_dim, pair_features, returns_to_go
from bundlerl.evaluation.stats import Estimate
from bundlerl.utils.progress import progress_bar, progress_enabled

__all__ = ["OPEConfig", "OPEResult", "off_policy_evaluate", "ESTIMATOR_NAMES", "RETURN_MODELS"]

ESTIMATOR_NAMES = tuple(c.name for c in DECISION_ESTIMATORS + TRAJECTORY_ESTIMATORS + MOMENT_ESTIMATORS)
"""Every estimator's name, per decision then per trajectory (table order)."""

_COLUMNS = ("context_id", "step", "session", "candidates", "action_mask", "action", "action_prob", "pscore", "reward",
            "profile", "history")


@dataclass(frozen=True)
class OPEConfig:
    """Settings of :func:`off_policy_evaluate`.

    :param clip: largest importance weight (per decision) and cumulative weight (per trajectory); inf: no clipping.
    :param tau: Switch-DR's threshold on the weight.
    :param gamma: discount of the per-trajectory value (1: the undiscounted episode return, as ``evaluate`` reports).
    :param n_boot: bootstrap replicates. :param level: confidence level of the intervals.
    :param interval: what the per-decision intervals cover: ``"logged"`` the target's value on the logged contexts
        (the default; the per-decision ground truth's estimand), ``"population"`` its value on the distribution the
        contexts came from (wider: the contexts' own spread enters). See ``bundlerl.evaluation.ope.intervals``.
    :param seed: seed of the bootstrap draws and the regressors.
    :param allow_unsupported: estimate even when a target puts mass on actions the logger never took (biased);
        otherwise that raises. The unsupported share is reported either way.
    :param trajectory_interval: form of the per-trajectory intervals, one of ``TRAJECTORY_INTERVALS``
        (``bundlerl.evaluation.ope.intervals``): the symmetric studentized bootstrap (default), the equal-tailed one,
        or the percentile one. The fitted-Q return model's DR / WDR always get the percentile interval (their model
        moves per replicate).
    :param return_model: the per-trajectory DR / WDR's return model, one of :data:`RETURN_MODELS` (RegDR always
        uses the Monte-Carlo one: it reads the episodes' moments of those terms).
    :param keep_replicates: keep the per-trajectory estimators' bootstrap replicates and standard errors in
        ``OPEResult.extra["replicates"]`` (for studying interval forms; bench_ope).
    :param max_fit_rows: decisions per fold the models fit on. :param truth: compute the per-decision ground truth
        (logs with ``truth/``). :param batch: observations per call of a target policy.
    """

    clip: float = np.inf
    tau: float = 10.0
    gamma: float = 1.0
    n_boot: int = 200
    level: float = 0.95
    interval: str = INTERVALS[0]
    trajectory_interval: str = TRAJECTORY_INTERVALS[0]
    return_model: str = RETURN_MODELS[0]
    seed: int = 0
    allow_unsupported: bool = False
    keep_replicates: bool = False
    max_fit_rows: int = 100_000
    truth: bool = False
    batch: int = 8192
    progress: bool | None = None

    def __post_init__(self):
        if not (self.clip > 0) or not (self.tau >= 0) or not (0 <= self.gamma <= 1):
            raise OPEError(f"clip={self.clip} must be > 0, tau={self.tau} >= 0 and gamma={self.gamma} in [0, 1]")
        if self.n_boot < 2 or not (0 < self.level < 1) or self.batch < 1:
            raise OPEError(f"n_boot={self.n_boot} must be >= 2, level={self.level} in (0, 1), batch >= 1")
        if self.interval not in INTERVALS:
            raise OPEError(f"interval={self.interval!r}; it must be one of {', '.join(INTERVALS)}")
        if self.trajectory_interval not in TRAJECTORY_INTERVALS:
            raise OPEError(f"trajectory_interval={self.trajectory_interval!r}; it must be one of "
                           f"{', '.join(TRAJECTORY_INTERVALS)}")
        if self.return_model not in RETURN_MODELS:
            raise OPEError(f"return_model={self.return_model!r}; it must be one of {', '.join(RETURN_MODELS)}")


@dataclass
class OPEResult:
    """One target's estimates: ``estimates`` estimator name -> Estimate (value and the bootstrap interval; ``n`` the
    decisions, or the episodes for per-trajectory estimators), the effective sample sizes, the unsupported share."""

    policy: str
    estimates: dict[str, Estimate]
    n_decisions: int
    n_episodes: int
    ess_decisions: float
    ess_episodes: float
    unsupported_share: float
    truth: float | None = None
    """Per-decision ground truth (mean expected reward of the target on the logged decisions), when computed."""
    interval: str = INTERVALS[0]
    """What the per-decision intervals cover (``bundlerl.evaluation.ope.intervals.INTERVALS``)."""
    extra: dict = field(default_factory=dict)
    """``"percentile"``: name -> Estimate, the per-trajectory estimators' percentile intervals when the reported ones
    are studentized (same replicates; for comparison)."""

    def to_dict(self) -> dict:
        out = {"policy": self.policy, "estimates": {k: v.to_dict() for k, v in self.estimates.items()},
               "n_decisions": self.n_decisions, "n_episodes": self.n_episodes,
               "ess_decisions": self.ess_decisions, "ess_episodes": self.ess_episodes,
               "unsupported_share": self.unsupported_share, "truth": self.truth, "interval": self.interval}
        if self.extra.get("percentile"):
            out["trajectory_percentile"] = {k: v.to_dict() for k, v in self.extra["percentile"].items()}
        if self.extra.get("replicates"):
            out["trajectory_replicates"] = self.extra["replicates"]
        return out


class _Acc:
    """Full and bootstrap sums of one target."""

    def __init__(self, B: int, fq: FittedQ | None = None):
        self.B = B
        self.fq = fq
        self.mom = EpisodeMoments(B)
        self.d = np.zeros(len(DECISION_TERMS) + 1)  # + unsupported mass
        self.db = np.zeros((B, len(DECISION_TERMS) + 1))
        self.t = np.zeros((4, 1))
        self.tb = np.zeros((B, 4, 1))
        self.n_ep = 0.0
        self.n_epb = np.zeros(B)
        self.e1 = self.e2 = 0.0
        self.truth = 0.0

    def grow(self, H: int) -> None:
        if H > self.t.shape[1]:
            pad = H - self.t.shape[1]
            # the W row carries each ended episode's last weight: pad it with the last column
            self.t = np.concatenate([self.t, np.repeat(self.t[:, -1:], pad, axis=1) * np.array([[0], [1], [0], [0]])],
                                    axis=1)
            self.tb = np.concatenate(
                [self.tb, np.repeat(self.tb[:, :, -1:], pad, axis=2) * np.array([[0], [1], [0], [0]])[None]], axis=2)


def _sorted_part(part: LogPart) -> tuple[dict, np.ndarray]:
    """The part's columns grouped by context in step order, and each row's episode index in [0, E)."""
    c = part.columns
    order = np.lexsort((c["step"], c["context_id"]))
    cols = {k: v[order] for k, v in c.items()}
    _, ep = np.unique(cols["context_id"], return_inverse=True)
    return cols, ep.reshape(-1)


def _target_probs(policy: Policy, obs: Mapping[str, np.ndarray], batch: int) -> np.ndarray:
    n = len(obs["action_mask"])
    out = []
    for lo in range(0, n, batch):
        sub = {k: v[lo:lo + batch] for k, v in obs.items()}
        out.append(check_probabilities(policy.action_probabilities(sub), sub, policy.name))
    return np.concatenate(out) if out else np.zeros((0, obs["action_mask"].shape[1]))


def _fit_models(logs: LogDataset, cfg: OPEConfig, bar) -> tuple[CrossFitModel, CrossFitModel]:
    rm = CrossFitModel(cfg.max_fit_rows, seed=cfg.seed)
    gm = CrossFitModel(cfg.max_fit_rows, seed=cfg.seed)
    for part in logs.parts(_COLUMNS):
        c, ep = _sorted_part(part)
        X = pair_features(c["candidates"], c["session"], c["action_mask"], c["action"])
        rm.add(c["context_id"], X, c["reward"])
        gm.add(c["context_id"], X, returns_to_go(ep, c["reward"], cfg.gamma))
        if bar is not None:
            bar.update(1)
        if rm.full:
            break
    return rm.fit(), gm.fit()


def off_policy_evaluate(logs: "LogDataset | str", policies: Mapping[str, Policy], config: OPEConfig = OPEConfig()
                        ) -> list[OPEResult]:
    """Every estimator of ``bundlerl.evaluation.ope.estimators`` for each target in ``policies`` (name -> Policy)
    on the log ``logs`` (a folder or an open :class:`LogDataset`).

    :raises OPEError: a target with mass where the logger had none (unless ``config.allow_unsupported``), no targets.
    :raises LogError: a damaged log (file, row, column named), ``config.truth`` on a log without ground truth.
    """
    if not policies:
        raise OPEError("no target policies to evaluate")
    logs = logs if isinstance(logs, LogDataset) else LogDataset.open(logs)
    cfg = config
    B = cfg.n_boot
    n_parts = len(logs.part_paths)
    bar = progress_bar(2 * n_parts, "off-policy evaluation", unit="part", leave=False) \
        if progress_enabled(cfg.progress) else None
    try:
        rm, gm = _fit_models(logs, cfg, bar)
        if bar is not None:
            bar.n = n_parts
            bar.refresh()
        fqe = cfg.return_model == "fqe"
        acc = {name: _Acc(B, FittedQ(B, pair_dim(logs.dims) + 3) if fqe else None) for name in policies}
        rng = np.random.default_rng([cfg.seed, 0x0BE])
        K = logs.dims.K
        for part in logs.parts(_COLUMNS, truth=cfg.truth):
            c, ep = _sorted_part(part)
            n, E = len(ep), int(ep.max()) + 1
            H = int(c["step"].max()) + 1
            obs = LogPart(part.path, c).observation()
            Xall = pair_features(c["candidates"], c["session"], c["action_mask"])
            q_r = rm.predict(c["context_id"], Xall, K).reshape(n, K)
            q_g = gm.predict(c["context_id"], Xall, K).reshape(n, K)
            phi = q_features(Xall.reshape(n, K, -1), q_g, q_r) if fqe else None
            del Xall
            start = np.r_[True, ep[1:] != ep[:-1]]
            fold = c["context_id"][start] % 2  # each episode's cross-fitting fold, as the regressors'
            truth = None
            if part.truth is not None:
                order = np.lexsort((part.columns["step"], part.columns["context_id"]))
                truth = np.nan_to_num(part.truth[order], nan=0.0)
            boot = rng.poisson(1.0, size=(B, E)).astype(np.float64)
            a, ps, r = c["action"].astype(np.int64), c["pscore"], c["reward"]
            for name, pol in policies.items():
                s = acc[name]
                pe = _target_probs(pol, obs, cfg.batch)
                uns = unsupported_mass(pe, c["action_prob"])
                if not cfg.allow_unsupported and (uns > 1e-9).any():
                    i = int(np.flatnonzero(uns > 1e-9)[0])
                    raise OPEError(
                        f"{name} puts {uns.mean():.1%} of its mass (on the decisions of {part.path.name}; e.g. row "
                        f"{i}: {uns[i]:.3g}) on candidates the logging policy never shows: no estimator can "
                        "see their rewards. Log with exploration (--epsilon, --floor), or pass allow_unsupported=True "
                        "to estimate anyway (biased)")
                dt = np.concatenate([decision_terms(r, a, ps, pe, q_r, clip=cfg.clip, tau=cfg.tau), uns[:, None]],
                                    axis=1)
                per_ep = np.zeros((E, dt.shape[1]))
                np.add.at(per_ep, ep, dt)
                s.d += per_ep.sum(axis=0)
                s.db += boot @ per_ep
                ratio = importance_weights(pe, a, ps)
                v = (pe * q_g).sum(axis=1)
                s.grow(H)
                Hs = s.t.shape[1]
                terms, final, _ = trajectory_terms(ep, ratio, r, q_g[np.arange(n), a], v, Hs, clip=cfg.clip)
                s.t += terms.sum(axis=0)
                s.tb += np.einsum("be,eth->bth", boot, terms)
                s.mom.add(terms, boot)  # the studentized intervals' and RegDR's second moments
                if fqe:
                    t, rho, rho_prev = cumulative_weights(ep, ratio, clip=cfg.clip)
                    s.fq.add(fqe_stats(ep, t, phi, a, r, pe, rho, rho_prev, Hs, cfg.gamma), fold, boot)
                s.n_ep += E
                s.n_epb += boot.sum(axis=1)
                s.e1 += final.sum()
                s.e2 += (final ** 2).sum()
                if truth is not None:
                    s.truth += float((pe * truth).sum())
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return [_result(name, acc[name], cfg, logs.n_rows) for name in policies]


def _result(name: str, s: _Acc, cfg: OPEConfig, n_rows: int) -> OPEResult:
    full = dict(zip(DECISION_TERMS, s.d))
    estimates = {}
    for cls in DECISION_ESTIMATORS:
        est = cls(clip=cfg.clip, tau=cfg.tau) if cls is SwitchDR else cls(clip=cfg.clip)
        reps = decision_replicates(est, s.d, s.db, cfg.interval)
        estimates[est.name] = percentile_estimate(est.value(full), reps, cfg.level, int(full["n"]))
    t, tb = s.t, s.tb
    if s.fq is not None:  # the fitted-Q rows replace the Monte-Carlo model's (DR-traj and WDR only use them)
        Q, V = s.fq.terms(t.shape[1])
        t, tb = t.copy(), tb.copy()
        t[2], t[3] = Q[0], V[0]
        tb[:, 2], tb[:, 3] = Q[1:], V[1:]
    percentile, kept = {}, {}
    s.mom.grow(t.shape[1])
    for cls in TRAJECTORY_ESTIMATORS + MOMENT_ESTIMATORS:
        est = cls(gamma=cfg.gamma, clip=cfg.clip)
        if cls in MOMENT_ESTIMATORS:  # functions of the episodes' moments (the Monte-Carlo return model's terms)
            value = est.value_moments(s.mom.M[0])
            reps = np.array([est.value_moments(s.mom.M[b + 1]) for b in range(s.B)])
            grads = [est.gradient_moments(s.mom.M[b]) for b in range(s.B + 1)] \
                if cfg.trajectory_interval != "percentile" else None
        else:
            value = est.value(t, s.n_ep)
            reps = np.array([est.value(tb[b], s.n_epb[b]) for b in range(s.B)])
            grads = [est.gradient(s.t, s.n_ep)] + [est.gradient(s.tb[b], s.n_epb[b]) for b in range(s.B)] \
                if cfg.trajectory_interval != "percentile" and not (est.uses_model and s.fq is not None) else None
        if grads is None:
            estimates[est.name] = percentile_estimate(value, reps, cfg.level, int(s.n_ep))
            continue
        se = s.mom.se(0, grads[0])
        se_reps = np.array([s.mom.se(b + 1, grads[b + 1]) for b in range(s.B)])
        estimates[est.name] = studentized_estimate(value, se, reps, se_reps, cfg.level, int(s.n_ep),
                                                   symmetric=cfg.trajectory_interval == "symmetric")
        percentile[est.name] = percentile_estimate(value, reps, cfg.level, int(s.n_ep))
        if cfg.keep_replicates:
            kept[est.name] = {"reps": reps.tolist(), "se": se, "se_reps": se_reps.tolist()}
    n = max(full["n"], 1.0)
    return OPEResult(name, estimates, int(full["n"]), int(s.n_ep), decision_ess(full), trajectory_ess(s.e1, s.e2),
                     float(s.d[-1] / n), float(s.truth / n) if cfg.truth else None, cfg.interval,
                     {k: v for k, v in (("percentile", percentile), ("replicates", kept)) if v})
