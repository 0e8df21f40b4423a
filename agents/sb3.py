"""SB3-backed agents: factories for PPO, MaskablePPO and DQN, and :class:`SB3Policy` (the policy protocol).

    >>> from bundlerl.env.vec_env import BundleRecVecEnv
    >>> from bundlerl.agents.config import load_algo_config
    >>> cfg = load_algo_config("ppo", "small")
    >>> venv = BundleRecVecEnv("small", num_envs=cfg.num_envs, seed=0)
    >>> model = make_model("ppo", venv, cfg, seed=0)
    >>> model.learn(2_000)                      # SB3's verbs, unchanged: learn / predict / save / load
    >>> policy = SB3Policy(model)               # bundlerl.agents.policy.Policy: action_probabilities(obs_batch)

Networks (``NetworkConfig.extractor``): ``set`` = :class:`bundlerl.agents.networks.CandidateSetExtractor` with a
per-candidate head (order-free); ``mlp`` = SB3's ``MultiInputPolicy`` (flattened Dict obs through an MLP).
:func:`load_model` checks a zip reads back intact (:func:`model_file_problem`) and loads zips saved before the
``bundlerl.`` namespace (:func:`renamed_objects`). Heavy imports (torch, SB3): import this module lazily from scripts.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import pkgutil
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.torch_layers import CombinedExtractor
from stable_baselines3.common.vec_env import VecEnv

from bundlerl.agents.config import (
    CONFIG_CLASSES,
    AgentConfigError,
    DQNConfig,
    MaskablePPOConfig,
    NetworkConfig,
    PPOConfig,
    check_algo,
)
from bundlerl.agents.networks import (
    ACTIVATIONS,
    CandidateActorCriticPolicy,
    CandidateSetExtractor,
    MaskableCandidateActorCriticPolicy,
    MaskedDQNPolicy,
    numpy_mask,
)
from bundlerl.agents.policy import Observation, Policy, PolicyError, batch_size_of, greedy_probabilities
from bundlerl.env.observation import MASK_KEY
from bundlerl.utils.args import MissingPathError, need_int, need_number, need_path, need_str, shown
from bundlerl.utils.errors import BundlerlError

__all__ = ["MaskedDQN", "make_model", "make_ppo", "make_maskable_ppo", "make_dqn", "algo_class", "SB3Policy",
           "load_model", "policy_kwargs_for", "ModelFileError", "model_file_problem", "quiet_logger",
           "renamed_objects"]


class MaskedDQN(DQN):
    """SB3 DQN whose exploration only picks valid candidates.

    Epsilon-greedy per row (SB3's DQN explores the whole batch at once with one draw): with
    probability ``exploration_rate`` a row takes a uniformly random *valid* candidate, otherwise the
    greedy masked action of :class:`bundlerl.agents.networks.MaskedQNetwork`. The warm-up phase
    (``learning_starts``) samples valid candidates too. Draws come from a ``numpy.random.Generator``
    seeded with the model's seed.

    Exploration schedule across ``learn`` calls: SB3 measures the schedule's progress against the total of the
    current ``learn`` call, so a run resumed with a larger total (``learn(more, reset_num_timesteps=False)``)
    would restart epsilon's decay (0.05 back to 0.67). Here epsilon is a function of the timestep count over
    :attr:`schedule_timesteps`, the total of the run's first ``learn``: a resumed run continues its schedule
    where it was (the decay ends at ``exploration_fraction * schedule_timesteps``; epsilon stays final after).
    """

    policy_aliases = {**DQN.policy_aliases, "MaskedDQNPolicy": MaskedDQNPolicy}
    schedule_timesteps: int | None = None
    """Timesteps the exploration schedule spans: the total of the first ``learn`` (kept by later calls that
    continue the count). Saved with the model; None before the first ``learn``."""
    random_until: int | None = None
    """Actions are uniformly random valid candidates while ``num_timesteps`` is below this (None:
    ``learning_starts``); :meth:`refill_before_updates` sets it so that a refill acts with the policy."""

    def _setup_learn(self, total_timesteps, callback=None, reset_num_timesteps=True, tb_log_name="run",
                     progress_bar=False):
        previous = int(self._total_timesteps or 0)  # the last learn's total (restored by load)
        out = super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)
        if reset_num_timesteps:
            self.schedule_timesteps = int(self._total_timesteps)
        elif self.schedule_timesteps is None:  # saved before the attribute existed: the last learn's total
            self.schedule_timesteps = previous or int(self._total_timesteps)
        return out

    def exploration_at(self, timesteps: int) -> float:
        """Epsilon at ``timesteps`` on this run's schedule (see the class docstring)."""
        span = max(int(self.schedule_timesteps or self._total_timesteps or 1), 1)
        return float(self.exploration_schedule(1.0 - timesteps / span))

    def _on_step(self) -> None:
        super()._on_step()  # target-network updates; its epsilon is relative to this learn call's total
        self.exploration_rate = self.exploration_at(self.num_timesteps)
        self.logger.record("rollout/exploration_rate", self.exploration_rate)

    def refill_before_updates(self, transitions: int) -> None:
        """Collect ``transitions`` more transitions, acting with the current policy (epsilon-greedy), before the next
        gradient step: a run resumed without its replay buffer refills it first instead of updating on a few."""
        self.random_until = min(int(self.learning_starts), int(self.num_timesteps))
        self.learning_starts = int(self.num_timesteps) + int(transitions)

    def _rng(self) -> np.random.Generator:
        if getattr(self, "_explore_rng", None) is None:
            self._explore_rng = np.random.default_rng([0 if self.seed is None else int(self.seed), 4242])
        return self._explore_rng

    def _random_valid(self, obs) -> np.ndarray:
        if isinstance(obs, dict) and MASK_KEY in obs and np.ndim(obs[MASK_KEY]) == 2:
            mask = numpy_mask(obs).astype(np.float64)
        else:
            n = 1 if not isinstance(obs, dict) else np.asarray(next(iter(obs.values()))).shape[0]
            mask = np.ones((n, int(self.action_space.n)))
        mask[mask.sum(axis=1) == 0] = 1.0
        cdf = (mask / mask.sum(axis=1, keepdims=True)).cumsum(axis=1)
        u = self._rng().random(mask.shape[0])[:, None]
        return (cdf <= u).sum(axis=1).clip(max=mask.shape[1] - 1)

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = False):
        action, state = self.policy.predict(observation, state, episode_start, deterministic)
        if deterministic or self.exploration_rate <= 0 or not isinstance(observation, dict):
            return action, state
        if np.ndim(observation[MASK_KEY]) != 2:  # single observation
            return action, state
        explore = self._rng().random(action.shape[0]) < self.exploration_rate
        if explore.any():
            action = np.where(explore, self._random_valid(observation), action)
        return action, state

    def _sample_action(self, learning_starts: int, action_noise=None, n_envs: int = 1):
        random_until = learning_starts if self.random_until is None else min(self.random_until, learning_starts)
        if self.num_timesteps < random_until:
            a = self._random_valid(self._last_obs)
        else:
            a, _ = self.predict(self._last_obs, deterministic=False)
        return a, a

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_explore_rng"]


def _maskable_ppo_class():
    from sb3_contrib import MaskablePPO

    return MaskablePPO


def _is_maskable(policy) -> bool:
    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy

    return isinstance(policy, MaskableActorCriticPolicy)


def algo_class(algo: str) -> type[BaseAlgorithm]:
    """The SB3 class of ``algo`` (``ppo``: PPO, ``maskable_ppo``: sb3-contrib MaskablePPO, ``dqn``: :class:`MaskedDQN`).

    :raises AgentConfigError: ``algo`` is not one of ``bundlerl.agents.config.ALGOS``.
    """
    check_algo(algo)
    return _maskable_ppo_class() if algo == "maskable_ppo" else {"ppo": PPO, "dqn": MaskedDQN}[algo]


def policy_kwargs_for(algo: str, net: NetworkConfig) -> tuple[Any, dict[str, Any]]:
    """(policy class or alias, policy_kwargs) for ``algo`` with network ``net``."""
    act = ACTIVATIONS[net.activation]
    if net.extractor == "mlp":
        kw: dict[str, Any] = dict(net_arch=list(net.net_arch), activation_fn=act)
        if algo == "dqn":
            return MaskedDQNPolicy, {**kw, "features_extractor_class": CombinedExtractor}
        return "MultiInputPolicy", kw
    fe = dict(features_extractor_class=CandidateSetExtractor,
              features_extractor_kwargs=dict(hidden=net.hidden, context_dim=net.context_dim, activation=net.activation))
    if algo == "dqn":
        return MaskedDQNPolicy, {**fe, "net_arch": list(net.net_arch), "activation_fn": act,
                                 "candidate_head": net.candidate_head, "scorer_hidden": net.hidden}
    if net.candidate_head:
        cls = CandidateActorCriticPolicy if algo == "ppo" else MaskableCandidateActorCriticPolicy
        return cls, {**fe, "net_arch": dict(pi=[], vf=list(net.net_arch)), "activation_fn": act,
                     "scorer_hidden": net.hidden}
    return "MultiInputPolicy", {**fe, "net_arch": list(net.net_arch), "activation_fn": act}


def _check_env(venv, cfg) -> None:
    if venv.num_envs != cfg.num_envs:
        raise AgentConfigError(f"the vec env has {venv.num_envs} envs but the config says num_envs={cfg.num_envs}; "
                               "build the env with the config's num_envs")


def quiet_logger() -> Logger:
    """An SB3 logger that writes nothing anywhere (without one, SB3's ``learn`` makes an empty ``SB3-<date>``
    folder in the system temp dir when the model has no ``tensorboard_log``)."""
    return Logger(folder=None, output_formats=[])


def make_model(algo: str, venv, cfg, *, seed: int | None = 0, tensorboard_log: str | None = None,
               device: str = "cpu", verbose: int = 0) -> BaseAlgorithm:
    """The SB3 model of ``algo`` (:func:`algo_class`) on ``venv`` (a VecEnv with ``cfg.num_envs`` envs) with
    ``cfg``'s hyperparameters and network (:func:`policy_kwargs_for`). Without ``tensorboard_log`` it logs
    nowhere (:func:`quiet_logger`); a training run sets its own logger (``model.set_logger``).

    :raises AgentConfigError: unknown ``algo``, or ``venv`` does not have ``cfg.num_envs`` envs.
    """
    cls = algo_class(algo)
    if not isinstance(venv, VecEnv):
        raise AgentConfigError(f"make_model(venv={shown(venv)}): venv must be a stable-baselines3 VecEnv "
                               "(bundlerl.BundleRecVecEnv)")
    if not isinstance(cfg, tuple(CONFIG_CLASSES.values())):
        raise AgentConfigError(f"make_model(cfg={shown(cfg)}): cfg must be an algorithm config (load_algo_config)")
    need_int(seed, "seed", "make_model", minimum=0, optional=True, error=AgentConfigError)
    need_str(device, "device", "make_model", error=AgentConfigError)
    need_int(verbose, "verbose", "make_model", minimum=0, error=AgentConfigError)
    need_path(tensorboard_log, "tensorboard_log", "make_model", optional=True, error=AgentConfigError)
    _check_env(venv, cfg)
    policy, pkw = policy_kwargs_for(algo, cfg.network)
    model = cls(policy, venv, policy_kwargs=pkw, seed=seed, tensorboard_log=tensorboard_log, device=device,
                verbose=verbose, **cfg.sb3_kwargs())
    if tensorboard_log is None:
        model.set_logger(quiet_logger())
    return model


def make_ppo(venv, cfg: PPOConfig, **kwargs) -> PPO:
    """SB3 PPO (:func:`make_model` with ``"ppo"``)."""
    return make_model("ppo", venv, cfg, **kwargs)


def make_maskable_ppo(venv, cfg: MaskablePPOConfig, **kwargs):
    """sb3-contrib MaskablePPO (masks from ``venv.env_method("action_masks")``; :func:`make_model`)."""
    return make_model("maskable_ppo", venv, cfg, **kwargs)


def make_dqn(venv, cfg: DQNConfig, **kwargs) -> MaskedDQN:
    """:class:`MaskedDQN` (masked Q, masked exploration; :func:`make_model`)."""
    return make_model("dqn", venv, cfg, **kwargs)


class ModelFileError(BundlerlError):
    """A saved model file is missing, damaged or unreadable; the message names the file and what to do."""


def model_file_problem(path: str | Path) -> str | None:
    """What is wrong with the SB3 model zip at ``path`` ("missing", "empty", "not a zip archive", a member failing
    its CRC check, no readable ``data`` member), or None when it reads back intact. Reads the whole file."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    if path.stat().st_size == 0:
        return "empty"
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            if bad is not None:
                return f"member {bad!r} fails its CRC check (damaged bytes)"
            json.loads(zf.read("data"))
    except KeyError:
        return "no 'data' member (not a model saved by stable-baselines3)"
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        return f"not a readable zip archive (truncated or overwritten: {exc})"
    return None


def load_model(algo: str, path: str | Path, env=None, device: str = "cpu", **kwargs) -> BaseAlgorithm:
    """``algo_class(algo).load(path, env=env, device=device, **kwargs)`` (``kwargs``: attributes to change, SB3's
    convention), logging nowhere until given a logger (:func:`quiet_logger`).

    A zip saved before the package moved to the ``bundlerl.`` namespace (its pickled classes named
    ``agents.networks...``) loads too (:func:`renamed_objects`).

    :raises FileNotFoundError: no file at ``path``.
    :raises ModelFileError: ``path`` is damaged (:func:`model_file_problem`), or does not load (the message says
        why: damage, a module missing here, old classes that no longer exist).
    """
    algo_class(algo)
    path = need_path(path, "path", "load_model", what="a model zip", error=ModelFileError)
    need_str(device, "device", "load_model", error=ModelFileError)
    if env is not None and not isinstance(env, (VecEnv, gym.Env)):
        raise ModelFileError(f"load_model(env={shown(env)}): env must be a VecEnv or a gymnasium Env, or None")
    if not path.is_file():
        raise MissingPathError(f"load_model(path={str(path)!r}): no saved model there; give the path of a model zip "
                             "(a run directory's best_model.zip, final_model.zip or checkpoints/model_*.zip)")
    problem = model_file_problem(path)
    if problem is not None:
        raise ModelFileError(f"{path}: {problem}; the file is damaged: use another model or checkpoint of the run")
    try:
        model = algo_class(algo).load(str(path), env=env, device=device, custom_objects=_renamed(path), **kwargs)
    except ModuleNotFoundError as exc:
        raise ModelFileError(f"{path}: loading it needs the module {exc.name!r}, which is not installed here; "
                             "install it, or load the model where it was saved") from None
    except (zipfile.BadZipFile, EOFError, pickle.UnpicklingError, json.JSONDecodeError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: the model does not load ({type(exc).__name__}: {exc}); the file is damaged "
                             "or not a bundlerl model") from None
    model.set_logger(quiet_logger())
    return model


# ------------------------------------------------------------------ zips saved before the bundlerl. namespace
# SB3 pickles (cloudpickle) the classes a model was made with into its zip's ``data`` JSON: ``policy_class`` and the
# extractor in ``policy_kwargs``. Run directories written when the rooms were top-level packages name them
# ``agents.networks.CandidateActorCriticPolicy``: SB3's load fails with "No module named 'agents'" (or, run from a
# source checkout, imports a second copy from the top-level folder). They are unpickled here with every room's old
# name read as ``bundlerl.<room>``, never importing the old names, and handed to SB3 as ``custom_objects``: the
# saved objects themselves, so the model loads as it was saved (its weights are tensors, which name no class).
@lru_cache(maxsize=1)
def _rooms() -> frozenset[str]:
    """bundlerl's subpackages (``agents``, ``env``, ...), once top-level packages."""
    import bundlerl

    return frozenset(m.name for m in pkgutil.iter_modules(bundlerl.__path__) if m.ispkg)


class _Renaming(pickle.Unpickler):
    """Unpickles with ``<room>.x`` read as ``bundlerl.<room>.x``; records whether it renamed anything."""

    renamed = False

    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] in _rooms():
            self.renamed, module = True, f"bundlerl.{module}"
        return super().find_class(module, name)


def renamed_objects(path: str | Path) -> dict[str, Any]:
    """The entries of the zip's ``data`` JSON that name classes under an old top-level room, unpickled under the
    ``bundlerl.`` namespace: SB3's ``custom_objects`` for ``load(path, custom_objects=...)``; {} for a model saved
    under the namespace. Entries that fail to unpickle for another reason are left to SB3 (it warns about them).

    :raises AttributeError: a renamed module no longer holds the class (the message names it).
    """
    with zipfile.ZipFile(path) as zf:
        data = json.loads(zf.read("data"))
    out: dict[str, Any] = {}
    for key, item in data.items():
        if not (isinstance(item, dict) and ":serialized:" in item):
            continue
        unpickler = _Renaming(io.BytesIO(base64.b64decode(item[":serialized:"].encode())))
        try:
            obj = unpickler.load()
        except Exception:  # noqa: BLE001 - ours when it named an old room, else not ours to fix
            if unpickler.renamed:
                raise
            continue
        if unpickler.renamed:
            out[key] = obj
    return out


def _renamed(path: Path) -> dict[str, Any] | None:
    """SB3's ``custom_objects`` for a zip saved before the ``bundlerl.`` namespace (:func:`renamed_objects`); None
    for any other."""
    try:
        return renamed_objects(path) or None
    except (AttributeError, ImportError, TypeError) as exc:
        raise ModelFileError(
            f"{path} was saved by a bundlerl older than the 'bundlerl.' namespace (its classes were pickled under the "
            f"rooms' old top-level names, e.g. 'agents.networks'), and they do not load under their new names "
            f"({type(exc).__name__}: {exc}). Load it with the bundlerl version that saved it (its run directory's "
            "versions.json names it), or train the run again") from None


class SB3Policy(Policy):
    """A trained SB3 model as an :class:`bundlerl.agents.policy.Policy`.

    - PPO / MaskablePPO: the probabilities of the policy's categorical distribution, restricted to the
      valid candidates and renormalised (MaskablePPO masks with the observation's mask; a candidate-head
      policy already gives masked candidates zero mass). A row whose mass on valid candidates
      underflows falls back to uniform over the valid ones.
    - DQN: one-hot on the greedy valid candidate (masked Q), or with ``epsilon > 0`` the
      epsilon-greedy probabilities ``(1 - eps) * onehot + eps / n_valid`` over valid candidates.

    :param model: a PPO, MaskablePPO or DQN model.
    :param name: label in tables (default: the algorithm's name).
    :param epsilon: DQN only; exploration probability in [0, 1].
    """

    def __init__(self, model: BaseAlgorithm, name: str | None = None, epsilon: float = 0.0):
        if not isinstance(model, BaseAlgorithm):
            raise PolicyError(f"SB3Policy(model={shown(model)}): model must be a stable-baselines3 model (PPO, "
                              "MaskablePPO, DQN: make_model / load_model)")
        need_str(name, "name", "SB3Policy", optional=True, error=PolicyError)
        need_number(epsilon, "epsilon", "SB3Policy", low=0.0, high=1.0, error=PolicyError)
        self.model = model
        self.is_dqn = isinstance(model, DQN)
        self.epsilon = float(epsilon)
        if epsilon and not self.is_dqn:
            raise PolicyError("epsilon applies to DQN models only")
        self.name = name or type(model).__name__.lower()

    def _obs_tensor(self, obs: Observation):
        pol = self.model.policy
        obs_t, _ = pol.obs_to_tensor({k: np.asarray(v) for k, v in obs.items()})
        return obs_t

    def action_probabilities(self, obs: Observation) -> np.ndarray:
        batch_size_of(obs)
        mask = np.asarray(obs[MASK_KEY]) > 0
        with th.no_grad():
            obs_t = self._obs_tensor(obs)
            if self.is_dqn:
                q = self.model.q_net(obs_t).cpu().numpy().astype(np.float64)
                probs = greedy_probabilities(q, mask)
                if self.epsilon > 0:
                    valid = np.where(mask.any(axis=1, keepdims=True), mask, True).astype(np.float64)
                    probs = (1 - self.epsilon) * probs + self.epsilon * valid / valid.sum(axis=1, keepdims=True)
                return probs
            pol = self.model.policy
            if _is_maskable(pol):
                dist = pol.get_distribution(obs_t, action_masks=mask)
            else:
                dist = pol.get_distribution(obs_t)
            probs = dist.distribution.probs.cpu().numpy().astype(np.float64)
        valid = np.where(mask.any(axis=1, keepdims=True), mask, True)
        probs = np.where(valid, probs, 0.0)
        tot = probs.sum(axis=1, keepdims=True)
        uniform = valid / valid.sum(axis=1, keepdims=True)
        return np.where(tot > 1e-12, probs / np.maximum(tot, 1e-300), uniform)
