"""Training on the stand-in env (tests/_agents_fake_env.py): what the training tests swap into
``bundlerl.experiment.training`` so they exercise the pipeline (callbacks, checkpoints, resume, report) in seconds,
and a tiny TrainConfig. Importable from a subprocess (``sys.path`` + ``patch_training()``)."""

from __future__ import annotations

import numpy as np
from _agents_fake_env import fake_vec_env


def fake_eval(policy, cfg, n, seed):
    """An EvalResult from n short episodes of the stand-in env played by ``policy``."""
    from bundlerl.evaluation.rollout import EvalResult

    venv = fake_vec_env(n, seed=seed)
    obs = venv.reset()
    ret = np.zeros(n)
    rng = np.random.default_rng(seed)  # an int or a SeedSequence
    for _ in range(5):
        a, _ = policy.act(obs, deterministic=True, rng=rng)
        obs, r, done, _ = venv.step(a)
        ret += r
    z = np.zeros(n)
    return EvalResult(policy=policy.name, preset=getattr(cfg.preset, "name", cfg.preset), seed=seed, returns=ret,
                      clicks=z + 1, purchases=z, items=z, revenue=z, length=z + 5, truncated=np.ones(n, bool),
                      invalid=z)


def patch_training(setattr_=setattr) -> None:
    """Swap the stand-in env into ``bundlerl.experiment.training`` (``setattr_``: e.g. a pytest monkeypatch's)."""
    import bundlerl.experiment.training as tr

    setattr_(tr, "_make_venv", lambda cfg, num_envs, seed: fake_vec_env(num_envs, seed=seed))
    setattr_(tr, "_eval_policy", fake_eval)


def tiny_cfg(algo="ppo", timesteps=128, **kw):
    """A TrainConfig of tiny networks on 4 stand-in users, evaluated every 64 timesteps on 8 episodes."""
    from bundlerl.experiment.training import TrainConfig

    hp = {"network": {"hidden": 8, "context_dim": 4, "net_arch": [8]}}
    if algo == "dqn":
        hp.update(learning_starts=16, batch_size=16, buffer_size=1000)
    else:
        hp.update(n_steps=8, batch_size=16)
    hp.update(kw.pop("hyperparams", {}))
    base = dict(algo=algo, preset="small", timesteps=timesteps, seed=0, num_envs=4, hyperparams=hp, eval_freq=64,
                eval_episodes=8, final_episodes=8, progress=False)
    return TrainConfig(**{**base, **kw})
