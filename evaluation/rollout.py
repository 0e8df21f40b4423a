"""Roll a policy out on the batched env and summarise per-episode metrics with 95% CIs.

    >>> from bundlerl.agents.baselines import ComplementGreedyPolicy
    >>> res = evaluate(ComplementGreedyPolicy(), "small", n_episodes=200, seed=0)
    >>> print(res.markdown())

Unbiased episode sampling: the ``n_episodes`` are split over the rows in advance (row i runs
its quota of consecutive episodes) rather than "the first n episodes to finish", which would
over-represent short episodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from bundlerl.agents.policy import Policy
from bundlerl.evaluation.metrics import session_summary
from bundlerl.evaluation.seeds import action_rng
from bundlerl.evaluation.stats import Estimate, EvaluationError
from bundlerl.utils.args import need_callable, need_int, need_optional_bool, shown
from bundlerl.utils.progress import progress_bar, progress_enabled

__all__ = ["EvalResult", "evaluate"]


@dataclass
class EvalResult:
    """Per-episode metrics of one evaluation (arrays (n_episodes,), episodes in row-then-time order).

    The bundle log has one row per shown bundle: ``log_episode`` (episode index), ``log_step``,
    ``log_items`` (K_max,) int32 -1 padded, ``log_click``, ``log_n_bought``, ``log_propensity``.
    """

    policy: str
    preset: str
    seed: "int | np.random.SeedSequence"
    """The env seed or purpose-tagged stream the episodes came from (``bundlerl.evaluation.seeds``)."""
    returns: np.ndarray
    clicks: np.ndarray
    purchases: np.ndarray
    """Shown bundles that led to at least one item bought."""
    items: np.ndarray
    revenue: np.ndarray
    length: np.ndarray
    """Shown bundles (shopper-facing steps) in the episode."""
    truncated: np.ndarray
    """True when the horizon ended the episode (not the shopper)."""
    invalid: np.ndarray
    """Masked actions taken in the episode."""
    uses_simulator_truth: bool = False
    log_episode: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    log_step: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    log_items: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int32))
    log_click: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    log_n_bought: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    log_propensity: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))

    @property
    def n_episodes(self) -> int:
        return int(self.returns.size)

    def summary(self) -> dict[str, Estimate]:
        """Mean and 95% CI per session metric (:func:`bundlerl.evaluation.metrics.session_summary`)."""
        return session_summary(self)

    def markdown(self) -> str:
        """This result as a one-row markdown table (:func:`bundlerl.evaluation.report.markdown_table`)."""
        from bundlerl.evaluation.report import markdown_table

        return markdown_table([self])


def evaluate(
    policy: "Policy | Callable[..., Policy]",
    preset="default",
    n_episodes: int = 1000,
    seed: "int | np.random.SeedSequence" = 0,
    num_envs: int = 256,
    *,
    deterministic: bool = True,
    action_mode: str = "bundle",
    progress: bool | None = None,
    keep_log: bool = True,
) -> EvalResult:
    """Run ``n_episodes`` episodes of ``policy`` on a :class:`bundlerl.env.vec_env.BundleRecVecEnv` and collect metrics.

    :param policy: a Policy, or a factory ``f(vec_env) -> Policy`` (oracles need the vec env's truth).
    :param preset: preset name or EnvConfig.
    :param n_episodes: episodes to collect (>= 1); split over ``min(num_envs, n_episodes)`` rows.
    :param seed: env seed (row i: ``seed + i``), or a purpose-tagged stream (``bundlerl.evaluation.seeds.env_stream``:
        row i its child ``(i,)``; what the commands pass); also seeds the action-sampling generator
        (``bundlerl.evaluation.seeds.action_rng``).
    :param num_envs: batch size N.
    :param deterministic: passed to ``policy.act``; when False actions are sampled with a generator seeded by ``seed``.
    :param action_mode: ``"bundle"`` or ``"compose"``.
    :param progress: show a tqdm bar over episodes (None: unless ``$BUNDLERL_PROGRESS`` is off,
        ``bundlerl.utils.progress``).
    :param keep_log: keep the per-step bundle log.
    :raises EvaluationError: bad counts, or a factory that returns no Policy.
    """
    if not isinstance(policy, Policy):
        need_callable(policy, "policy", "evaluate", "a bundlerl Policy, or a factory f(vec_env) -> Policy",
                      error=EvaluationError)
    need_int(n_episodes, "n_episodes", "evaluate", minimum=1, error=EvaluationError)
    need_int(num_envs, "num_envs", "evaluate", minimum=1, error=EvaluationError)
    if not isinstance(seed, np.random.SeedSequence):
        need_int(seed, "seed", "evaluate", minimum=0, error=EvaluationError)
    need_optional_bool(progress, "progress", "evaluate", error=EvaluationError)
    for name, value in (("deterministic", deterministic), ("keep_log", keep_log)):
        if not isinstance(value, (bool, np.bool_)):
            raise EvaluationError(f"evaluate({name}={shown(value)}): {name} must be True or False")
    from bundlerl.env.vec_env import BundleRecVecEnv

    n_rows = min(num_envs, n_episodes)
    venv = BundleRecVecEnv(preset, num_envs=n_rows, seed=seed, action_mode=action_mode)
    pol = policy if isinstance(policy, Policy) else policy(venv)
    if not isinstance(pol, Policy):
        raise EvaluationError(f"policy factory returned {type(pol).__name__}; it must return a bundlerl.agents.policy.Policy")
    quota = np.full(n_rows, n_episodes // n_rows, np.int64)
    quota[: n_episodes % n_rows] += 1
    offset = np.concatenate([[0], np.cumsum(quota)[:-1]])  # episode index of each row's first episode
    done_count = np.zeros(n_rows, np.int64)
    acc = {k: np.zeros(n_rows, np.float64) for k in ("ret", "clk", "pur", "itm", "rev", "len", "inv")}
    out = {k: np.zeros(n_episodes, np.float64) for k in acc}
    out_trunc = np.zeros(n_episodes, bool)
    logs: dict[str, list] = {k: [] for k in ("ep", "step", "items", "click", "nb", "prop")}
    rng = action_rng(seed)
    obs = venv.reset()
    pol.reset()
    bar = None
    if progress_enabled(progress):
        bar = progress_bar(n_episodes, f"evaluate {getattr(pol, 'name', 'policy')}", unit="ep", leave=False)
    try:
        while (done_count < quota).any():
            actions, props = pol.act(obs, deterministic=deterministic, rng=rng)
            obs, rewards, dones, infos = venv.step(actions)
            o = venv.last_outcome
            live = done_count < quota
            acc["ret"] += rewards
            acc["clk"] += o.click
            acc["pur"] += o.n_bought > 0
            acc["itm"] += o.n_bought
            acc["rev"] += o.revenue
            acc["len"] += o.responded
            acc["inv"] += o.invalid
            if keep_log:
                rows = np.flatnonzero(live & o.responded)
                if rows.size:
                    logs["ep"].append(offset[rows] + done_count[rows])
                    logs["step"].append(acc["len"][rows].astype(np.int32) - 1)
                    logs["items"].append(o.shown[rows].astype(np.int32))
                    logs["click"].append(o.click[rows].copy())
                    logs["nb"].append(o.n_bought[rows].astype(np.int32))
                    logs["prop"].append(np.asarray(props, np.float64)[rows])
            fin = np.flatnonzero(dones & live)
            if fin.size:
                ep = offset[fin] + done_count[fin]
                for k in acc:
                    out[k][ep] = acc[k][fin]
                out_trunc[ep] = o.truncated[fin] & ~o.terminated[fin]
                done_count[fin] += 1
                if bar is not None:
                    bar.update(int(fin.size))
            ended = np.flatnonzero(dones)
            if ended.size:
                for k in acc:
                    acc[k][ended] = 0
                pol.reset(ended)
    finally:
        if bar is not None:
            bar.close()
        venv.close()
    cat = lambda xs, dt, shape=(0,): np.concatenate(xs).astype(dt) if xs else np.zeros(shape, dt)  # noqa: E731
    return EvalResult(
        policy=getattr(pol, "name", type(pol).__name__),
        preset=venv.config.name,
        seed=seed,
        returns=out["ret"], clicks=out["clk"], purchases=out["pur"], items=out["itm"], revenue=out["rev"],
        length=out["len"], truncated=out_trunc, invalid=out["inv"],
        uses_simulator_truth=bool(getattr(pol, "uses_simulator_truth", False)),
        log_episode=cat(logs["ep"], np.int64), log_step=cat(logs["step"], np.int32),
        log_items=cat(logs["items"], np.int32, (0, venv.config.K_max)), log_click=cat(logs["click"], bool),
        log_n_bought=cat(logs["nb"], np.int32), log_propensity=cat(logs["prop"], np.float64),
    )
