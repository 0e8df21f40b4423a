"""Env seed streams: every stream of episodes a command runs comes from a ``numpy.random.SeedSequence`` tagged with
its purpose, so that evaluation never replays training's shoppers.

A stream is ``SeedSequence(entropy=seed, spawn_key=(purpose, segment))`` (:func:`env_stream`). A
:class:`bundlerl.env.vec_env.BundleRecVecEnv` seeded with it gives row i the child ``spawn_key + (i,)`` (the env's
rule, ``BundleRecVecEnv.seed``), and each of a row's episodes draws its shopper key from that row's generator. Two rows share a generator only when their seed,
purpose, segment and row are all equal: streams of different purposes (or segments) are disjoint by construction,
whatever seeds the user picks. (Plain integer seeds, row i = seed + i, made ``bundlerl evaluate --seed 0`` replay the
shoppers of ``bundlerl train --seed 0``, and a resumed run's seed + timesteps could land on the evaluation seeds.)

==================  ==========================  ============================  ===========================================
purpose             seed (entropy)              segment                       used by
==================  ==========================  ============================  ===========================================
``TRAIN``           the run's seed              timesteps when the segment    the training envs of ``bundlerl train``:
                                                starts (0; a resume's start)  each ``--resume`` gets fresh shoppers
``PERIODIC_EVAL``   ``EVAL_SEED`` (fixed)       0                             a run's periodic evaluations and its
                                                                              baselines: the same episodes every time,
                                                                              for every run whatever its seed
``FINAL_EVAL``      ``FINAL_EVAL_SEED`` (fixed) 0                             a run's final evaluation (fresh episodes:
                                                                              the best model was picked on the periodic
                                                                              ones)
``EVALUATE``        ``--seed`` (default 0)      0                             ``bundlerl evaluate`` and quickstart's
                                                                              comparison (``bundlerl.evaluation.compare``)
``LOGGING``         the caller's seed           0                             logged-data collection (``bundlerl log``,
                                                                              ``bundlerl.evaluation.logs.collect``)
``ACTIONS``         as the stream it samples    the stream's purpose          a policy's sampled actions in an
                    for                                                       evaluation (not an env stream)
``TUNE``            the fit's seed              the search round (0, 1, ...)  the cross-entropy fit of ``tuned-linear``
                                                                              (``bundlerl.evaluation.tuning``): training
                                                                              episodes of a control, never evaluated on
``SERVING``         ``bundlerl serve --seed``   the worker's process id       the live service's exploration draws and
                                                                              impression ids (not an env stream)
==================  ==========================  ============================  ===========================================
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

__all__ = ["Purpose", "env_stream", "action_rng", "row_generator", "EVAL_SEED", "FINAL_EVAL_SEED", "stream_label"]


class Purpose(IntEnum):
    """The purpose tag of a stream: the first word of its ``spawn_key`` (values are part of every stream: keep them)."""

    TRAIN = 1
    PERIODIC_EVAL = 2
    FINAL_EVAL = 3
    EVALUATE = 4
    LOGGING = 5
    ACTIONS = 6
    TUNE = 7
    SERVING = 8


EVAL_SEED = 0
"""Seed (entropy) of every run's periodic-evaluation stream (its purpose tag keeps it apart from training's)."""
FINAL_EVAL_SEED = 0
"""Seed (entropy) of every run's final-evaluation stream."""


def env_stream(purpose: Purpose, seed: int, segment: int = 0) -> np.random.SeedSequence:
    """The stream of ``purpose`` for ``seed`` (and ``segment``: a training segment's first timestep).

    :raises ValueError: a negative or non-integer ``seed`` / ``segment`` (the commands validate theirs first).
    """
    for name, v in (("seed", seed), ("segment", segment)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name}={v!r}; it must be an integer >= 0")
    return np.random.SeedSequence(int(seed), spawn_key=(int(Purpose(purpose)), int(segment)))


def action_rng(seed: "int | np.random.SeedSequence") -> np.random.Generator:
    """The generator of a policy's sampled actions while it plays ``seed``'s episodes: for a stream, its own
    ``ACTIONS`` stream (never one of the env's); for an integer, ``default_rng([seed, 31337])`` as before streams."""
    if isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(np.random.SeedSequence(seed.entropy,
                                                            spawn_key=(int(Purpose.ACTIONS), *seed.spawn_key)))
    return np.random.default_rng([int(seed), 31337])


def stream_label(seed: "int | np.random.SeedSequence") -> str:
    """How reports name a seed: ``"evaluate stream, seed 0"`` for a stream, ``"env seed 3"`` for an integer."""
    if isinstance(seed, np.random.SeedSequence) and seed.spawn_key:
        purpose = Purpose(seed.spawn_key[0]).name.lower().replace("_", " ")
        segment = f", segment {seed.spawn_key[1]}" if len(seed.spawn_key) > 1 and seed.spawn_key[1] else ""
        return f"{purpose} stream, seed {seed.entropy}{segment}"
    return f"env seed {seed}"


def row_generator(stream: np.random.SeedSequence, row: int) -> np.random.Generator:
    """The generator a :class:`bundlerl.env.vec_env.BundleRecVecEnv` seeded with ``stream`` gives row ``row`` (its
    child of spawn key ``stream.spawn_key + (row,)``): for common random numbers, several env rows can be handed the
    same row's generator (``SessionBatch.seed_rows``) and so meet the same shoppers."""
    return np.random.Generator(np.random.PCG64(
        np.random.SeedSequence(stream.entropy, spawn_key=(*stream.spawn_key, int(row)), pool_size=stream.pool_size)))
