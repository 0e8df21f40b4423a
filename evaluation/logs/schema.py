"""The logged-bandit-feedback schema (version :data:`LOG_SCHEMA_VERSION`): one row per decision shown to a shopper.

In the style of Open Bandit Pipeline's logged feedback (context, action, the logging policy's propensity, reward),
extended with everything needed to recompute *another* policy's action distribution on the logged steps (the full
observation) and to estimate per-trajectory values (context id, step, terminated / truncated). Written by
``bundlerl log`` (simulated shoppers) and by serving (real traffic), read by :mod:`bundlerl.evaluation.logs.loader`.

A log is a folder::

    DIR/part-000000.parquet ...     decisions (this schema); a context's rows never span two part files
    DIR/truth/part-000000.parquet   simulator ground truth, validation only (:data:`TRUTH_COLUMNS`), same rows and order
    DIR/log.json                    what wrote it (logger, preset, seeds, episodes) and what it holds (parts, rows,
                                    dims, obs_spec, each file's sha256); written last by the writer's ``close``: a
                                    folder without it is an unfinished log, and the loader refuses it (and files
                                    that differ from it)

Columns of a part file (``P``: profile dim, ``S``: session counters, ``K``: candidates, ``F``: candidate features,
``M``: ``K_max``, the largest bundle; ``fsl<t>[n]`` is an Arrow fixed-size list of ``n`` values of type ``t``):

=====================  ====================  =========================================================================
column                 type                  content
=====================  ====================  =========================================================================
``context_id``         int64                 the episode (simulated) or served session; rows of one context are in
                                             ``step`` order 0, 1, 2, ... within one part file
``step``               int32                 decision index within the context, from 0
``spec_version``       int16                 ``bundlerl.env.observation.SPEC_VERSION`` of the observation
``profile``            fsl<float32>[P]       observation ``profile``
``history``            fsl<float32>[P]       observation ``history``
``session``            fsl<float32>[S]       observation ``session`` (``SESSION_FEATURES`` order)
``candidates``         fsl<float32>[K*F]     observation ``candidates``, row-major (K, F), ``CANDIDATE_FEATURES`` order
``action_mask``        fsl<bool>[K]          observation ``action_mask`` (True: a valid action)
``item_ids``           fsl<int64>[K*M]       the K candidates' catalogue item ids, row-major (K, M), -1 padded
``action``             int32                 the candidate shown, in [0, K)
``action_prob``        fsl<float64>[K]       the logging policy's full distribution over the K candidates (sums to 1)
``pscore``             float64               ``action_prob[action]`` (> 0): the propensity
``click``              bool                  the shopper clicked the shown bundle
``n_bought``           int32                 items bought from it
``bought_items``       fsl<int64>[M]         per slot of the shown bundle, the item's id if bought, else -1
``revenue``            float64               money spent on them (catalogue currency units)
``reward``             float64               the env's reward for the decision
``terminated``         bool (nullable)       the shopper left after it (null: unknown, e.g. served traffic)
``truncated``          bool (nullable)       the horizon ended the context after it (null: unknown)
=====================  ====================  =========================================================================

Served traffic writes the same schema: keep a session's decisions together and hand them to the writer when the
session ends (a part holds whole contexts, each in step order from 0: the loader checks it, and the per-trajectory
estimators need it); leave ``terminated`` / ``truncated`` null where the service cannot know them.

Each part file's Arrow schema metadata holds ``bundlerl.log`` = JSON ``{"schema_version", "obs_spec"}``
(``bundlerl.env.observation.observation_spec``) and the sizes above; every part of a log has the same.
"""

from __future__ import annotations

import json

import pyarrow as pa

from bundlerl.utils.errors import BundlerlError

__all__ = ["LOG_SCHEMA_VERSION", "LogError", "Dims", "log_schema", "truth_schema", "COLUMNS", "TRUTH_COLUMNS",
           "META_KEY", "PART_GLOB", "part_name", "TRUTH_DIR", "LOG_JSON"]

LOG_SCHEMA_VERSION = 1
"""Version of this schema; bump on any change of the columns, their types or meanings."""

META_KEY = b"bundlerl.log"
"""Key of the JSON metadata in each part file's Arrow schema."""
PART_GLOB = "part-*.parquet"
TRUTH_DIR = "truth"
LOG_JSON = "log.json"


def part_name(i: int) -> str:
    """File name of part ``i`` (``part-000007.parquet``): names sort in write order."""
    return f"part-{int(i):06d}.parquet"


class LogError(BundlerlError):
    """A log folder or file that does not follow the schema: the message names the file, row and column."""


class Dims:
    """The sizes of a log's array columns: ``P``, ``S``, ``K``, ``F``, ``M`` (= K_max), all >= 1."""

    __slots__ = ("P", "S", "K", "F", "M")

    def __init__(self, P: int, S: int, K: int, F: int, M: int):
        for k, v in zip(self.__slots__, (P, S, K, F, M)):
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise LogError(f"log dimension {k}={v!r}; it must be an integer >= 1")
            setattr(self, k, int(v))

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}

    def __eq__(self, other) -> bool:
        return isinstance(other, Dims) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return "Dims(" + ", ".join(f"{k}={v}" for k, v in self.to_dict().items()) + ")"


def _fsl(t: pa.DataType, n: int) -> pa.DataType:
    return pa.list_(t, n)


def _columns(d: Dims) -> list[tuple[str, pa.DataType, bool]]:
    """(name, type, nullable) of every decision column, in file order."""
    return [
        ("context_id", pa.int64(), False), ("step", pa.int32(), False), ("spec_version", pa.int16(), False),
        ("profile", _fsl(pa.float32(), d.P), False), ("history", _fsl(pa.float32(), d.P), False),
        ("session", _fsl(pa.float32(), d.S), False), ("candidates", _fsl(pa.float32(), d.K * d.F), False),
        ("action_mask", _fsl(pa.bool_(), d.K), False), ("item_ids", _fsl(pa.int64(), d.K * d.M), False),
        ("action", pa.int32(), False), ("action_prob", _fsl(pa.float64(), d.K), False),
        ("pscore", pa.float64(), False), ("click", pa.bool_(), False), ("n_bought", pa.int32(), False),
        ("bought_items", _fsl(pa.int64(), d.M), False), ("revenue", pa.float64(), False),
        ("reward", pa.float64(), False), ("terminated", pa.bool_(), True), ("truncated", pa.bool_(), True),
    ]


COLUMNS: tuple[str, ...] = tuple(c for c, _, _ in _columns(Dims(1, 1, 1, 1, 1)))
"""The decision columns, in file order."""

TRUTH_COLUMNS: tuple[str, ...] = ("context_id", "step", "expected_reward")
"""Ground-truth columns: ``expected_reward`` fsl<float64>[K], the exact expected reward of showing each candidate
to the shopper's TRUE hidden state at that decision (NaN on masked candidates). Simulator truth: validation only."""


def _meta(d: Dims, obs_spec: dict, kind: str) -> dict[bytes, bytes]:
    return {META_KEY: json.dumps({"schema_version": LOG_SCHEMA_VERSION, "kind": kind, "dims": d.to_dict(),
                                  "obs_spec": obs_spec}, sort_keys=True).encode()}


def log_schema(d: Dims, obs_spec: dict) -> pa.Schema:
    """The Arrow schema of a decision part file with sizes ``d`` and the observation spec ``obs_spec``."""
    return pa.schema([pa.field(n, t, nullable=nl) for n, t, nl in _columns(d)], metadata=_meta(d, obs_spec, "log"))


def truth_schema(d: Dims, obs_spec: dict) -> pa.Schema:
    """The Arrow schema of a ground-truth part file (:data:`TRUTH_COLUMNS`)."""
    return pa.schema([pa.field("context_id", pa.int64(), False), pa.field("step", pa.int32(), False),
                      pa.field("expected_reward", _fsl(pa.float64(), d.K), False)],
                     metadata=_meta(d, obs_spec, "truth"))
