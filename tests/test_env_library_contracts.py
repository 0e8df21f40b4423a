"""What the libraries users bring expect of the envs: rendering and per-row access.

- ``rgb_array`` rendering (SB3's ``make_vec_env`` asks for it; video recorders need frames of one shape): every
  frame of an env has the shape ``frame_shape(K_max + 3)`` whatever is shown (many random texts, episodes in both
  action modes, invalid actions, resets), and draws exactly the ``ansi`` text.
- SB3's ``make_vec_env`` with ``DummyVecEnv`` (the spawned ``SubprocVecEnv`` is in tests/test_vector_and_learning.py)
  and a ``VecVideoRecorder``-style loop (``render_mode`` "rgb_array", ``metadata["render_fps"]``, tiled frames of one
  shape across episode ends).
- :class:`BundleRecVecEnv`'s ``get_attr`` / ``set_attr`` / ``env_method`` honour ``indices`` the way SB3's
  tests/test_vec_envs.py checks ``DummyVecEnv``: per-row methods and attributes answer the requested rows (equal to
  a ``DummyVecEnv`` of single envs with the same seeds), shared ones may only be set or called for every row
  (NotImplementedError otherwise), indices outside [-N, N) raise IndexError — for many generated index lists.
"""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bundlerl  # noqa: F401  - registers the ids
from bundlerl.env.bundle_env import BundleRecEnv
from bundlerl.env.config import PRESETS
from bundlerl.env.render import COLUMNS, frame_shape, text_frame
from bundlerl.env.vec_env import BundleRecVecEnv

SMALL = PRESETS["small"]
SHAPE = frame_shape(SMALL.K_max + 3)
N = 3


def _check_frame(frame) -> None:
    assert isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.shape == SHAPE, \
        (type(frame), getattr(frame, "shape", None))


# ---------------------------------------------------------------------------------------- rgb_array frames
@given(st.text(max_size=2000))
@settings(max_examples=150, deadline=None)
def test_any_text_draws_as_a_frame_of_the_fixed_shape(text):
    """Any text (non-Latin-1 characters, control characters, long lines, more lines than fit) gives a frame of
    the fixed shape, the same frame each time."""
    frame = text_frame(text, SMALL.K_max + 3)
    _check_frame(frame)
    np.testing.assert_array_equal(frame, text_frame(text, SMALL.K_max + 3))


@given(st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=COLUMNS))
@settings(max_examples=60, deadline=None)
def test_visible_text_changes_the_frame(line):
    """Printable text leaves ink, and what the frame shows depends on it: a line and the same line with its first
    character replaced draw differently."""
    blank = text_frame("", 2)
    frame = text_frame(line, 2)
    assert (frame != blank).any()
    other = ("#" if line[0] != "#" else "%") + line[1:]
    assert (text_frame(other, 2) != frame).any()


@pytest.mark.parametrize("action_mode", ["bundle", "compose"])
def test_env_frames_keep_one_shape_and_draw_the_ansi_text(action_mode):
    """Episodes of random actions (masked ones included, so "shown: nothing" frames too) and resets: every
    rgb_array frame has the fixed shape and equals the ansi text drawn by ``text_frame``."""
    rgb = BundleRecEnv(SMALL, render_mode="rgb_array", action_mode=action_mode)
    txt = BundleRecEnv(SMALL, render_mode="ansi", action_mode=action_mode)
    rng = np.random.default_rng(0)
    texts = set()
    for episode in range(3):
        rgb.reset(seed=episode)
        txt.reset(seed=episode)
        for _ in range(40):
            frame, text = rgb.render(), txt.render()
            _check_frame(frame)
            np.testing.assert_array_equal(frame, text_frame(text, SMALL.K_max + 3))
            texts.add(text.splitlines()[1].split(" ")[0])
            a = int(rng.integers(rgb.action_space.n))
            _, _, term, trunc, _ = rgb.step(a)
            txt.step(a)
            if term or trunc:
                break
    assert {"session", "shown"} <= texts, texts  # the frames showed starts and shown bundles


def test_gymnasium_checker_passes_with_rgb_array_rendering():
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(gym.make("bundlerl/BundleRec-small-v0", render_mode="rgb_array").unwrapped)


def test_unknown_render_mode_is_refused_before_building_anything():
    with pytest.raises(ValueError, match="rgb_array"):
        BundleRecEnv(SMALL, render_mode="human")
    with pytest.raises(ValueError, match="rgb_array"):
        BundleRecVecEnv(SMALL, num_envs=2, render_mode="human")


def _record(venv, steps: int) -> list[np.ndarray]:
    """What SB3's VecVideoRecorder does with a VecEnv (it needs moviepy to write the file, so not run here): check
    the render mode, read the fps, then collect ``venv.render()`` after reset and after each step."""
    assert venv.render_mode == "rgb_array"
    metadata = venv.get_attr("metadata")[0] if hasattr(venv, "envs") else venv.metadata
    assert metadata["render_fps"] > 0 and "rgb_array" in metadata["render_modes"]
    obs = venv.reset()
    frames = [venv.render()]
    for _ in range(steps):
        obs, _, _, _ = venv.step(np.argmax(obs["action_mask"], axis=1))
        frames.append(venv.render())
    return frames


def test_sb3_make_vec_env_dummy_records_frames_of_one_shape():
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = make_vec_env("bundlerl/BundleRec-small-v0", n_envs=2, seed=3, vec_env_cls=DummyVecEnv)
    frames = _record(venv, 2 * SMALL.horizon)  # crosses episode ends (auto-reset)
    shapes = {f.shape for f in frames}
    assert len(shapes) == 1, shapes
    from stable_baselines3.common.vec_env.base_vec_env import tile_images

    assert shapes == {tile_images([np.zeros(SHAPE, np.uint8)] * 2).shape}  # SB3 tiles the rows' frames
    for img in venv.get_images():
        _check_frame(img)


def test_vec_env_records_frames_of_one_shape_equal_to_single_envs():
    """BundleRecVecEnv in rgb_array mode: its rows' frames are those of single envs with the same seeds."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    vec = BundleRecVecEnv(SMALL, num_envs=2, seed=4, render_mode="rgb_array")
    singles = DummyVecEnv([lambda: BundleRecEnv(SMALL, render_mode="rgb_array") for _ in range(2)])
    singles.seed(4)
    frames_v, frames_s = _record(vec, 2 * SMALL.horizon), _record(singles, 2 * SMALL.horizon)
    assert len({f.shape for f in frames_v}) == 1
    for fv, fs in zip(frames_v, frames_s):
        np.testing.assert_array_equal(fv, fs)


def test_vec_env_ansi_render_lists_every_row():
    vec = BundleRecVecEnv(SMALL, num_envs=2, seed=0, render_mode="ansi")
    vec.reset()
    text = vec.render()
    assert text.count("--- row ") == 2 and text.count("session start") == 2


# ---------------------------------------------------------------------------------------- per-row access
@pytest.fixture(scope="module")
def envs():
    """A BundleRecVecEnv of N rows and a DummyVecEnv of N single envs, seeded alike and stepped once."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    vec = BundleRecVecEnv(SMALL, num_envs=N, seed=11, render_mode="rgb_array")
    dummy = DummyVecEnv([lambda: BundleRecEnv(SMALL, render_mode="rgb_array") for _ in range(N)])
    dummy.seed(11)
    obs_v, obs_d = vec.reset(), dummy.reset()
    np.testing.assert_array_equal(obs_v["action_mask"], obs_d["action_mask"])
    actions = np.argmax(obs_v["action_mask"], axis=1)
    vec.step(actions)
    dummy.step(actions)
    return vec, dummy


index_lists = st.lists(st.integers(-N - 2, N + 1), max_size=6)


@given(idx=st.one_of(st.none(), st.integers(-N - 1, N), index_lists))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_indices_are_honoured_like_dummy_vec_env(envs, idx):
    vec, dummy = envs
    listed = list(range(N)) if idx is None else [idx] if isinstance(idx, int) else idx
    if any(not -N <= i < N for i in listed):
        for call in (lambda: vec.get_attr("config", indices=idx), lambda: vec.env_method("action_masks", indices=idx),
                     lambda: vec.set_attr("render_fps_hint", 1, indices=idx)):
            with pytest.raises(IndexError, match="out of range"):
                call()
        return
    rows = [i % N for i in listed]
    # per-row methods: the requested rows' own results, as DummyVecEnv's envs give them
    for got, want in zip(vec.env_method("action_masks", indices=idx), dummy.env_method("action_masks", indices=idx),
                         strict=True):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(vec.env_method("render", indices=idx), dummy.env_method("render", indices=idx), strict=True):
        np.testing.assert_array_equal(got, want)
    # per-row attributes: the row's own generator and candidate bundles
    gens = vec.get_attr("np_random", indices=idx)
    assert [id(g) for g in gens] == [id(vec.core.row_rngs[r]) for r in rows]
    for got, r in zip(vec.get_attr("candidate_items", indices=idx), rows, strict=True):
        np.testing.assert_array_equal(got, vec.candidate_items[r])
    # shared attributes: one entry per requested row
    assert vec.get_attr("config", indices=idx) == [vec.config] * len(rows)
    # shared state may be set, and shared methods called, only for every row
    if not rows:  # nothing requested: nothing done, as in DummyVecEnv
        vec.set_attr("user_note", "untouched", indices=idx)
        assert vec.env_method("seed", 5, indices=idx) == []
    elif set(rows) == set(range(N)):
        vec.set_attr("user_note", tuple(listed), indices=idx)
        assert vec.get_attr("user_note") == [tuple(listed)] * N
        assert vec.env_method("get_attr", "user_note", indices=idx) == [[tuple(listed)] * N] * len(rows)
    else:
        with pytest.raises(NotImplementedError, match=r"share one object.*indices=None"):
            vec.set_attr("user_note", 0, indices=idx)
        with pytest.raises(NotImplementedError, match="env_method"):
            vec.env_method("seed", 5, indices=idx)


def test_sb3_custom_calls_on_the_vec_env(envs):
    """SB3's test_vecenv_custom_calls, for what a batched env can honour."""
    vec, _ = envs
    assert np.array_equal(vec.render(mode="rgb_array"), vec.render())
    with pytest.warns(UserWarning):
        vec.render(mode="something_else")
    vec.set_attr("current_step", 42, indices=None)
    assert vec.get_attr("current_step") == [42] * N
    assert vec.get_attr("current_step", indices=[0, 2]) == [42, 42]
    with pytest.raises(NotImplementedError, match="set_attr"):
        vec.set_attr("current_step", 12, indices=[0, -1])
    assert vec.get_attr("current_step") == [42] * N  # a refused call changes nothing
    assert len(vec.env_method("action_masks", indices=[0, 2])) == 2
    assert vec.env_is_wrapped(gym.Wrapper, indices=[1]) == [False]
    with pytest.raises(AttributeError):
        vec.get_attr("no_such_attribute")
