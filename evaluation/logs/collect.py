"""Collecting a log: a (exploring) policy plays simulated shoppers; every decision goes to a log folder in the schema
of :mod:`bundlerl.evaluation.logs.schema`, with the simulator's ground truth in ``truth/``.

The episodes come from the ``LOGGING`` seed stream (``bundlerl.evaluation.seeds``), disjoint from training and every
evaluation stream; the logged actions are sampled from the policy's distribution with the stream's own action
generator. Ground truth (per decision, the exact expected reward of every candidate under the shopper's true hidden
state) is what :class:`bundlerl.agents.oracles.OneStepOracle` scores with: the oracle's scoring is reused, not
re-derived.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bundlerl.agents.oracles import OneStepOracle
from bundlerl.agents.policy import Policy, check_probabilities, choose_actions
from bundlerl.env.observation import CANDIDATES_KEY, HISTORY_KEY, MASK_KEY, PROFILE_KEY, SESSION_KEY, observation_spec
from bundlerl.evaluation.logs.schema import LOG_JSON, PART_GLOB, Dims, LogError
from bundlerl.evaluation.logs.writer import LogWriter
from bundlerl.evaluation.seeds import Purpose, action_rng, env_stream, stream_label
from bundlerl.utils.progress import progress_bar, progress_enabled

__all__ = ["collect_logs", "check_log_folder"]


def check_log_folder(out: str | Path) -> Path:
    """``out`` as a Path, once it is sure it holds no log yet (logs are never mixed by accident: a second log's parts
    would join the first's). ``bundlerl log`` runs it at parse time, before a policy is loaded or fitted.

    :raises LogError: ``out`` holds part files (a log, or an unfinished one without ``log.json``)."""
    out = Path(out)
    if out.is_dir() and any(out.glob(PART_GLOB)):
        what = "a log" if (out / LOG_JSON).is_file() else f"an unfinished log (part files, no {LOG_JSON}: interrupted)"
        raise LogError(f"{out} already holds {what}; choose an empty folder (or delete it)")
    return out


def collect_logs(policy: Policy, preset="default", n_episodes: int = 1000, out: str | Path = "logs", *,
                 seed: "int | np.random.SeedSequence" = 0, num_envs: int = 256, truth: bool = True,
                 rows_per_part: int = 50_000, progress: bool | None = None) -> dict:
    """Log ``n_episodes`` episodes of ``policy`` (its actions sampled) on ``preset`` into the folder ``out``.

    :param policy: a Policy (its full distribution is logged; give it exploration, ``bundlerl.agents.exploration``).
    :param preset: preset name or EnvConfig (bundle action mode).
    :param seed: an integer (the ``LOGGING`` stream of that seed) or a SeedSequence stream.
    :param num_envs: sessions stepped together; episodes are split over rows in advance (as in
        ``bundlerl.evaluation.rollout``), so short episodes are not over-represented.
    :param truth: also write the ground truth to ``out/truth/``.
    :returns: the ``log.json`` content: policy, preset, stream, episodes, rows, parts, seconds.
    :raises LogError: bad counts, or ``out`` already holding parts (logs are not mixed by accident).
    """
    from bundlerl.env.vec_env import BundleRecVecEnv

    if n_episodes < 1 or num_envs < 1:
        raise LogError(f"n_episodes={n_episodes}, num_envs={num_envs}; both must be >= 1")
    out = check_log_folder(out)
    stream = env_stream(Purpose.LOGGING, seed) if not isinstance(seed, np.random.SeedSequence) else seed
    n_rows = min(num_envs, n_episodes)
    venv = BundleRecVecEnv(preset, num_envs=n_rows, seed=stream)
    oracle = OneStepOracle(venv) if truth else None
    space = venv.observation_space.spaces
    K, F = space[CANDIDATES_KEY].shape
    dims = Dims(P=space[PROFILE_KEY].shape[0], S=space[SESSION_KEY].shape[0], K=K, F=F, M=venv.config.K_max)
    spec = observation_spec(dims.P, dims.K, dims.F)
    quota = np.full(n_rows, n_episodes // n_rows, np.int64)
    quota[: n_episodes % n_rows] += 1
    offset = np.concatenate([[0], np.cumsum(quota)[:-1]])
    done_count = np.zeros(n_rows, np.int64)
    step_no = np.zeros(n_rows, np.int32)
    rng = action_rng(stream)
    pending: list[dict] = []  # step batches of episodes not yet complete
    pending_rows = 0
    t0 = time.perf_counter()
    bar = progress_bar(n_episodes, f"log {policy.name}", unit="ep", leave=False) if progress_enabled(progress) else None
    obs = venv.reset()
    policy.reset()
    try:
        with LogWriter(out, dims, spec, rows_per_part=rows_per_part, truth=truth) as writer:
            while (done_count < quota).any():
                probs = check_probabilities(policy.action_probabilities(obs), obs, policy.name)
                actions = choose_actions(probs, deterministic=False, rng=rng)
                mask = np.asarray(obs[MASK_KEY]) > 0
                items = np.asarray(venv.candidate_items, np.int64).copy()
                er = None
                if oracle is not None:
                    er = oracle.scores(venv.model, venv.state, np.where(mask[..., None], items, -1))
                    er = np.where(mask, er, np.nan)
                before = {k: np.asarray(v).copy() for k, v in obs.items()}
                obs, rewards, dones, _ = venv.step(actions)
                o = venv.last_outcome
                live = np.flatnonzero(done_count < quota)
                if live.size:
                    batch = {
                        "context_id": offset[live] + done_count[live], "step": step_no[live],
                        "spec_version": np.full(live.size, spec["version"], np.int16),
                        "profile": before[PROFILE_KEY][live], "history": before[HISTORY_KEY][live],
                        "session": before[SESSION_KEY][live], "candidates": before[CANDIDATES_KEY][live],
                        "action_mask": mask[live], "item_ids": items[live], "action": actions[live],
                        "action_prob": probs[live], "pscore": probs[live, actions[live]],
                        "click": o.click[live], "n_bought": o.n_bought[live],
                        "bought_items": np.where(o.bought[live], o.shown[live], -1), "revenue": o.revenue[live],
                        "reward": rewards[live], "terminated": o.terminated[live],
                        "truncated": o.truncated[live] & ~o.terminated[live],
                        "_done": dones[live],
                    }
                    if er is not None:
                        batch["_er"] = er[live]
                    pending.append(batch)
                    pending_rows += live.size
                step_no += 1
                fin = np.flatnonzero(dones & (done_count < quota))
                if fin.size:
                    done_count[fin] += 1
                    if bar is not None:
                        bar.update(int(fin.size))
                if dones.any():
                    step_no[dones] = 0
                    policy.reset(np.flatnonzero(dones))
                if pending_rows >= min(rows_per_part, 4096) or not (done_count < quota).any():
                    pending, pending_rows = _emit_complete(pending, writer)
            # log.json (written by close, last): what wrote the log; its counts come from the files
            writer.info = {"policy": policy.name, "preset": venv.config.name, "stream": stream_label(stream),
                           "seed": int(stream.entropy), "episodes": int(n_episodes), "truth": bool(truth),
                           "seconds": round(time.perf_counter() - t0, 2)}
        return {**writer.info, "rows": writer.rows_written, "parts": len(writer.parts), "obs_spec": spec,
                "dims": dims.to_dict()}
    finally:
        if bar is not None:
            bar.close()
        venv.close()


def _emit_complete(pending: list[dict], writer: LogWriter) -> tuple[list[dict], int]:
    """Write the rows of the episodes that have ended (grouped by episode, in step order); keep the others."""
    cat = {k: np.concatenate([b[k] for b in pending]) for k in pending[0]}
    ended = np.unique(cat["context_id"][cat["_done"]])
    keep = np.isin(cat["context_id"], ended)
    idx = np.flatnonzero(keep)
    idx = idx[np.lexsort((cat["step"][idx], cat["context_id"][idx]))]
    if idx.size:
        rows = {k: v[idx] for k, v in cat.items() if not k.startswith("_")}
        writer.write(rows, cat["_er"][idx] if "_er" in cat else None)
    rest = np.flatnonzero(~keep)
    if not rest.size:
        return [], 0
    return [{k: v[rest] for k, v in cat.items()}], int(rest.size)
