"""The observation: keys, spaces and the session counters, built from the recommender side only.

An observation is a flat ``gymnasium.spaces.Dict`` of float32 Boxes:

=================  ============  ==============================================================
key                shape         content
=================  ============  ==============================================================
``profile``        (P,)          enc(persona profile text) projected on the top-P principal
                                 directions of the item embeddings; each entry in [-1, 1]
``history``        (P,)          the normalised mean embedding of the items of the bundles the
                                 user clicked this session, projected the same way; 0 before
                                 the first click
``session``        (S,)          the session counters of :data:`SESSION_FEATURES`, in [0, 1]
                                 (log_spent in [0, log1p(max spend / mean price)])
``candidates``     (K, F)        per-candidate features, columns ``bundlerl.candidates.features.COL``
                                 (the last, ``comp_bought``, from the purchases the recommender saw)
``action_mask``    (K,)          1.0 where the candidate is a valid action, else 0.0
=================  ============  ==============================================================

Nothing here reads simulator truth (taste, needs, budget, fatigue, complement graph): the
inputs are the profile vector, the event log the recommender keeps itself (shown, clicked,
bought, spent) and the candidate set (docs/SIMULATOR.md property 7).

In compose mode ``K`` is ``M + 1``: row ``j < M`` describes the bundle "partial bundle + item j",
row ``M`` ("done") the partial bundle itself.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

__all__ = [
    "SPEC_VERSION", "observation_spec", "ACTION_MODES", "PROFILE_KEY", "HISTORY_KEY", "SESSION_KEY", "CANDIDATES_KEY", "MASK_KEY", "OBS_KEYS",
    "SESSION_FEATURES", "observation_space", "session_features", "project", "build_observation",
]

ACTION_MODES = ("bundle", "compose")
"""Action modes: pick one of K candidate bundles, or compose a bundle item by item (K = M + 1, see above). Here,
not in ``session``, so that the command line lists them without importing the simulator."""

PROFILE_KEY = "profile"
HISTORY_KEY = "history"
SESSION_KEY = "session"
CANDIDATES_KEY = "candidates"
MASK_KEY = "action_mask"
"""Key of the (K,) 0/1 validity mask of the candidates ((N, K) in a batch): Gymnasium and sb3-contrib's name."""
OBS_KEYS = (PROFILE_KEY, HISTORY_KEY, SESSION_KEY, CANDIDATES_KEY, MASK_KEY)
"""Observation keys in a fixed order."""

SESSION_FEATURES: tuple[str, ...] = (
    "progress",          # t / horizon
    "clicks",            # clicks so far / horizon
    "purchases",         # steps with >= 1 item bought so far / horizon
    "items_bought",      # items bought so far / (horizon * K_max)
    "log_spent",         # log1p(money spent so far / mean catalogue price)
    "last_click",        # 1 if the previous step was clicked
    "last_items",        # items bought at the previous step / K_max
    "miss_streak",       # consecutive steps without a click / horizon (an observable proxy of fatigue)
    "shown_share",       # distinct items shown so far / (horizon * K_max)
    "partial_size",      # compose mode: items in the partial bundle / K_max (0 in bundle mode)
)
"""Names of the session counters, in column order of ``obs["session"]``."""


SPEC_VERSION = 2
"""Version of the observation's layout: its keys, shapes, column order and the meaning of every column. Bump it with
any change to them; logged data (``bundlerl.evaluation.logs``) records it, and a policy is only evaluated on logs of
its own version. 2: the candidate column ``comp_bought`` (estimated complementarity of the bundle to the items bought
this session; ``bundlerl.candidates.features.bought_complementarity``) appended, F = 10."""


def observation_spec(P: int, K: int, F: int) -> dict:
    """The observation's layout as plain data (JSON-ready): ``version`` (:data:`SPEC_VERSION`), ``keys``, the sizes
    ``P``, ``K``, ``F``, ``S`` and the column names of ``candidates`` and ``session``. Two observations are
    interchangeable when their specs are equal."""
    from bundlerl.candidates.features import CANDIDATE_FEATURES

    return {"version": SPEC_VERSION, "keys": list(OBS_KEYS), "P": int(P), "K": int(K), "F": int(F),
            "S": len(SESSION_FEATURES), "candidate_features": list(CANDIDATE_FEATURES),
            "session_features": list(SESSION_FEATURES)}


def observation_space(P: int, K: int, F: int, log_price_range: tuple[float, float] = (-np.inf, np.inf),
                      max_log_spent: float = np.inf) -> spaces.Dict:
    """The Dict space for profile dim ``P``, ``K`` actions and ``F`` candidate features.

    Bounds per candidate column (``bundlerl.candidates.features.COL``): rel_profile, rel_history in [-1, 1]; mean_comp,
    max_sub, size, popularity, novelty, discount in [0, 1]; log_price in ``log_price_range`` (the env passes
    [log(cheapest item * (1 - largest discount)), log(K_max * dearest item)]). Session counters are in [0, 1]
    except log_spent in [0, ``max_log_spent``].
    """
    from bundlerl.candidates.features import COL

    S = len(SESSION_FEATURES)
    f32 = np.float32
    lo = np.zeros((K, F), f32)
    hi = np.ones((K, F), f32)
    if F == len(COL):
        lo[:, COL.rel_profile] = lo[:, COL.rel_history] = -1.0
        lo[:, COL.log_price], hi[:, COL.log_price] = log_price_range
        # invalid (masked) slots carry all-zero features: keep 0 inside the log_price range
        lo[:, COL.log_price] = np.minimum(lo[:, COL.log_price], 0.0)
        hi[:, COL.log_price] = np.maximum(hi[:, COL.log_price], 0.0)
    else:
        lo[:], hi[:] = -np.inf, np.inf
    s_hi = np.ones(S, f32)
    s_hi[SESSION_FEATURES.index("log_spent")] = max_log_spent
    return spaces.Dict(
        {
            PROFILE_KEY: spaces.Box(-1.0, 1.0, (P,), f32),
            HISTORY_KEY: spaces.Box(-1.0, 1.0, (P,), f32),
            SESSION_KEY: spaces.Box(np.zeros(S, f32), s_hi, dtype=f32),
            CANDIDATES_KEY: spaces.Box(lo, hi, dtype=f32),
            MASK_KEY: spaces.Box(0.0, 1.0, (K,), f32),
        }
    )


def session_features(
    t: np.ndarray,
    clicks: np.ndarray,
    purchases: np.ndarray,
    items: np.ndarray,
    spent: np.ndarray,
    last_click: np.ndarray,
    last_items: np.ndarray,
    miss_streak: np.ndarray,
    n_shown: np.ndarray,
    partial: np.ndarray,
    *,
    horizon: int,
    K_max: int,
    mean_price: float,
) -> np.ndarray:
    """(N, S) float32 session counters from (N,) event counts (see :data:`SESSION_FEATURES`).

    All inputs are recommender-side counts; money is in catalogue currency units.
    """
    h = float(horizon)
    cols = (
        t / h,
        clicks / h,
        purchases / h,
        items / (h * K_max),
        np.log1p(np.maximum(spent, 0.0) / mean_price),
        last_click,
        last_items / K_max,
        miss_streak / h,
        n_shown / (h * K_max),
        partial / K_max,
    )
    return np.stack([np.asarray(c, dtype=np.float32) for c in cols], axis=1)


def project(vecs: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """(N, P) float32 = vecs (N, d) @ projection (d, P), clipped to [-1, 1] against rounding."""
    return np.clip(vecs @ projection, -1.0, 1.0).astype(np.float32, copy=False)


def build_observation(log, candidates: np.ndarray, mask: np.ndarray, partial_len: np.ndarray, *, horizon: int,
                      K_max: int, mean_price: float) -> dict[str, np.ndarray]:
    """The observation dict (:data:`OBS_KEYS`, each (N, ...) float32) of the N rows of a recommender-side event log.

    The one assembly of an observation, shared by the env (``SessionBatch.observe``) and serving
    (``bundlerl.serving.recommender``): ``profile`` and ``history`` are the log's projected vectors, ``session`` its
    counters (:meth:`bundlerl.env.event_log.EventLog.session_features`, clipped to the space's [0, 1] so a served
    session longer than the horizon stays inside the space; a no-op in the env, where t <= horizon),
    ``candidates`` the (N, K, F) features with the two relevance columns clipped to their declared [-1, 1] (a mean
    cosine of unit float32 vectors can exceed 1 by an ulp), ``action_mask`` the (N, K) mask as 0/1.

    :param log: an ``EventLog`` of N rows. :param candidates: (N, K, F) float32, copied. :param mask: (N, K) bool.
    :param partial_len: (N,) items of each row's partial bundle (compose mode; zeros in bundle mode).
    """
    from bundlerl.candidates.features import COL

    sess = log.session_features(partial_len, horizon=horizon, K_max=K_max, mean_price=mean_price)
    spent = SESSION_FEATURES.index("log_spent")
    capped = np.clip(sess, 0.0, 1.0)
    capped[:, spent] = sess[:, spent]
    cand = np.array(candidates, dtype=np.float32)
    rel = [COL.rel_profile, COL.rel_history]
    cand[..., rel] = np.clip(cand[..., rel], -1.0, 1.0)
    return {
        PROFILE_KEY: log.profile_obs.copy(),
        HISTORY_KEY: log.history_obs.copy(),
        SESSION_KEY: capped,
        CANDIDATES_KEY: cand,
        MASK_KEY: np.asarray(mask).astype(np.float32),
    }
