"""The values pinned by the golden snapshots: ONE compute function per snapshot, shared by
``tests/test_golden.py`` (compares them with the stored files) and ``tests/golden/regenerate.py``
(rewrites the stored files), and the comparison rules (:data:`SNAPSHOTS`), so that the test and the
script's change report agree on what "changed" means.

Loaded by file path (``importlib.util.spec_from_file_location``, see :func:`load_module` in the two
callers), never as a package member, so it works under pytest's default ``prepend`` import mode, under
``--import-mode=importlib`` and from the script alike. It imports the project as top-level packages
(``from bundlerl.env.presets import ...``), one import per line, so a mechanical rename keeps it working.

Every compute function runs inside :func:`pinned`: numpy's BLAS and the OpenMP pools on one thread
(threadpoolctl), torch on one intra-op thread; the previous thread count and the global random states
(``random``, ``numpy.random``, torch; SB3 reseeds all three) are restored afterwards, so nothing here
changes process-wide state for good.
"""

from __future__ import annotations

import contextlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

GOLDEN_DIR = Path(__file__).resolve().parent
META_FILE = GOLDEN_DIR / "meta.json"
REGENERATE = "python tests/golden/regenerate.py"

ROLLOUT_SEED = 20240501
ROLLOUT_STEPS = 200
CAND_SEED = 7
CAND_USERS = 32
COMP_SEED = 11
COMP_PAIRS = 4096
TRAIN_SEED = 0
TRAIN_UPDATES = 64
PROJ_SEED = 1234
PROJ_DIM = 8
PROBE = 16

MODEL_HOOK: Callable | None = None
"""Called with every model :func:`compute_training` builds, before it learns; None (always, in the test).
``regenerate.py --stress`` sets it to perturb the initial parameters."""


# ---------------------------------------------------------------------------------------- tolerances
@dataclass(frozen=True)
class Rule:
    """How one array is compared.

    ``exact``: integers, booleans, indices, equal element by element. ``close``: floats,
    ``|new - stored| <= atol + rtol * |stored|``. ``ranked``: a top list (rows best first, -1 padded) whose
    scores are in the array named ``scores``: rank order exact wherever the stored scores are more than
    ``atol`` apart (see :func:`compare_ranked`).
    """

    kind: str
    rtol: float = 0.0
    atol: float = 0.0
    why: str = ""
    scores: str = ""


EXACT = Rule("exact")

# Where the float noise comes from, measured on this project's 2-core VM (``regenerate.py --stress`` repeats the
# measurement; meta.json records it):
#
# * The small world's complementarity model is fitted with torch and numpy BLAS and cached on disk ($BUNDLERL_CACHE)
#   by whichever process builds the world FIRST. Its float32 scores moved by up to 7.7e-7 with that process's torch /
#   BLAS thread settings and by 1.8e-7 when the item texts had been embedded in other batches (one top-list pair
#   swapped at a near tie); an issue reports ~2e-5 elsewhere. Downstream floats (candidate features, observations)
#   inherit that noise; integer outputs only at near ties.
# * float32 BLAS / torch kernels on another CPU: not measured (one machine type here); the stress test emulates
#   them with 1e-7 relative noise on the initial network parameters.
#
# COMP_ATOL = 1e-4 covers the reported 2e-5 with a 5x margin, while real changes of the model stand out: a 10% change
# of its shrinkage prior (alpha 2.0 -> 2.2) moved scores by up to 1e-3 and 2.8% of the top-list entries, a PPMI rank
# of 60 instead of 64 by up to 8e-2 (measured).
COMP_ATOL = 1e-4
# Features and observations: float32 of order 1. rtol = 1e-5 for BLAS ordering, atol = COMP_ATOL for the
# complementarity noise above (measured under a 2e-5 perturbation: <= 2e-5 on every feature).
FEAT = Rule("close", 1e-5, COMP_ATOL, "float32 features: complementarity noise (<= 2e-5) + BLAS ordering")


# ---------------------------------------------------------------------------------------- pinning
@contextlib.contextmanager
def pinned():
    """Inside: one BLAS/OpenMP thread (threadpoolctl) and one torch thread. On exit: torch's thread count and the
    global RNG states of ``random``, ``numpy.random`` and torch are restored. Import the project and its libraries
    INSIDE the block: some change global state on import (``import stable_baselines3`` advances ``random``)."""
    py_state, np_state = random.getstate(), np.random.get_state()
    import torch
    from threadpoolctl import threadpool_limits

    prev_threads, th_state = torch.get_num_threads(), torch.get_rng_state()
    try:
        torch.set_num_threads(1)
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(prev_threads)
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(th_state)


def small_world():
    """The small preset's World through the same in-process + on-disk cache (build_world) every other test uses."""
    from bundlerl.env.world import build_world

    return build_world("small")


# ---------------------------------------------------------------------------------------- 1. rollout
def compute_rollout() -> dict[str, np.ndarray]:
    """A seeded ROLLOUT_STEPS-step rollout of ``gym.make("bundlerl/BundleRec-small-v0")`` under the
    complement-greedy baseline (``bundlerl.agents.baselines.ComplementGreedyPolicy``), reset with seed ROLLOUT_SEED once and
    then without a seed as episodes end.

    Per step: ``action``, ``reward``, ``terminated``, ``truncated``, ``episode`` (index of the step's episode),
    ``shown`` (K_max,) item ids shown, ``click``, ``n_bought``; ``obs_<key>`` the observation acted on and
    ``next_obs_<key>`` the one step() returned (terminal ones included), for every observation key; ``score_gap``
    the greedy score margin of the chosen candidate over the runner-up (how far the integer action is from a tie).
    """
    with pinned():
        import gymnasium as gym

        import bundlerl  # noqa: F401  - registers the gymnasium ids
        from bundlerl.agents.baselines import ComplementGreedyPolicy
        from bundlerl.env.observation import OBS_KEYS

        env = gym.make("bundlerl/BundleRec-small-v0")
        policy = ComplementGreedyPolicy()
        obs, _ = env.reset(seed=ROLLOUT_SEED)
        rec: dict[str, list] = {k: [] for k in ("action", "reward", "terminated", "truncated", "episode", "shown",
                                                "click", "n_bought", "score_gap")}
        for k in OBS_KEYS:
            rec[f"obs_{k}"], rec[f"next_obs_{k}"] = [], []
        episode = 0
        for _ in range(ROLLOUT_STEPS):
            batch = {k: v[None] for k, v in obs.items()}
            action = int(policy.act(batch, deterministic=True)[0][0])
            scores = np.sort(np.where(batch["action_mask"][0] > 0, policy.scores(batch)[0], -np.inf))[::-1]
            rec["score_gap"].append(scores[0] - scores[1] if np.isfinite(scores[1]) else 1e9)
            for k in OBS_KEYS:
                rec[f"obs_{k}"].append(obs[k])
            obs, r, term, trunc, info = env.step(action)
            for k in OBS_KEYS:
                rec[f"next_obs_{k}"].append(obs[k])
            for k, v in (("action", action), ("reward", r), ("terminated", term), ("truncated", trunc),
                         ("episode", episode), ("shown", info["shown"]), ("click", info["click"]),
                         ("n_bought", info["n_bought"])):
                rec[k].append(v)
            if term or trunc:
                obs, _ = env.reset()
                episode += 1
        env.close()
    out = {k: np.asarray(v) for k, v in rec.items()}
    for k, dt in (("action", np.int64), ("episode", np.int64), ("shown", np.int32), ("n_bought", np.int64),
                  ("reward", np.float64), ("score_gap", np.float64), ("terminated", bool), ("truncated", bool),
                  ("click", bool)):
        out[k] = out[k].astype(dt)
    return out


def _rollout_rule(key: str) -> Rule:
    ints = ("action", "terminated", "truncated", "episode", "shown", "click", "n_bought")
    if key in ints or key.endswith("action_mask"):
        return EXACT
    if key == "reward":
        return Rule("close", 0.0, 1e-9, "float-typed counts of items bought")
    if key == "score_gap":
        return Rule("close", 1e-5, 4 * COMP_ATOL, "difference of two greedy scores (sums of 5 features)")
    return FEAT


# ---------------------------------------------------------------------------------------- 2. complementarity
def compute_complementarity() -> dict[str, np.ndarray]:
    """The small world's complementarity model: its precomputed top lists (``top_items`` (n, C_top) int32,
    -1 padded, best first; ``top_scores`` float32) and ``score(i, j)`` on COMP_PAIRS seeded random ordered pairs
    (``pair_i``, ``pair_j``, ``pair_score``)."""
    with pinned():
        comp = small_world().comp_model
        rng = np.random.default_rng(COMP_SEED)
        i = rng.integers(0, comp.n_items, COMP_PAIRS)
        j = rng.integers(0, comp.n_items, COMP_PAIRS)
        return {
            "top_items": np.array(comp.top_items, np.int32),
            "top_scores": np.array(comp.top_scores, np.float32),
            "pair_i": i.astype(np.int32),
            "pair_j": j.astype(np.int32),
            "pair_score": np.asarray(comp.score(i, j), np.float32),
        }


def _comp_rule(key: str) -> Rule:
    if key == "top_items":
        return Rule("ranked", 0.0, COMP_ATOL, "rank order wherever stored scores are > COMP_ATOL apart",
                    scores="top_scores")
    if key in ("top_scores", "pair_score"):
        return Rule("close", 0.0, COMP_ATOL, "complementarity noise from the process that first built the world")
    return EXACT


# ---------------------------------------------------------------------------------------- 3. candidates
def candidate_inputs(world, seed: int = CAND_SEED, n: int = CAND_USERS) -> dict:
    """A seeded batch of builder inputs over ``world``: persona profiles; history vectors for about half the users
    (zero rows for the rest); 1-3 bought items (cross-sell seeds) for about a third; 0-6 shown items; a finite
    price cap for about a quarter."""
    rng = np.random.default_rng(seed)
    emb = world.observable_catalog.embeddings
    n_items = emb.shape[0]
    persona = rng.integers(0, world.persona_vecs.shape[0], n)
    profile = world.persona_vecs[persona]
    history = np.zeros_like(profile)
    bought, shown = [], []
    price_cap = np.full(n, np.inf)
    for u in range(n):
        if rng.random() < 0.5:
            h = emb[rng.choice(n_items, rng.integers(1, 5), replace=False)].sum(axis=0)
            history[u] = h / np.linalg.norm(h)
        bought.append(rng.choice(n_items, rng.integers(1, 4), replace=False) if rng.random() < 0.35
                      else np.zeros(0, np.int64))
        shown.append(rng.choice(n_items, rng.integers(0, 7), replace=False))
        if rng.random() < 0.25:
            price_cap[u] = rng.uniform(20.0, 200.0)
    return dict(persona=persona, profile=profile.astype(np.float32), history=history.astype(np.float32),
                bought=bought, shown=shown, price_cap=price_cap)


def compute_candidates() -> dict[str, np.ndarray]:
    """The small world's ``BundleBuilder.build`` on a seeded batch (:func:`candidate_inputs`): ``items``
    (N, K, K_max), ``sizes``, ``mask``, ``features`` (N, K, F); and every persona's initial pool (profile only,
    as at episode start): ``init_items``, ``init_mask``, ``init_features``."""
    with pinned():
        world = small_world()
        x = candidate_inputs(world)
        cs = world.builder.build(x["profile"], x["history"], x["bought"], x["shown"], x["price_cap"])
        init = world.builder.build(world.persona_vecs, None, None, None, None)
        return {
            "persona": x["persona"].astype(np.int32),
            "items": np.asarray(cs.items, np.int32),
            "sizes": np.asarray(cs.sizes, np.int8),
            "mask": np.asarray(cs.mask, bool),
            "features": np.asarray(cs.features, np.float32),
            "init_items": np.asarray(init.items, np.int32),
            "init_mask": np.asarray(init.mask, bool),
            "init_features": np.asarray(init.features, np.float32),
        }


def _cand_rule(key: str) -> Rule:
    return FEAT if key.endswith("features") else EXACT


# ---------------------------------------------------------------------------------------- 4. learning
def tiny_algo_config(algo: str):
    """The project's ``small`` config of ``algo`` (agents/configs/<algo>.yaml) with tiny rollouts / batches, arranged
    so that all TRAIN_UPDATES updates learn from ONE batch of data collected before the first update:

    - PPO: 4 envs x 16 steps = 64 transitions sampled from the initial policy; 8 epochs x 8 minibatches of 8 = 64
      updates;
    - DQN: 64 warm-up transitions (``learning_starts``: uniformly random valid candidates, independent of the
      network) + one vec-env step, then one train() call of ``gradient_steps`` = 64 updates on minibatches of 64
      drawn from those 68 transitions.

    Why: once a learner's own actions feed its next data, float noise eventually flips a sampled action (an
    integer) and the runs part ways for good (measured: with a 2e-5 change of the complementarity scores, a
    4-rollout PPO run left every tolerance after 20 updates). With the data fixed first, the 64 updates are a
    smooth function of the data. DQN's minibatch is 64, not smaller: with minibatches of 16, runs 1e-7 apart ended
    1e-3 apart in some first-layer weights (Adam moves every weight by ~lr per step however small its gradient, so
    weights whose inputs are 0 in most of a small batch go where float noise sends them); with 64 they stay 1e-6
    close.
    """
    from bundlerl.agents.config import load_algo_config

    if algo == "ppo":
        over = dict(num_envs=4, n_steps=16, batch_size=8, n_epochs=8)
    elif algo == "dqn":
        over = dict(num_envs=4, learning_starts=64, batch_size=64, buffer_size=1000, train_freq=1,
                    gradient_steps=TRAIN_UPDATES, target_update_interval=1000)
    else:
        raise ValueError(f"unknown algo {algo!r}")
    return load_algo_config(algo, "small", overrides=over)


def compute_training(algo: str) -> dict[str, np.ndarray]:
    """The first TRAIN_UPDATES optimizer steps of a seeded ``algo`` run on the small preset: config
    :func:`tiny_algo_config`, model from the project's factory ``bundlerl.agents.sb3.make_model`` on
    ``BundleRecVecEnv("small", seed=TRAIN_SEED)``, model seed TRAIN_SEED. Recorded with torch optimizer step hooks.

    After every step: ``delta_proj`` (U, PROJ_DIM) a fixed standard-Gaussian projection (seed PROJ_SEED) of the
    displacement ``theta_t - theta_0`` of the flattened parameters (entries ~ ``|theta_t - theta_0|``);
    ``param_norm`` ``|theta_t|``; ``step_norm`` the norm of the step; ``grad_norm`` the (clipped) gradient norm it
    used; ``probe`` (U, PROBE, ...) the network's outputs on a probe batch (the first PROBE collected observations):
    PPO log-probabilities of the valid candidates and the value, DQN Q-values of the valid candidates (0 where
    masked). Also ``init_probe`` / ``init_proj`` (outputs / scaled projection of ``theta_0``), ``param_sizes``
    (size of each optimised tensor: an architecture change shows here first) and ``data_actions`` (the actions of
    the collected transitions: the data the updates learn from).
    """
    with pinned():
        import torch

        from bundlerl.agents.sb3 import make_model
        from bundlerl.env.vec_env import BundleRecVecEnv

        cfg = tiny_algo_config(algo)
        venv = BundleRecVecEnv("small", num_envs=cfg.num_envs, seed=TRAIN_SEED)
        model = make_model(algo, venv, cfg, seed=TRAIN_SEED)
        if MODEL_HOOK is not None:
            MODEL_HOOK(model)
        opt = model.policy.optimizer
        params = [p for g in opt.param_groups for p in g["params"]]
        sizes = np.array([p.numel() for p in params], np.int64)
        proj = np.random.default_rng(PROJ_SEED).standard_normal((int(sizes.sum()), PROJ_DIM))

        def flat() -> np.ndarray:
            return torch.cat([p.detach().reshape(-1) for p in params]).double().numpy()

        theta0 = flat()
        rec: dict[str, list] = {"delta_proj": [], "param_norm": [], "step_norm": [], "grad_norm": [], "probe": []}
        state: dict = {}

        def probe_outputs() -> np.ndarray:
            if "obs" not in state:  # the data is collected by now: the probe batch comes from the buffer
                buf = model.rollout_buffer if algo == "ppo" else model.replay_buffer
                # buffers hold (steps, envs, ...) or, once flattened for training, (steps * envs, ...)
                space = model.observation_space.spaces
                state["obs"] = {k: np.asarray(v).reshape((-1,) + space[k].shape)[:PROBE]
                                for k, v in buf.observations.items()}
                state["obs_t"] = model.policy.obs_to_tensor(state["obs"])[0]
            mask = torch.as_tensor(state["obs"]["action_mask"] > 0)
            with torch.no_grad():
                if algo == "ppo":
                    logits = model.policy.get_distribution(state["obs_t"]).distribution.logits
                    out = torch.log_softmax(logits.masked_fill(~mask, -torch.inf), dim=1).masked_fill(~mask, 0.0)
                    out = torch.cat([out, model.policy.predict_values(state["obs_t"])], dim=1)
                else:
                    out = model.q_net(state["obs_t"]).masked_fill(~mask, 0.0)
            return out.double().numpy()

        def pre_hook(optimizer, args, kwargs):
            if len(rec["delta_proj"]) < TRAIN_UPDATES:
                if not rec["delta_proj"]:
                    state["probe0"] = probe_outputs()
                state["theta"] = flat()
                g = [p.grad.detach().reshape(-1) for p in params if p.grad is not None]
                rec["grad_norm"].append(float(torch.linalg.vector_norm(torch.cat(g).double())) if g else 0.0)

        def post_hook(optimizer, args, kwargs):
            if len(rec["delta_proj"]) < TRAIN_UPDATES:
                theta = flat()
                rec["delta_proj"].append((theta - theta0) @ proj)
                rec["param_norm"].append(float(np.linalg.norm(theta)))
                rec["step_norm"].append(float(np.linalg.norm(theta - state["theta"])))
                rec["probe"].append(probe_outputs())

        h1, h2 = opt.register_step_pre_hook(pre_hook), opt.register_step_post_hook(post_hook)
        try:
            if algo == "ppo":
                model.learn(cfg.n_steps * cfg.num_envs)
                actions = model.rollout_buffer.actions
            else:
                model.learn(cfg.learning_starts + cfg.num_envs)
                actions = model.replay_buffer.actions[: model.replay_buffer.pos]
        finally:
            h1.remove()
            h2.remove()
            venv.close()
        if len(rec["delta_proj"]) != TRAIN_UPDATES:
            raise RuntimeError(f"{algo}: {len(rec['delta_proj'])} optimizer steps happened; expected {TRAIN_UPDATES} "
                               "(did SB3's training loop or tiny_algo_config change?)")
    return {
        "delta_proj": np.asarray(rec["delta_proj"], np.float64),
        "param_norm": np.asarray(rec["param_norm"], np.float64),
        "step_norm": np.asarray(rec["step_norm"], np.float64),
        "grad_norm": np.asarray(rec["grad_norm"], np.float64),
        "probe": np.asarray(rec["probe"], np.float32),
        "init_probe": np.asarray(state["probe0"], np.float32),
        "init_proj": np.asarray(theta0 @ proj / np.sqrt(theta0.size), np.float64),
        "param_sizes": sizes,
        "data_actions": np.asarray(actions).reshape(len(actions), -1).astype(np.int64),
    }


# Training tolerances, rtol = atol = x: |new - stored| <= x * (1 + |stored|). Chosen between the float noise and the
# smallest real changes tried, as the share of the tolerance they use, max |diff| / (x * (1 + |stored|)):
#
#                  tolerance x       noise (largest share)     real changes (share)
#                  PPO     DQN       PPO       DQN             PPO ent_coef .01->.02   DQN gamma .95->.96 / .99
#   delta_proj     1e-2    1e-2      0.005     0.05            5.5                     23 / 2.6
#   probe          1e-4    5e-4      0.03      0.14            3.7                     14 / 3.4
#   grad_norm      1e-4    1e-3      0.06      0.2             0.35                    12 / 8.8
#   step_norm      1e-5    1e-4      0.006     0.07            49                      7.5 / 4.9
#   param_norm     1e-6    1e-5      0.016     0.16            0.95                    18 / 5
#   init_probe     1e-5    1e-5      0.11      0.01            -                       -
#
# "noise": worlds first built under other torch/BLAS thread settings or from embeddings made in other batches,
# 1e-7 relative noise on the initial parameters, and 16 runs of regenerate.py --stress (every complementarity score
# moved by up to 2e-5, which moves DQN's data by as much: hence its looser norms). A +5% learning rate uses
# 20 / 920 (PPO delta_proj / probe) and 9 / 26 (DQN). delta_proj (the parameter displacement) and step_norm are
# the most sensitive signals, probe (the network's outputs) the most direct.
TRAIN_TOL = {
    "ppo": dict(delta_proj=1e-2, probe=1e-4, init_probe=1e-5, grad_norm=1e-4, step_norm=1e-5, param_norm=1e-6,
                init_proj=1e-6),
    "dqn": dict(delta_proj=1e-2, probe=5e-4, init_probe=1e-5, grad_norm=1e-3, step_norm=1e-4, param_norm=1e-5,
                init_proj=1e-6),
}


def _train_rule(algo: str) -> Callable[[str], Rule]:
    tol = TRAIN_TOL[algo]

    def rule(key: str) -> Rule:
        if key in tol:
            return Rule("close", tol[key], tol[key],
                        f"{algo.upper()} updates: float noise of the world and the kernels")
        return EXACT

    return rule


# ---------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Snapshot:
    name: str
    compute: Callable[[], dict[str, np.ndarray]]
    rules: Callable[[str], Rule]
    doc: str
    row_groups: dict | None = None
    """Optional: group name -> array keys whose FIRST axis is that group's row (candidates: ``users``, ``personas``).
    meta.json may list rows of a group that are fragile (their integer outputs flipped under the stress
    perturbation); those rows are left out of the comparison."""
    by_episode: bool = False
    """Compare per-step arrays episode by episode (``episode`` key), so a fragile episode of another length does not
    shift the steps of the later ones."""

    @property
    def path(self) -> Path:
        return GOLDEN_DIR / f"{self.name}.npz"


SNAPSHOTS: dict[str, Snapshot] = {
    s.name: s
    for s in (
        Snapshot("rollout_greedy_small", compute_rollout, _rollout_rule,
                 f"{ROLLOUT_STEPS}-step complement-greedy rollout of bundlerl/BundleRec-small-v0 (seed {ROLLOUT_SEED})",
                 by_episode=True),
        Snapshot("complementarity_small", compute_complementarity, _comp_rule,
                 f"the small world's complementarity top lists and {COMP_PAIRS} seeded pair scores"),
        Snapshot("candidates_small", compute_candidates, _cand_rule,
                 f"BundleBuilder output for {CAND_USERS} seeded users and every persona's initial pool",
                 row_groups={"users": ("persona", "items", "sizes", "mask", "features"),
                             "personas": ("init_items", "init_mask", "init_features")}),
        Snapshot("train_ppo_small", lambda: compute_training("ppo"), _train_rule("ppo"),
                 f"first {TRAIN_UPDATES} PPO optimizer steps on small (seed {TRAIN_SEED})"),
        Snapshot("train_dqn_small", lambda: compute_training("dqn"), _train_rule("dqn"),
                 f"first {TRAIN_UPDATES} DQN optimizer steps on small (seed {TRAIN_SEED})"),
    )
}


# ---------------------------------------------------------------------------------------- comparison
def compare_ranked(items_ref: np.ndarray, scores_ref: np.ndarray, items: np.ndarray, scores: np.ndarray,
                   atol: float) -> list[str]:
    """Differences between two sets of top lists (rows best first, -1 padded).

    Each stored row is cut into tie groups: maximal runs of consecutive positions whose stored scores are within
    ``atol`` of their neighbour. The new row must hold the same item SET in each group, groups in the same order
    (so the rank order is exact wherever stored gaps exceed ``atol``), except for the last group of a full row,
    which the list length cut off: which items make that cut is a float tie, so only their scores are compared."""
    problems = []
    for r in range(items_ref.shape[0]):
        ir, sr = items_ref[r], scores_ref[r].astype(np.float64)
        i, s = items[r], scores[r].astype(np.float64)
        n = int((ir >= 0).sum())
        if int((i >= 0).sum()) != n:
            problems.append(f"row {r}: {int((i >= 0).sum())} entries, stored {n}")
            continue
        start = 0
        while start < n:
            end = start + 1
            while end < n and abs(sr[end - 1] - sr[end]) <= atol:
                end += 1
            if end == n and n == ir.size:  # tie group at the cut of a full list
                if not np.allclose(s[start:end], sr[start:end], rtol=0, atol=atol):
                    problems.append(f"row {r} positions {start}..{end - 1} (at the cut): scores {s[start:end]} vs "
                                    f"stored {sr[start:end]}")
            elif set(i[start:end].tolist()) != set(ir[start:end].tolist()):
                problems.append(f"row {r} positions {start}..{end - 1}: items {sorted(i[start:end].tolist())} vs "
                                f"stored {sorted(ir[start:end].tolist())}")
            start = end
    return problems


def _compare_arrays(rules: Callable[[str], Rule], expected: dict, actual: dict, keys) -> list[str]:
    problems = []
    for key in keys:
        e, a = np.asarray(expected[key]), np.asarray(actual[key])
        rule = rules(key)
        if e.shape != a.shape:
            problems.append(f"{key}: shape {a.shape}, stored {e.shape}")
            continue
        if rule.kind == "exact":
            bad = e != a
            if bad.any():
                at = tuple(int(v) for v in np.argwhere(bad)[0])
                problems.append(f"{key}: {int(bad.sum())} of {e.size} entries differ (compared exactly), first at "
                                f"{at}: {a[at]!r} vs stored {e[at]!r}")
        elif rule.kind == "close":
            ef, af = e.astype(np.float64), a.astype(np.float64)
            err = np.abs(af - ef)
            ok = (err <= rule.atol + rule.rtol * np.abs(ef)) | (ef == af)
            if not ok.all():
                err = np.where(np.isnan(err), np.inf, err)
                at = tuple(int(v) for v in np.unravel_index(int(np.argmax(np.where(ok, -1, err))), e.shape))
                problems.append(f"{key}: {int((~ok).sum())} of {e.size} entries outside rtol={rule.rtol:g} "
                                f"atol={rule.atol:g} ({rule.why}); max |diff| {float(err.max()):.3g}, e.g. at {at}: "
                                f"{af[at]!r} vs stored {ef[at]!r}")
        elif rule.kind == "ranked":
            ranked = compare_ranked(e, np.asarray(expected[rule.scores]), a, np.asarray(actual[rule.scores]), rule.atol)
            if ranked:
                problems.append(f"{key}: {len(ranked)} rows differ in rank order ({rule.why}); "
                                + "; ".join(ranked[:3]))
        else:  # pragma: no cover
            raise ValueError(rule.kind)
    return problems


def _episodes(d: dict) -> dict[int, np.ndarray]:
    ep = np.asarray(d["episode"])
    return {int(e): np.flatnonzero(ep == e) for e in np.unique(ep)}


def aligned_parts(snap: Snapshot, expected: dict, actual: dict, fragile: dict | None = None):
    """(problems, parts): how ``expected`` and ``actual`` line up for comparison. ``parts`` is a list of
    (label, stored arrays, new arrays) with the fragile rows / episodes of meta.json (``fragile``: group -> row
    indices, or ``episodes`` -> episode indices) left out; a by-episode snapshot gives one part per episode.
    ``problems`` lists what cannot be lined up (missing arrays or episodes, other episode lengths)."""
    fragile = fragile or {}
    problems = []
    missing, extra = sorted(set(expected) - set(actual)), sorted(set(actual) - set(expected))
    if missing or extra:
        problems.append(f"arrays differ: stored only {missing}, computed only {extra}")
    keys = sorted(set(expected) & set(actual))
    if snap.by_episode and "episode" in keys:
        skip = set(fragile.get("episodes", ()))
        ee, ea = _episodes(expected), _episodes(actual)
        last_e, last_a = max(ee), max(ea)
        parts = []
        for e, idx in ee.items():
            if e in skip:
                continue
            if e not in ea:
                problems.append(f"episode {e}: missing (the rollout has {len(ea)} episodes, stored {len(ee)})")
                continue
            ia = ea[e]
            n = min(idx.size, ia.size)
            if idx.size != ia.size and not (e == last_e or e == last_a):  # the last episode is cut at ROLLOUT_STEPS
                problems.append(f"episode {e}: {ia.size} steps, stored {idx.size}")
            parts.append((f"episode {e} (steps {int(idx[0])}..{int(idx[0]) + n - 1})",
                          {k: np.asarray(expected[k])[idx[:n]] for k in keys},
                          {k: np.asarray(actual[k])[ia[:n]] for k in keys}))
        return problems, parts
    exp, act = {k: expected[k] for k in keys}, {k: actual[k] for k in keys}
    for group, gkeys in (snap.row_groups or {}).items():
        rows = np.asarray(sorted(fragile.get(group, ())), np.int64)
        if rows.size:
            for k in gkeys:
                if k in exp and np.shape(exp[k])[:1] == np.shape(act[k])[:1]:
                    exp[k], act[k] = np.delete(exp[k], rows, axis=0), np.delete(act[k], rows, axis=0)
    return problems, [("", exp, act)]


def compare(snap: Snapshot, expected: dict, actual: dict, fragile: dict | None = None) -> list[str]:
    """Every difference between a stored snapshot and freshly computed values under ``snap``'s rules, as readable
    lines (empty = equal), fragile rows / episodes left out (see :func:`aligned_parts`)."""
    problems, parts = aligned_parts(snap, expected, actual, fragile)
    for label, e, a in parts:
        problems += [f"{label}: {p}" if label else p for p in _compare_arrays(snap.rules, e, a, sorted(e))]
    return problems


def tolerance_use(snap: Snapshot, expected: dict, actual: dict, fragile: dict | None = None) -> dict[str, float]:
    """Per float array: the largest |diff| / (atol + rtol |stored|), the share of its tolerance used (> 1 = outside),
    fragile rows / episodes left out."""
    out: dict[str, float] = {}
    _, parts = aligned_parts(snap, expected, actual, fragile)
    for _, exp, act in parts:
        for key in exp:
            rule = snap.rules(key)
            if rule.kind != "close":
                continue
            e, a = np.asarray(exp[key], np.float64), np.asarray(act[key], np.float64)
            use = float("inf") if e.shape != a.shape else (
                float(np.nanmax(np.abs(a - e) / (rule.atol + rule.rtol * np.abs(e)))) if e.size else 0.0)
            out[key] = max(out.get(key, 0.0), use)
    return out


def change_size(snap: Snapshot, expected: dict, actual: dict) -> list[str]:
    """One line per array that changed: how much (for the commit message of a regenerated snapshot)."""
    lines = []
    for key in sorted(set(expected) | set(actual)):
        if key not in expected or key not in actual:
            lines.append(f"{key}: {'added' if key not in expected else 'removed'}")
            continue
        e, a = np.asarray(expected[key]), np.asarray(actual[key])
        if e.shape != a.shape:
            lines.append(f"{key}: shape {e.shape} -> {a.shape}")
        elif e.dtype.kind in "biu" or snap.rules(key).kind != "close":
            n = int((e != a).sum())
            if n:
                lines.append(f"{key}: {n} of {e.size} entries changed")
        else:
            d = np.abs(a.astype(np.float64) - e.astype(np.float64))
            if d.size and np.nanmax(d) > 0:
                lines.append(f"{key}: max |diff| {float(np.nanmax(d)):.3g} ({int((d > 0).sum())} of {e.size} entries)")
    return lines


# ---------------------------------------------------------------------------------------- files
def load(snap: Snapshot) -> dict[str, np.ndarray]:
    with np.load(snap.path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def save(snap: Snapshot, values: dict[str, np.ndarray]) -> None:
    np.savez_compressed(snap.path, **values)


def read_meta() -> dict:
    return json.loads(META_FILE.read_text()) if META_FILE.is_file() else {}
