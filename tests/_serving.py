"""Shared helpers of the serving tests: run directories of untrained models on the real small world, observations
from the real env, and a real ``bundlerl serve`` process on a free port of 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch as th

NET = {"hidden": 16, "context_dim": 8, "net_arch": [16]}
API_KEY = "test-key-h19"


def small_model(algo: str, seed: int = 0):
    """An untrained SB3 model of ``algo`` on the real small env (random weights are as good as trained ones for
    comparing two runtimes of the same network)."""
    from bundlerl.agents.config import load_algo_config
    from bundlerl.agents.sb3 import make_model
    from bundlerl.env.vec_env import BundleRecVecEnv

    over = {"num_envs": 2, "network": NET, "batch_size": 4}
    over.update({"learning_starts": 4, "buffer_size": 100} if algo == "dqn" else {"n_steps": 8})
    cfg = load_algo_config(algo, "small", overrides=over)
    model = make_model(algo, BundleRecVecEnv("small", num_envs=2, seed=seed), cfg, seed=seed)
    # SB3 initialises the output layers near zero (near-uniform probabilities): spread the weights so that the
    # policy has clear preferences to compare
    gen = th.Generator().manual_seed(seed)
    with th.no_grad():
        for p in model.policy.parameters():
            p.add_(0.5 * th.randn(p.shape, generator=gen))
    return model


def small_run_dir(tmp: Path, algo: str = "ppo") -> Path:
    """A run directory (RunDir API) holding an untrained ``algo`` model of the small world as best_model.zip."""
    from bundlerl.env.config import get_config
    from bundlerl.experiment.run_dir import RunDir

    rd = RunDir.create(tmp, "small", algo, 0, {"train": {"algo": algo, "preset": "small", "action_mode": "bundle"},
                                              "env": get_config("small").to_dict(), "algo_config": {}})
    rd.save_model(small_model(algo), "best_model.zip")
    return rd.path


def env_observations(n_steps: int = 6, num_envs: int = 8, seed: int = 3) -> dict[str, np.ndarray]:
    """Observations of the real small env under random valid actions, stacked: (n_steps * num_envs, ...)."""
    from bundlerl.env.vec_env import BundleRecVecEnv

    env = BundleRecVecEnv("small", num_envs=num_envs, seed=seed)
    rng = np.random.default_rng(seed)
    obs = env.reset()
    out = []
    for _ in range(n_steps):
        out.append({k: v.copy() for k, v in obs.items()})
        mask = obs["action_mask"] > 0
        acts = np.array([rng.choice(np.flatnonzero(m)) if m.any() else 0 for m in mask])
        obs, *_ = env.step(acts)
    return {k: np.concatenate([o[k] for o in out]) for k in out[0]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(model_dir: Path, *, workers: int = 1, log_dir: Path | None = None, extra: tuple = (),
           timeout: float = 120.0):
    """A real ``bundlerl serve`` process on a free port; yields (base url, process). Stopped (SIGTERM, then SIGKILL)
    on exit, by its own process group."""
    import httpx

    port = free_port()
    env = dict(os.environ, BUNDLERL_API_KEY=API_KEY, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "bundlerl.scripts.cli", "serve", str(model_dir), "--port", str(port),
           "--workers", str(workers), *(("--log-dir", str(log_dir)) if log_dir else ()), *extra]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    tail = _drain(proc)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                time.sleep(0.5)  # the drain thread reads what is left
                raise RuntimeError(f"server exited {proc.returncode}: {bytes(tail).decode(errors='replace')[-3000:]}")
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not get ready")
            time.sleep(0.3)
        yield url, proc
    finally:
        stop(proc)


def _drain(proc, keep: int = 64 * 1024) -> bytearray:
    """Read the server's output on a daemon thread for as long as it runs, keeping its last ``keep`` bytes (returned,
    filled in place): an undrained pipe fills after 64 kB of log lines and then blocks the server mid-request."""
    tail = bytearray()

    def run():
        try:
            for chunk in iter(lambda: proc.stdout.read1(4096), b""):
                tail.extend(chunk)
                del tail[:-keep]
        except (OSError, ValueError):  # closed by stop()
            pass

    threading.Thread(target=run, daemon=True).start()
    return tail


def stop(proc, sig=signal.SIGTERM) -> None:
    """Stop a server started by :func:`server` and its workers (its own process group)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=20)
    if proc.stdout:
        proc.stdout.close()
