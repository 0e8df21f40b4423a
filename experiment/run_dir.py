"""Run directories of ``bundlerl train``: naming, provenance, atomic checkpoints.

Layout of ``runs/{preset}__{algo}__{seed}__{time}/``::

    config.yaml          the TrainConfig (``train``), the world's EnvConfig (``env``, as EnvConfig.to_dict writes it)
                         and the algorithm config (``algo_config``): what evaluation and ``--resume`` read back
    versions.json        python and package versions, git commit and dirty flag
    tb/                  tensorboard logs
    checkpoints/         model_<timesteps>.zip (+ replay_<timesteps>.pkl for DQN), latest.json
    eval.csv             evaluation callback: timesteps, wall seconds, mean return and 95% CI
    baselines.json       the baselines' evaluation on the same episodes
    best_model.zip       best evaluated model;  final_model.zip  model at the end
    report.md            final report;  learning_curve.png

Every file is written atomically (``bundlerl.utils.atomic.atomic_write``: temp file in the same folder, then
``os.replace``), so a crash mid-save leaves the previous version readable.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from bundlerl.utils.atomic import atomic_write, write_text
from bundlerl.utils.errors import BundlerlError

__all__ = ["RunDir", "RunDirError", "run_name", "package_versions", "git_info", "source_checkout", "VERSION_PACKAGES",
           "MODEL_CHOICES", "EVAL_COLUMNS"]

VERSION_PACKAGES = {
    "numpy": "numpy", "torch": "torch", "stable_baselines3": "stable-baselines3", "sb3_contrib": "sb3-contrib",
    "gymnasium": "gymnasium", "faiss": "faiss-cpu", "sentence_transformers": "sentence-transformers",
    "bundlerl": "bundlerl",
}
"""Key in versions.json -> distribution name (read from package metadata, no heavy import)."""

_KEEP_CHECKPOINTS = 3

MODEL_CHOICES = ("best", "final", "latest")
"""Which model of a run :meth:`RunDir.model_path` finds: ``best`` (falls back to ``final``, then the latest
checkpoint), ``final`` or the ``latest`` checkpoint. The first is the default everywhere."""

EVAL_COLUMNS = ("timesteps", "wall_s", "mean_return", "ci_low", "ci_high", "train_return")
"""Columns of eval.csv: a row per periodic evaluation (timesteps int, the rest float)."""


class RunDirError(BundlerlError):
    """A run directory is missing or incomplete; the message says which file."""


def run_name(preset: str, algo: str, seed: int, when: float | None = None) -> str:
    """``{preset}__{algo}__{seed}__{YYYYmmdd-HHMMSS}`` (local time)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if when is None else when))
    return f"{preset}__{algo}__{seed}__{stamp}"


def package_versions() -> dict[str, str | None]:
    """Python and the versions of :data:`VERSION_PACKAGES` (None when not installed)."""
    from importlib import metadata

    out: dict[str, str | None] = {"python": platform.python_version()}
    for key, dist in VERSION_PACKAGES.items():
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = None
    return out


def source_checkout() -> Path | None:
    """The folder bundlerl was installed from in editable mode (``pip install -e``), from the installer's
    ``direct_url.json`` (PEP 610); None for a regular install, whose code no checkout describes."""
    from importlib import metadata
    from urllib.parse import unquote, urlparse

    # every installed copy's metadata, first found first (a source tree also holds a bare ``*.egg-info``)
    raw = next((t for d in metadata.distributions(name="bundlerl") if (t := d.read_text("direct_url.json"))), "{}")
    try:
        info = json.loads(raw)
    except ValueError:
        return None
    url = urlparse(str(info.get("url", "")))
    if url.scheme != "file" or not info.get("dir_info", {}).get("editable"):
        return None
    return Path(unquote(url.path))


def git_info(cwd: str | Path | None = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the git checkout at ``cwd``, by default the one
    bundlerl runs from (:func:`source_checkout`); both None without git or outside a checkout."""
    cwd = Path(cwd) if cwd else source_checkout()
    if cwd is None or not cwd.is_dir():
        return {"commit": None, "dirty": None}
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return {"commit": None, "dirty": None}
        st = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True,
                            text=True, timeout=30)
        return {"commit": sha.stdout.strip(), "dirty": bool(st.stdout.strip()) if st.returncode == 0 else None}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


@dataclass
class RunDir:
    """One training run's folder (see the module docstring)."""

    path: Path

    # ------------------------------------------------------------------ create / open
    @classmethod
    def create(cls, out: str | Path, preset: str, algo: str, seed: int, config: dict[str, Any]) -> "RunDir":
        """Make ``out/{preset}__{algo}__{seed}__{time}`` (suffix ``-2``, ``-3``... if taken) with config.yaml and versions.json."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        base = run_name(preset, algo, seed)
        path, i = out / base, 1
        while True:
            try:
                path.mkdir()
                break
            except FileExistsError:
                i += 1
                path = out / f"{base}-{i}"
        rd = cls(path)
        rd.write_config(config)
        rd.write_json("versions.json", {**package_versions(), "git": git_info()})
        (path / "checkpoints").mkdir()
        return rd

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        """An existing run directory; RunDirError if it has no config.yaml."""
        p = Path(path)
        if not (p / "config.yaml").is_file():
            raise RunDirError(f"{p} is not a bundlerl run directory (no config.yaml); pass a folder made by 'bundlerl train'")
        return cls(p)

    # ------------------------------------------------------------------ files
    def write_config(self, config: dict[str, Any]) -> None:
        import yaml

        write_text(self.path / "config.yaml", yaml.safe_dump(config, sort_keys=False))

    def config(self) -> dict[str, Any]:
        import yaml

        with open(self.path / "config.yaml") as fh:
            return yaml.safe_load(fh)

    @property
    def algo(self) -> str:
        return self.config()["train"]["algo"]

    def env_config(self):
        """The world the run was trained on: ``bundlerl.env.EnvConfig`` from config.yaml's ``env`` section (from the
        preset name in ``train.preset`` for run directories written before the section existed).

        :raises RunDirError: the section does not describe a valid EnvConfig (the message names the field).
        """
        from bundlerl.env import ConfigError, EnvConfig, get_config

        cfg = self.config()
        try:
            if "env" in cfg:
                return EnvConfig.from_dict(cfg["env"])
            return get_config(cfg["train"]["preset"])
        except ConfigError as err:
            raise RunDirError(f"{self.path / 'config.yaml'}: {err}") from None

    def write_json(self, name: str, obj: Any) -> None:
        write_text(self.path / name, json.dumps(obj, indent=2, default=str) + "\n")

    def read_json(self, name: str, default: Any = None) -> Any:
        """The JSON file ``name``; ``default`` when it does not exist and a default is given."""
        if default is not None and not (self.path / name).is_file():
            return default
        with open(self.path / name) as fh:
            return json.load(fh)

    def write_eval_rows(self, rows: list[dict[str, Any]]) -> None:
        """eval.csv from the periodic evaluations' rows (keys :data:`EVAL_COLUMNS`)."""
        lines = [",".join(EVAL_COLUMNS)] + [
            ",".join(f"{r[c]:.6g}" if isinstance(r[c], float) else str(r[c]) for c in EVAL_COLUMNS) for r in rows]
        write_text(self.path / "eval.csv", "\n".join(lines) + "\n")

    def eval_rows(self) -> list[dict[str, Any]]:
        """The rows of eval.csv (``timesteps`` int, other columns float); [] before the first evaluation."""
        f = self.path / "eval.csv"
        if not f.is_file():
            return []
        cols, *lines = f.read_text().strip().splitlines()
        return [{c: (int(v) if c == "timesteps" else float(v)) for c, v in zip(cols.split(","), line.split(","))}
                for line in lines]

    # ------------------------------------------------------------------ models
    def policy(self, which: str = "best", **kwargs):
        """The run's ``best`` (else ``final``, else the latest checkpoint) or ``final`` model as an
        :class:`~bundlerl.agents.sb3.SB3Policy` named after the run; ``kwargs`` go to ``SB3Policy``.
        Raises :class:`RunDirError` when the run holds no such model."""
        from bundlerl.agents.sb3 import SB3Policy, load_model

        model = load_model(self.algo, self.model_path(which))
        return SB3Policy(model, name=kwargs.pop("name", self.path.name), **kwargs)

    def save_model(self, model, name: str) -> Path:
        """``model.save`` to ``name`` (e.g. ``best_model.zip``) atomically."""
        return _atomic_save(self.path / name, model.save)

    def model_path(self, which: str = "best") -> Path:
        """Path of the ``best`` model (falls back to ``final``), ``final`` model, or ``latest`` checkpoint."""
        if which not in MODEL_CHOICES:
            raise RunDirError(f"which={which!r}; use one of {', '.join(MODEL_CHOICES)}")
        if which == "latest":
            ck = self.latest_checkpoint()
            if ck is None:
                raise RunDirError(f"{self.path} has no checkpoint")
            return ck["model"]
        order = ["best_model.zip", "final_model.zip"] if which == "best" else ["final_model.zip"]
        for name in order:
            if (self.path / name).is_file():
                return self.path / name
        ck = self.latest_checkpoint()
        if ck is not None:
            return ck["model"]
        raise RunDirError(f"{self.path} holds no model ({', '.join(order)} or a checkpoint); train it first")

    def save_checkpoint(self, model, timesteps: int, save_replay: bool = False) -> dict[str, Any]:
        """Write ``checkpoints/model_<t>.zip`` (+ the replay buffer) then point ``latest.json`` at them.

        Each file is written to a temp name and ``os.replace``-d; latest.json is replaced last, so it always
        names a complete checkpoint. Keeps the newest three checkpoints.
        """
        ck = self.path / "checkpoints"
        ck.mkdir(exist_ok=True)
        model_file = _atomic_save(ck / f"model_{timesteps}.zip", model.save)
        entry: dict[str, Any] = {"timesteps": int(timesteps), "model": model_file.name, "replay": None}
        if save_replay and getattr(model, "replay_buffer", None) is not None:
            replay = _atomic_save(ck / f"replay_{timesteps}.pkl", model.save_replay_buffer)
            entry["replay"] = replay.name
        write_text(ck / "latest.json", json.dumps(entry) + "\n")
        self._prune(keep={entry["model"], entry["replay"]})
        return entry

    def latest_checkpoint(self) -> dict[str, Any] | None:
        """``{"timesteps", "model": Path, "replay": Path | None}`` of the last complete checkpoint, or None."""
        f = self.path / "checkpoints" / "latest.json"
        if not f.is_file():
            return None
        entry = json.loads(f.read_text())
        ck = self.path / "checkpoints"
        return {"timesteps": int(entry["timesteps"]), "model": ck / entry["model"],
                "replay": ck / entry["replay"] if entry.get("replay") else None}

    def _prune(self, keep: set) -> None:
        ck = self.path / "checkpoints"
        models = sorted(ck.glob("model_*.zip"), key=lambda p: int(p.stem.split("_")[1]))
        for old in models[:-_KEEP_CHECKPOINTS]:
            if old.name not in keep:
                old.unlink(missing_ok=True)
        replays = sorted(ck.glob("replay_*.pkl"), key=lambda p: int(p.stem.split("_")[1]))
        for old in replays[:-1]:  # replay buffers are big: keep only the newest
            if old.name not in keep:
                old.unlink(missing_ok=True)


def _atomic_save(path: Path, saver: Callable[[str], Any]) -> Path:
    """Call ``saver(temp_path)`` then ``os.replace`` onto ``path`` (SB3's savers keep a path ending in .zip/.pkl)."""
    with atomic_write(path) as tmp:
        saver(str(tmp))
        if not Path(tmp).is_file() or os.path.getsize(tmp) == 0:
            raise RunDirError(f"saving {path.name} produced no file")
    return path
