"""Typed hyperparameter configs for the SB3 agents, and their per-preset YAML files.

One dataclass per concern, validated on construction, a docstring per field:

- :class:`NetworkConfig`: the policy / Q network (candidate-set extractor or plain MLP);
- :class:`PPOConfig`, :class:`MaskablePPOConfig`, :class:`DQNConfig`: the learner's hyperparameters,
  each holding a ``network``.

YAML files (RL Zoo style) live in ``agents/configs/<algo>.yaml`` with one top-level key per env
preset (``small``, ``default``, ...); a preset without its own key uses ``default``::

    default:
      learning_rate: 3.0e-4
      n_steps: 64
      network: {extractor: set, hidden: 64}

:func:`load_algo_config` reads them; YAML and command-line flags are only serialisations of these
dataclasses (unknown keys raise :class:`AgentConfigError`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from bundlerl.utils.args import need_path, need_str, shown
from bundlerl.utils.errors import BundlerlError

__all__ = [
    "AgentConfigError", "NetworkConfig", "PPOConfig", "MaskablePPOConfig", "DQNConfig", "ALGOS", "CONFIG_CLASSES",
    "EXTRACTORS", "check_algo", "load_algo_config", "config_to_dict", "config_from_dict", "CONFIG_DIR",
]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
"""Folder of the per-algorithm YAML files."""

ALGOS = ("ppo", "maskable_ppo", "dqn")
"""The registry of algorithm names: each has a config class (:data:`CONFIG_CLASSES`) and an SB3 class
(:func:`bundlerl.agents.sb3.algo_class`)."""

EXTRACTORS = ("set", "mlp")
"""``set``: :class:`bundlerl.agents.networks.CandidateSetExtractor` (order-free, per-candidate scores);
``mlp``: SB3's default ``MultiInputPolicy`` (the flattened Dict observation through an MLP)."""

_ACTIVATIONS = ("relu", "tanh", "gelu")


class AgentConfigError(BundlerlError):
    """An agent config value is invalid; the message names the field and the fix."""


def check_algo(algo: str) -> str:
    """``algo`` when it is one of :data:`ALGOS`; else AgentConfigError listing them."""
    if not isinstance(algo, str) or algo not in ALGOS:
        raise AgentConfigError(f"unknown algo {shown(algo)}; use one of: {', '.join(ALGOS)}")
    return algo


def _bad(cls: str, name: str, msg: str) -> AgentConfigError:
    return AgentConfigError(f"{cls}.{name}: {msg}")


def _check_int(obj, name: str, lo: int) -> None:
    v = getattr(obj, name)
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise _bad(type(obj).__name__, name, f"{v!r}; it must be an integer >= {lo}")


def _check_float(obj, name: str, lo: float, hi: float, lo_open: bool = False) -> None:
    v = getattr(obj, name)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _bad(type(obj).__name__, name, f"{v!r}; it must be a number")
    ok = (v > lo if lo_open else v >= lo) and v <= hi
    if not ok:
        raise _bad(type(obj).__name__, name, f"{v!r}; it must be in {'(' if lo_open else '['}{lo}, {hi}]")


@dataclass
class NetworkConfig:
    """The network shared by the policy and value heads (PPO) or the Q-network (DQN)."""

    extractor: str = "set"
    """``"set"`` (candidate-set extractor, see :mod:`bundlerl.agents.networks`) or ``"mlp"`` (SB3 ``MultiInputPolicy``)."""
    hidden: int = 64
    """Width of the per-candidate embedding (set) and of the scorer's hidden layer."""
    context_dim: int = 32
    """Width of the user-context embedding of (profile, history, session) (set extractor)."""
    candidate_head: bool = True
    """Set extractor only: score each candidate with the shared scorer (logits / Q-values per candidate, equivariant
    to candidate order). False: feed the extractor's flat output to SB3's default MLP head."""
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    """Hidden layers of SB3's MLP head (``mlp`` extractor, or ``set`` without ``candidate_head``), and of the value head."""
    activation: str = "relu"
    """Activation of every hidden layer: relu, tanh or gelu."""

    def __post_init__(self) -> None:
        if self.extractor not in EXTRACTORS:
            raise _bad("NetworkConfig", "extractor", f"{self.extractor!r}; use one of {EXTRACTORS}")
        _check_int(self, "hidden", 1)
        _check_int(self, "context_dim", 1)
        if not isinstance(self.candidate_head, bool):
            raise _bad("NetworkConfig", "candidate_head", f"{self.candidate_head!r}; use true or false")
        self.net_arch = list(self.net_arch)
        if not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in self.net_arch):
            raise _bad("NetworkConfig", "net_arch", f"{self.net_arch!r}; use a list of positive integers, e.g. [64, 64]")
        if self.activation not in _ACTIVATIONS:
            raise _bad("NetworkConfig", "activation", f"{self.activation!r}; use one of {_ACTIVATIONS}")


class _LearnerConfig:
    """What the learners' configs share: a ``network``, ``num_envs``, SB3 constructor arguments for the rest."""

    def _check_network(self) -> None:
        if isinstance(self.network, Mapping):
            self.network = NetworkConfig(**self.network)
        if not isinstance(self.network, NetworkConfig):
            raise _bad(type(self).__name__, "network", f"{self.network!r}; pass a NetworkConfig or a mapping")
        _check_float(self, "learning_rate", 0.0, 1.0, lo_open=True)
        _check_float(self, "max_grad_norm", 0.0, 1e6, lo_open=True)

    def sb3_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the SB3 constructor (everything except num_envs and network)."""
        d = config_to_dict(self)
        d.pop("num_envs"), d.pop("network")
        return d


@dataclass
class PPOConfig(_LearnerConfig):
    """Hyperparameters of SB3 PPO (the names are SB3's; see ``stable_baselines3.PPO``)."""

    learning_rate: float = 3e-4
    """Adam step size (constant)."""
    n_steps: int = 64
    """Steps collected per env before each update (rollout size = n_steps * num_envs)."""
    batch_size: int = 256
    """Minibatch size of each gradient step; must not exceed n_steps * num_envs."""
    n_epochs: int = 4
    """Passes over each rollout."""
    gamma: float = 0.97
    """Discount factor in [0, 1]; 0 is the myopic control (the same learner trained on the immediate reward)."""
    gae_lambda: float = 0.95
    """GAE bias/variance trade-off in [0, 1]."""
    clip_range: float = 0.2
    """PPO ratio clipping, > 0."""
    ent_coef: float = 0.01
    """Entropy bonus weight, >= 0."""
    vf_coef: float = 0.5
    """Value loss weight, >= 0."""
    max_grad_norm: float = 0.5
    """Gradient clipping norm, > 0."""
    num_envs: int = 64
    """Users stepped together by the BundleRecVecEnv (N)."""
    network: NetworkConfig = field(default_factory=NetworkConfig)
    """The network (see :class:`NetworkConfig`)."""

    def __post_init__(self) -> None:
        self._check_network()
        for name in ("n_steps", "batch_size", "n_epochs", "num_envs"):
            _check_int(self, name, 1)
        if self.batch_size > self.n_steps * self.num_envs:
            raise _bad(type(self).__name__, "batch_size",
                       f"{self.batch_size} > n_steps * num_envs = {self.n_steps * self.num_envs}; lower it")
        _check_float(self, "gamma", 0.0, 1.0)
        _check_float(self, "gae_lambda", 0.0, 1.0)
        _check_float(self, "clip_range", 0.0, 10.0, lo_open=True)
        _check_float(self, "ent_coef", 0.0, 10.0)
        _check_float(self, "vf_coef", 0.0, 100.0)


@dataclass
class MaskablePPOConfig(PPOConfig):
    """Hyperparameters of sb3-contrib MaskablePPO (same as PPO; invalid candidates are masked out of the policy)."""


@dataclass
class DQNConfig(_LearnerConfig):
    """Hyperparameters of SB3 DQN (names as in ``stable_baselines3.DQN``). Invalid actions are masked in Q."""

    learning_rate: float = 1e-3
    """Adam step size (constant)."""
    buffer_size: int = 100_000
    """Replay buffer capacity in transitions."""
    learning_starts: int = 2_000
    """Transitions collected before the first gradient step."""
    batch_size: int = 256
    """Minibatch size."""
    tau: float = 1.0
    """Target network soft-update coefficient in (0, 1] (1 = hard update)."""
    gamma: float = 0.97
    """Discount factor in [0, 1]; 0 is the myopic control (Q learns the immediate reward only)."""
    train_freq: int = 1
    """Vec-env steps between updates (each step adds num_envs transitions)."""
    gradient_steps: int = 4
    """Gradient steps per update (>= 1)."""
    target_update_interval: int = 2_000
    """Transitions between target-network updates."""
    exploration_fraction: float = 0.3
    """Share of training over which epsilon decays linearly, in (0, 1]."""
    exploration_initial_eps: float = 1.0
    """Initial epsilon in [0, 1]."""
    exploration_final_eps: float = 0.05
    """Final epsilon in [0, 1]."""
    max_grad_norm: float = 10.0
    """Gradient clipping norm, > 0."""
    num_envs: int = 32
    """Users stepped together by the BundleRecVecEnv (N)."""
    network: NetworkConfig = field(default_factory=NetworkConfig)
    """The Q-network (see :class:`NetworkConfig`)."""

    def __post_init__(self) -> None:
        self._check_network()
        for name, lo in (("buffer_size", 1), ("learning_starts", 0), ("batch_size", 1), ("train_freq", 1),
                         ("gradient_steps", 1), ("target_update_interval", 1), ("num_envs", 1)):
            _check_int(self, name, lo)
        _check_float(self, "tau", 0.0, 1.0, lo_open=True)
        _check_float(self, "gamma", 0.0, 1.0)
        _check_float(self, "exploration_fraction", 0.0, 1.0, lo_open=True)
        _check_float(self, "exploration_initial_eps", 0.0, 1.0)
        _check_float(self, "exploration_final_eps", 0.0, 1.0)


CONFIG_CLASSES: dict[str, type] = {"ppo": PPOConfig, "maskable_ppo": MaskablePPOConfig, "dqn": DQNConfig}


def config_to_dict(cfg) -> dict[str, Any]:
    """A plain dict (nested dataclasses as dicts) for YAML / JSON."""
    return dataclasses.asdict(cfg)


def config_from_dict(algo: str, values: Mapping[str, Any]):
    """The validated config of ``algo`` from a mapping; unknown keys raise AgentConfigError."""
    cls = CONFIG_CLASSES[check_algo(algo)]
    values = dict(values)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise AgentConfigError(f"{cls.__name__}: unknown keys {unknown}; valid keys are {sorted(names)}")
    net = values.get("network")
    if isinstance(net, Mapping):
        net_names = {f.name for f in dataclasses.fields(NetworkConfig)}
        bad = sorted(set(net) - net_names)
        if bad:
            raise AgentConfigError(f"NetworkConfig: unknown keys {bad}; valid keys are {sorted(net_names)}")
        values["network"] = NetworkConfig(**net)
    try:
        return cls(**values)
    except TypeError as exc:  # e.g. a wrong type that the dataclass rejects before validation
        raise AgentConfigError(f"{cls.__name__}: {exc}") from None


def load_algo_config(algo: str, preset: str = "default", path: str | Path | None = None,
                     overrides: Mapping[str, Any] | None = None):
    """The config of ``algo`` for env preset ``preset`` from YAML, with ``overrides`` applied.

    :param algo: one of :data:`ALGOS`.
    :param preset: top-level key to read; falls back to ``default`` when the file has no such key.
    :param path: YAML file (default ``agents/configs/<algo>.yaml``).
    :param overrides: field values replacing the file's (``network`` may be a partial mapping merged into it).
    :raises AgentConfigError: unknown algo, missing file or key, unknown or invalid fields.
    """
    import yaml

    check_algo(algo)
    need_str(preset, "preset", "load_algo_config", error=AgentConfigError)
    if overrides is not None and not isinstance(overrides, Mapping):
        raise AgentConfigError(f"load_algo_config(overrides={shown(overrides)}): overrides must be a mapping of field "
                               "names to values, or None")
    path = (need_path(path, "path", "load_algo_config", what="a YAML file", error=AgentConfigError)
            if path is not None else CONFIG_DIR / f"{algo}.yaml")
    if not path.is_file():
        raise AgentConfigError(f"no hyperparameter file {path}; create it with a key per preset")
    with open(path) as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, Mapping):
        raise AgentConfigError(f"{path}: expected a mapping of preset -> hyperparameters")
    key = preset if preset in data else "default"
    if key not in data:
        raise AgentConfigError(f"{path}: no key {preset!r} and no 'default' key; add one")
    values = dict(data[key] or {})
    for k, v in (overrides or {}).items():
        if k == "network" and isinstance(v, Mapping):
            values["network"] = {**dict(values.get("network") or {}), **dict(v)}
        else:
            values[k] = v
    return config_from_dict(algo, values)
