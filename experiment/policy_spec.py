"""Policies named on the command line: ``NAME`` (an observable baseline, or ``tuned-linear``: its cached fit for the
world, else fitted now with the recorded budget), ``WEIGHTS.json`` (tuned-linear weights saved by
``TunedLinearPolicy.save``) or ``RUN_DIR`` (a trained run's best model), and ``RUN_DIR:greedy``, a run's deterministic
form (one-hot on its most probable candidate). What ``bundlerl log --policy`` and ``bundlerl ope --policy`` take.

``:greedy`` applies to run directories only: the baselines other than ``random``, ``tuned-linear`` and weights files
are greedy already (the suffix would name a second copy of the same policy), and ``random``'s "most probable
candidate" is a tie, its first valid candidate: not a form of random. Such specs are refused (:func:`check_spec`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bundlerl.agents.baselines import BASELINES, make_baseline
from bundlerl.agents.exploration import Greedy
from bundlerl.agents.policy import Policy, PolicyError
from bundlerl.experiment.run_dir import RunDir

__all__ = ["GREEDY_SUFFIX", "SPEC_FORMS", "check_spec", "load_policy", "policy_world", "policy_source"]

GREEDY_SUFFIX = ":greedy"
"""Suffix of a run directory's spec asking for its deterministic form."""

SPEC_FORMS = (f"NAME (a baseline: {', '.join(BASELINES)}; or tuned-linear), WEIGHTS.json (tuned-linear weights), "
              f"RUN_DIR (a trained run) or RUN_DIR{GREEDY_SUFFIX} (its deterministic form)")
"""The valid forms of a policy spec, in words (the messages of a bad one)."""


def check_spec(spec: str) -> tuple[str, str, bool]:
    """``(name, kind, greedy)`` of a policy spec: ``kind`` is ``"baseline"``, ``"tuned-linear"``, ``"weights"`` (an
    existing ``.json`` file) or ``"run"`` (an existing folder); ``greedy``: it ends with ``:greedy``.

    :raises PolicyError: a name that is none of these, or ``:greedy`` on anything but a run directory (the message
        says why and lists :data:`SPEC_FORMS`).
    """
    from bundlerl.agents.tuned_linear import TUNED_LINEAR

    text = str(spec).strip()
    greedy = text.endswith(GREEDY_SUFFIX)
    name = text[: -len(GREEDY_SUFFIX)] if greedy else text
    p = Path(name)
    kind = ("baseline" if name in BASELINES else "tuned-linear" if name == TUNED_LINEAR
            else "weights" if name.endswith(".json") and p.is_file() else "run" if name and p.is_dir() else "")
    if not kind:
        base, sep, rest = text.partition(":")
        if sep and _kind(base):  # e.g. random:stochastic, random:greedy:greedy
            raise PolicyError(f"policy {spec!r}: ':{rest}' is not a modifier {base!r} takes; the forms are "
                              f"{SPEC_FORMS}")
        missing = ("/" in name or name.endswith(".json")) and not p.exists()  # meant as a path
        raise PolicyError(f"policy {spec!r}: " + (f"no such file or folder {name!r}; it is " if missing else "")
                          + f"neither a baseline, tuned-linear, a weights file (.json) nor a run directory; the forms "
                          f"are {SPEC_FORMS}")
    if greedy and kind != "run":
        why = ("random is uniform: its most probable candidate is a tie, i.e. its first valid candidate, not a form of "
               "random" if name == "random" else f"{name} is already deterministic (greedy on its scores)")
        raise PolicyError(f"policy {spec!r}: '{GREEDY_SUFFIX}' applies to a run directory only and {why}; write "
                          f"{name!r}. The forms are {SPEC_FORMS}")
    return name, kind, greedy


def _kind(name: str) -> str:
    """``check_spec(name)``'s kind, or "" where ``name`` is not a valid spec."""
    try:
        return check_spec(name)[1]
    except PolicyError:
        return ""


def load_policy(spec: str, *, seed: int = 0, which: str = "best", world=None) -> Policy:
    """The policy of ``spec`` (see the module docstring); ``seed`` seeds ``random``'s generator, ``which`` picks a
    run's model (``best``, falling back to ``final``), ``world`` (an EnvConfig or preset name) is what
    ``tuned-linear`` is fitted on.

    :raises PolicyError: a bad spec (:func:`check_spec`).
    :raises RunDirError: a damaged run directory.
    """
    from bundlerl.agents.tuned_linear import TunedLinearPolicy

    name, kind, greedy = check_spec(spec)
    if kind == "baseline":
        pol = make_baseline(name, np.random.default_rng(seed))
    elif kind == "tuned-linear":
        from bundlerl.env.config import get_config
        from bundlerl.evaluation.tuning import tuned_linear

        pol = tuned_linear(get_config(world or "default"), log=print)
    elif kind == "weights":
        pol = TunedLinearPolicy.load(name)
    else:
        run = RunDir.open(name)
        pol = run.policy(which, name=run.path.name)
    return Greedy(pol) if greedy else pol


def policy_world(spec: str):
    """The EnvConfig a run directory's policy was trained on; None for a baseline (it fits any world).

    :raises PolicyError: a bad spec (:func:`check_spec`)."""
    name, kind, _ = check_spec(spec)
    return RunDir.open(name).env_config() if kind == "run" else None


def policy_source(spec: str, *, which: str = "best", world=None) -> dict:
    """What :func:`load_policy` (same ``which`` and ``world``) evaluates for ``spec``, as JSON data for a report's
    provenance: ``kind`` (baseline / tuned-linear / weights / run) and ``greedy``; for a weights file its ``file``
    and ``sha256``; for tuned-linear the cached fit's ``file`` and ``sha256`` (None where it is not cached); for a run
    directory its ``run_dir``, the ``model`` file actually loaded (``best_model.zip``, else ``final_model.zip``, else
    the latest checkpoint: a damaged file is passed over), the model's ``sha256`` and the run's own ``versions``
    (its ``versions.json``: package versions and git commit when it was trained; None if missing).

    :raises PolicyError: a bad spec. :raises RunDirError: a run with no intact model."""
    import warnings

    from bundlerl.utils.hashing import file_sha256

    name, kind, greedy = check_spec(spec)
    src: dict = {"kind": kind, "greedy": greedy}
    if kind == "weights":
        src.update(file=str(Path(name).resolve()), sha256=file_sha256(name))
    elif kind == "tuned-linear":  # the cache entry load_policy's tuned_linear call (its defaults) reads or writes
        from bundlerl.env.config import get_config
        from bundlerl.evaluation.tuning import cache_key, cache_path

        f = cache_path(cache_key(get_config(world or "default")))
        src.update(file=str(f), sha256=file_sha256(f) if f.is_file() else None)
    elif kind == "run":
        run = RunDir.open(name)
        with warnings.catch_warnings():  # load_policy warned already about a damaged model passed over
            warnings.simplefilter("ignore")
            model = run.model_path(which)
        src.update(run_dir=str(run.path.resolve()), model=model.relative_to(run.path).as_posix(),
                   sha256=file_sha256(model), versions=_run_versions(run))
    return src


def _run_versions(run: RunDir):
    """The run's ``versions.json`` (None when missing or damaged: provenance, not a reason to refuse the run)."""
    from bundlerl.utils.errors import BundlerlError

    try:
        return run.read_json("versions.json") if (run.path / "versions.json").is_file() else None
    except BundlerlError:
        return None
