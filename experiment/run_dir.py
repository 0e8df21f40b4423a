"""Run directories of ``bundlerl train``: naming, provenance, atomic checkpoints.

Layout of ``runs/{preset}__{algo}__{seed}__{time}/``::

    config.yaml          the TrainConfig (``train``), the world's EnvConfig (``env``, as EnvConfig.to_dict writes it)
                         and the algorithm config (``algo_config``): what evaluation and ``--resume`` read back;
                         its first line holds the sha256 of the rest (a truncated or damaged file is detected, not
                         read with defaults for what it lost)
    versions.json        python and package versions, git commit and dirty flag (:mod:`bundlerl.experiment.provenance`)
    tb/                  tensorboard logs
    checkpoints/         model_<timesteps>.zip (+ replay_<timesteps>.pkl for DQN), latest.json
    eval.csv             evaluation callback: timesteps, wall seconds, mean return and 95% CI
    baselines.json       the baselines' evaluation on the same episodes
    best_model.zip       best evaluated model;  final_model.zip  model at the end
    report.md            final report;  learning_curve.png

Every file is written atomically (``bundlerl.utils.atomic.atomic_write``: temp file in the same folder, then
``os.replace``), so a crash mid-save leaves the previous version readable; the temporaries a killed writer leaves
are swept when the run directory is opened again (:meth:`RunDir.open`).

Damage (a truncated zip, a corrupt latest.json or config.yaml: a full disk, a copy cut short) never shows as a raw
traceback: a model file that does not read back intact is passed over for the newest intact one, with a
:class:`RunDirWarning` naming the damaged file; where no intact file is left, a :class:`RunDirError` names the
damaged file and what to do.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bundlerl.utils.args import need_path
from bundlerl.utils.atomic import atomic_write, sweep_temporaries, write_text
from bundlerl.utils.errors import BundlerlError

__all__ = ["RunDir", "RunDirError", "RunDirWarning", "run_name", "MODEL_CHOICES", "EVAL_COLUMNS", "CONFIG_HEADER",
           "CONFIG_SECTIONS"]

_KEEP_CHECKPOINTS = 3

MODEL_CHOICES = ("best", "final", "latest")
"""Which model of a run :meth:`RunDir.model_path` finds: ``best`` (falls back to ``final``, then the latest
checkpoint), ``final`` or the ``latest`` checkpoint. The first is the default everywhere."""

CONFIG_SECTIONS = ("train", "env", "algo_config")
"""The sections of config.yaml (``env`` is missing from run directories older than it)."""

CONFIG_HEADER = "# bundlerl run config; sha256 of the rest: "
"""The first line of config.yaml, followed by the sha256 (hex) of the text after that line."""

EVAL_COLUMNS = ("timesteps", "wall_s", "mean_return", "ci_low", "ci_high", "train_return")
"""Columns of eval.csv: a row per periodic evaluation (timesteps int, the rest float)."""


class RunDirError(BundlerlError):
    """A run directory is missing, incomplete or damaged; the message names the file and what to do."""


class RunDirWarning(UserWarning):
    """A damaged file of a run directory was passed over for an intact one; the message names both."""


def _warn(msg: str) -> None:
    warnings.warn(msg, RunDirWarning, stacklevel=3)


def _checkpoint_steps(path: Path) -> int | None:
    """``t`` of ``model_<t>.zip`` / ``replay_<t>.pkl``; None for another name."""
    stem = path.stem.split("_", 1)
    return int(stem[1]) if len(stem) == 2 and stem[1].isdigit() else None


def run_name(preset: str, algo: str, seed: int, when: float | None = None) -> str:
    """``{preset}__{algo}__{seed}__{YYYYmmdd-HHMMSS}`` (local time)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if when is None else when))
    return f"{preset}__{algo}__{seed}__{stamp}"


@dataclass
class RunDir:
    """One training run's folder (see the module docstring)."""

    path: Path
    saved_timesteps: int | None = field(default=None, init=False, compare=False)
    """Timesteps of the last checkpoint this object saved (or a resumed run started from); None before."""

    def __post_init__(self) -> None:
        self.path = need_path(self.path, "path", "RunDir", what="a run directory", error=RunDirError)

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
        from bundlerl.experiment.provenance import git_info, package_versions

        rd.write_json("versions.json", {**package_versions(), "git": git_info()})
        (path / "checkpoints").mkdir()
        return rd

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        """An existing run directory, its config.yaml checked; the temporaries of killed writers in it are removed
        (``bundlerl.utils.atomic.sweep_temporaries``).

        :raises RunDirError: no such folder, no config.yaml, or a damaged one (the message says what to do).
        """
        p = Path(path)
        if not (p / "config.yaml").is_file():
            raise RunDirError(f"{p} is not a bundlerl run directory (no config.yaml); pass a folder made by 'bundlerl train'")
        rd = cls(p)
        rd.config()
        sweep_temporaries(p, recursive=True)
        return rd

    # ------------------------------------------------------------------ files
    def write_config(self, config: dict[str, Any]) -> None:
        """config.yaml: :data:`CONFIG_HEADER` with the sha256 of the YAML below it, then the YAML."""
        import yaml

        body = yaml.safe_dump(config, sort_keys=False)
        write_text(self.path / "config.yaml", f"{CONFIG_HEADER}{_sha256(body)}\n{body}")

    def config(self) -> dict[str, Any]:
        """config.yaml: a mapping with a ``train`` section naming the ``algo``.

        :raises RunDirError: the file is missing, not YAML, or not such a mapping (damaged or edited).
        """
        import yaml

        f = self.path / "config.yaml"
        try:
            text = f.read_text(encoding="utf-8")
            head, _, body = text.partition("\n")
            if head.startswith("#"):  # written with a checksum (older run directories have none)
                if head != CONFIG_HEADER + _sha256(body):
                    raise _damaged(f, "it does not match the sha256 on its first line (truncated, damaged, or edited "
                                      "by hand: after an edit on purpose, delete that first line)")
            cfg = yaml.safe_load(text)
        except FileNotFoundError:
            raise RunDirError(f"{f} is missing; this is not a complete run directory") from None
        except RunDirError:
            raise
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise _damaged(f, f"not readable YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(cfg, dict) or not isinstance(cfg.get("train"), dict) or not cfg["train"].get("algo"):
            raise _damaged(f, "no 'train' section naming the 'algo'")
        if unknown := sorted(set(cfg) - set(CONFIG_SECTIONS)):
            raise _damaged(f, f"unknown sections {unknown}; a run's config has {', '.join(CONFIG_SECTIONS)}")
        return cfg

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
                if not isinstance(cfg["env"], dict):
                    raise ConfigError("the 'env' section is not a mapping of EnvConfig fields")
                return EnvConfig.from_dict(cfg["env"])
            return get_config(cfg["train"].get("preset", "default"))
        except (ConfigError, TypeError) as err:
            raise _damaged(self.path / "config.yaml", str(err)) from None

    def write_json(self, name: str, obj: Any) -> None:
        write_text(self.path / name, json.dumps(obj, indent=2, default=str) + "\n")

    def read_json(self, name: str, default: Any = None) -> Any:
        """The JSON file ``name``; ``default`` when it does not exist and a default is given.

        :raises RunDirError: the file is damaged (not JSON).
        """
        f = self.path / name
        if default is not None and not f.is_file():
            return default
        try:
            return json.loads(f.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise _damaged(f, f"not JSON ({exc})") from None

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
        try:
            cols, *lines = f.read_text(encoding="utf-8").strip().splitlines()
            rows = [dict(zip(cols.split(","), line.split(","), strict=True)) for line in lines]
            return [{c: (int(v) if c == "timesteps" else float(v)) for c, v in r.items()} for r in rows]
        except (UnicodeDecodeError, ValueError) as exc:
            raise _damaged(f, f"not the CSV of EVAL_COLUMNS ({exc})") from None

    # ------------------------------------------------------------------ models
    def policy(self, which: str = "best", **kwargs):
        """The run's ``best`` (else ``final``, else the latest checkpoint) or ``final`` model as an
        :class:`~bundlerl.agents.sb3.SB3Policy` named after the run; ``kwargs`` go to ``SB3Policy``.
        Raises :class:`RunDirError` when the run holds no such model (or none intact)."""
        from bundlerl.agents.sb3 import SB3Policy

        return SB3Policy(self.load_model(which), name=kwargs.pop("name", self.path.name), **kwargs)

    def load_model(self, which: str = "best", **kwargs):
        """The SB3 model of :meth:`model_path` (``kwargs`` go to ``bundlerl.agents.sb3.load_model``)."""
        from bundlerl.agents.sb3 import ModelFileError, load_model

        path = self.model_path(which)
        try:
            return load_model(self.algo, path, **kwargs)
        except ModelFileError as exc:
            raise RunDirError(f"{exc} (run directory {self.path})") from None

    def save_model(self, model, name: str) -> Path:
        """``model.save`` to ``name`` (e.g. ``best_model.zip``) atomically."""
        return _atomic_save(self.path / name, model.save)

    def model_path(self, which: str = "best") -> Path:
        """Path of the ``best`` model (falls back to ``final``, then the latest checkpoint), the ``final`` model
        (falls back to the latest checkpoint) or the ``latest`` checkpoint. A file that does not read back intact is
        passed over with a :class:`RunDirWarning` naming it.

        :raises RunDirError: unknown ``which``, or no intact model.
        """
        from bundlerl.agents.sb3 import model_file_problem

        if which not in MODEL_CHOICES:
            raise RunDirError(f"which={which!r}; use one of {', '.join(MODEL_CHOICES)}")
        order = {"best": ["best_model.zip", "final_model.zip"], "final": ["final_model.zip"], "latest": []}[which]
        for name in order:
            f = self.path / name
            if f.is_file():
                problem = model_file_problem(f)
                if problem is None:
                    return f
                _warn(f"{f} is damaged ({problem}); using the run's next model instead")
        ck = self.latest_checkpoint()
        if ck is not None:
            return ck["model"]
        raise RunDirError(f"{self.path} holds no model ({', '.join(order + ['a checkpoint'])}); train it first")

    def save_checkpoint(self, model, timesteps: int, save_replay: bool = False) -> dict[str, Any]:
        """Write ``checkpoints/model_<t>.zip`` (+ the replay buffer with ``save_replay``) then point ``latest.json``
        at them.

        Each file is written to a temp name and ``os.replace``-d; latest.json is replaced last, so it always
        names a complete checkpoint. Keeps the newest three checkpoints (and the newest replay buffer).
        """
        ck = self.path / "checkpoints"
        ck.mkdir(exist_ok=True)
        model_file = _atomic_save(ck / f"model_{timesteps}.zip", model.save)
        entry: dict[str, Any] = {"timesteps": int(timesteps), "model": model_file.name, "replay": None}
        if save_replay and getattr(model, "replay_buffer", None) is not None:
            replay = _atomic_save(ck / f"replay_{timesteps}.pkl", model.save_replay_buffer)
            entry["replay"] = replay.name
        write_text(ck / "latest.json", json.dumps(entry) + "\n")
        self.saved_timesteps = int(timesteps)
        self._prune(keep={entry["model"], entry["replay"]})
        return self._entry(entry)

    def _entry(self, raw: dict[str, Any]) -> dict[str, Any]:
        ck = self.path / "checkpoints"
        return {"timesteps": int(raw["timesteps"]), "model": ck / raw["model"],
                "replay": ck / raw["replay"] if raw.get("replay") else None}

    def latest_checkpoint(self) -> dict[str, Any] | None:
        """``{"timesteps", "model": Path, "replay": Path | None}`` of the newest intact checkpoint, or None when the
        run has none yet.

        ``checkpoints/latest.json`` names it; when that file or the model it names is damaged (or missing), the
        newest ``model_<t>.zip`` that reads back intact is used instead, with a :class:`RunDirWarning` naming the
        damaged file (its replay buffer when ``replay_<t>.pkl`` exists).

        :raises RunDirError: checkpoints exist but none is intact (the message names the damaged files).
        """
        from bundlerl.agents.sb3 import model_file_problem

        ck = self.path / "checkpoints"
        latest = ck / "latest.json"
        models = sorted((p for p in ck.glob("model_*.zip") if _checkpoint_steps(p) is not None),
                        key=_checkpoint_steps, reverse=True)
        if not latest.is_file() and not models:
            return None
        damaged: list[str] = []
        try:
            raw = json.loads(latest.read_text(encoding="utf-8"))
            entry = self._entry(raw)
            if raw["model"] != f"model_{entry['timesteps']}.zip" or raw.get("replay") not in (
                    None, f"replay_{entry['timesteps']}.pkl"):
                raise ValueError(f"its entry {raw} is not a checkpoint's")
            problem = model_file_problem(entry["model"])
            if problem is None:
                return entry
            damaged.append(f"{entry['model']} ({problem})")
        except FileNotFoundError:
            damaged.append(f"{latest} (missing)")
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            damaged.append(f"{latest} (not a checkpoint entry: {exc})")
        for m in models:
            problem = model_file_problem(m)
            if problem is None:
                t = _checkpoint_steps(m)
                replay = ck / f"replay_{t}.pkl"
                _warn(f"{'; '.join(damaged)}: damaged, so the run continues from the newest intact checkpoint, {m}")
                return {"timesteps": t, "model": m, "replay": replay if replay.is_file() else None}
            if str(m) not in " ".join(damaged):
                damaged.append(f"{m} ({problem})")
        raise RunDirError(f"no intact checkpoint in {ck}: {'; '.join(damaged)}. Start a new run (the damaged files "
                          "cannot be resumed), or restore the checkpoints from a copy")

    def _prune(self, keep: set) -> None:
        ck = self.path / "checkpoints"
        models = sorted((p for p in ck.glob("model_*.zip") if _checkpoint_steps(p) is not None), key=_checkpoint_steps)
        for old in models[:-_KEEP_CHECKPOINTS]:
            if old.name not in keep:
                old.unlink(missing_ok=True)
        replays = sorted((p for p in ck.glob("replay_*.pkl") if _checkpoint_steps(p) is not None), key=_checkpoint_steps)
        for old in replays[:-1]:  # replay buffers are big: keep only the newest
            if old.name not in keep:
                old.unlink(missing_ok=True)


def _sha256(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _damaged(f: Path, what: str) -> RunDirError:
    """The error of a damaged run-directory file ``f``: which file, what is wrong, what to do."""
    return RunDirError(f"{f} is damaged: {what}. Restore it from a copy, or start a new run (a config.yaml can be "
                       "rewritten by hand from the flags the run was started with)" if f.name == "config.yaml" else
                       f"{f} is damaged: {what}. Restore it from a copy or delete it (the run rewrites it)")


def _atomic_save(path: Path, saver: Callable[[str], Any]) -> Path:
    """Call ``saver(temp_path)`` then ``os.replace`` onto ``path`` (SB3's savers keep a path ending in .zip/.pkl)."""
    with atomic_write(path) as tmp:
        saver(str(tmp))
        if not Path(tmp).is_file() or os.path.getsize(tmp) == 0:
            raise RunDirError(f"saving {path.name} produced no file")
    return path
