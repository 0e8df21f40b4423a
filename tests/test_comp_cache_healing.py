"""A damaged complementarity cache file heals itself (it used to crash every command on that preset until deleted).

Whatever is wrong with ``comp-<key>.npz`` (cut at any offset, bytes flipped, garbage, empty, an array missing, of
the wrong shape or dtype, another FORMAT_VERSION, a folder in its place), :func:`fit` returns exactly (bit for
bit) what a fit without a cache returns, says so in one RuntimeWarning naming the file, refits once and overwrites
the entry, after which the next ``fit`` is a plain hit: no warning, no refit. The fits are tiny (60 items, 600
baskets, one epoch: ~0.15 s) so that hypothesis can try many kinds of damage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from _fit_data import fit_data
from hypothesis import event, given, settings
from hypothesis import strategies as st

from bundlerl.candidates.complementarity import (
    FORMAT_VERSION,
    ComplementConfig,
    ComplementError,
    ComplementModel,
    fit,
    fitting,
)

TINY = ComplementConfig(rank=4, n_pairs=2_000, epochs=1, batch_size=1024, top_k=4, pool_size=60, svd_rank=8,
                        blend_pairs=2_000, min_blend_pairs=40, threads=1)


@pytest.fixture(scope="module")
def data():
    return fit_data(60, 30, 600, 16)


def _fit(data, cache_dir, **kw):
    cat, baskets, emb = data
    return fit(cat, baskets, emb, np.random.default_rng(9), TINY, cache_dir=cache_dir, **kw)


def state(model: ComplementModel) -> dict[str, np.ndarray]:
    """Every array a model's scores and top lists are made of, plus its scalars."""
    out = {k: v for k, v in vars(model).items() if isinstance(v, np.ndarray)}
    for name in ("counts", "user_counts"):
        pc = getattr(model, name)
        out.update({f"{name}.keys": pc.keys, f"{name}.counts": pc.counts, f"{name}.item_counts": pc.item_counts,
                    f"{name}.n": np.array([pc.n_baskets, pc.n_items])})
    out["bias"] = np.array(model.bias)
    return out


def assert_same(got: ComplementModel, ref: ComplementModel) -> None:
    a, b = state(got), state(ref)
    assert sorted(a) == sorted(b)
    for k in b:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    assert got.config == ref.config


@pytest.fixture(scope="module")
def reference(data):
    """The uncached fit, and the bytes and arrays of its healthy cache file."""
    ref = _fit(data, None, use_cache=False)
    with tempfile.TemporaryDirectory() as d:
        m = _fit(data, d)
        path = m.cache_path
        raw = path.read_bytes()
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    assert_same(m, ref)
    return ref, path.name, raw, arrays


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


# ---------------------------------------------------------------- kinds of damage: (label, how to make it)
def _truncations(n: int):
    return st.integers(0, n - 1).map(lambda k: ("truncated", lambda raw, arrays, p: p.write_bytes(raw[:k])))


def _flips(n: int):
    def apply(flips):
        def make(raw, arrays, p):
            b = bytearray(raw)
            for at, mask in flips:
                b[at] ^= mask
            p.write_bytes(bytes(b))

        return ("flipped", make)

    return st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, 255)), min_size=1, max_size=8).map(apply)


def _garbage():
    return st.binary(min_size=1, max_size=4096).map(lambda g: ("garbage", lambda raw, arrays, p: p.write_bytes(g)))


def _missing(names: list[str]):
    return st.sampled_from(names + ["meta"]).map(lambda name: (f"missing {name}", lambda raw, arrays, p: p.write_bytes(
        _npz({k: v for k, v in arrays.items() if k != name}))))


def _reshaped(names: list[str]):
    def change(name, how):
        def make(raw, arrays, p):
            x = arrays[name]
            if how == "drop a row":
                x = x[:-1] if x.shape[0] > 1 else np.concatenate([x, x])
            elif how == "add an axis":
                x = x[..., None]
            elif how == "flatten or widen":
                x = x.ravel() if x.ndim > 1 else np.stack([x, x], axis=1)
            else:  # another dtype
                x = x.astype(np.float64 if x.dtype.kind != "f" or x.dtype.itemsize != 8 else np.float32)
            p.write_bytes(_npz({**arrays, name: x}))

        return (f"{name}: {how}", make)

    hows = ["drop a row", "add an axis", "flatten or widen", "other dtype"]
    return st.builds(change, st.sampled_from(names), st.sampled_from(hows))


def _other_version():
    def make(raw, arrays, p):
        meta = json.loads(str(arrays["meta"]))
        meta["format_version"] -= 1
        p.write_bytes(_npz({**arrays, "meta": np.array(json.dumps(meta))}))

    return st.just(("format version", make))


def _empty():
    return st.just(("empty", lambda raw, arrays, p: p.write_bytes(b"")))


def _folder():
    def make(raw, arrays, p):
        p.mkdir()
        (p / "something").write_bytes(b"x")

    return st.just(("folder", make))


def damage(n: int, names: list[str]):
    """Any kind of damage to a file of ``n`` bytes holding the arrays ``names`` (and ``meta``)."""
    return st.one_of(_truncations(n), _flips(n), _garbage(), _missing(names), _reshaped(names), _other_version(),
                     _empty(), _folder())


@settings(max_examples=60, deadline=None)
@given(draw=st.data())
def test_any_damaged_cache_entry_is_a_warned_miss_that_heals(data, reference, draw):
    ref, name, raw, arrays = reference
    label, make = draw.draw(damage(len(raw), sorted(k for k in arrays if k != "meta")), label="damage")
    event(label.split(" ")[0] if label.startswith("missing") else label.split(":")[-1].strip())
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        make(raw, arrays, path)
        with mock.patch.object(fitting, "_fit", wraps=fitting._fit) as spy, warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            got = _fit(data, d)
        assert_same(got, ref)
        msgs = [str(x.message) for x in w if issubclass(x.category, RuntimeWarning)]
        assert len(w) == len(msgs), [str(x.message) for x in w]  # nothing but our RuntimeWarnings
        if label == "flipped" and not msgs:
            # a flip in a byte no reader looks at (a zip header's timestamp): the entry is intact, a plain hit
            assert got.cache_hit and spy.call_count == 0
        else:
            assert len(msgs) == 1 and str(path) in msgs[0] and "unusable" in msgs[0], (label, msgs)
            assert spy.call_count == 1 and not got.cache_hit and got.cache_path == path
        assert path.is_file()
        # healed: the next fit reads the entry as it is, without a warning and without fitting
        with mock.patch.object(fitting, "_fit", wraps=fitting._fit) as spy, warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            again = _fit(data, d)
        assert not w and spy.call_count == 0 and again.cache_hit
        assert_same(again, ref)
        assert sorted(os.listdir(d)) == [name]  # no temporary left behind


@pytest.mark.parametrize("label,needle", [
    ("missing u", "'u' is missing"),
    ("top_items: add an axis", "'top_items'"),
    ("format version", f"format version {FORMAT_VERSION - 1}, this code reads {FORMAT_VERSION}"),
    ("empty", "unusable ("),
])
def test_the_warning_says_what_was_wrong(data, reference, tmp_path, label, needle):
    ref, name, raw, arrays = reference
    path = tmp_path / name
    if label == "missing u":
        path.write_bytes(_npz({k: v for k, v in arrays.items() if k != "u"}))
    elif label == "top_items: add an axis":
        path.write_bytes(_npz({**arrays, "top_items": arrays["top_items"][..., None]}))
    elif label == "format version":
        meta = json.loads(str(arrays["meta"]))
        meta["format_version"] = FORMAT_VERSION - 1
        path.write_bytes(_npz({**arrays, "meta": np.array(json.dumps(meta))}))
    else:
        path.write_bytes(b"")
    with pytest.warns(RuntimeWarning, match="complementarity cache") as w:
        _fit(data, tmp_path)
    assert len(w) == 1 and needle in str(w[0].message) and str(path) in str(w[0].message)


def test_most_byte_flips_are_caught(reference, tmp_path):
    """The zip CRC of each array (checked by the full reads of ``load``) catches flips in the data; only bytes no
    reader uses (zip header timestamps, ...) may change unnoticed, and those leave the model as it was."""
    ref, name, raw, arrays = reference
    rng = np.random.default_rng(0)
    caught = 0
    for _ in range(200):
        b = bytearray(raw)
        b[int(rng.integers(0, len(b)))] ^= int(rng.integers(1, 256))
        p = tmp_path / "x.npz"
        p.write_bytes(bytes(b))
        try:
            m = ComplementModel.load(p)
        except ComplementError:
            caught += 1
        else:
            assert_same(m, ref)
    assert caught >= 190, caught


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporaries_of_killed_writers_are_swept_when_the_cache_is_used(data, reference, tmp_path):
    _, name, _, _ = reference
    dead = tmp_path / f".{name}.{_dead_pid()}.abcd1234.tmp.npz"  # a writer killed mid-write, minutes ago
    live = tmp_path / f".{name}.{os.getpid()}.efgh5678.tmp.npz"  # a writer still at work
    for p in (dead, live):
        p.write_bytes(b"half a file")
    old = time.time() - 600
    os.utime(dead, (old, old))
    _fit(data, tmp_path)
    assert not dead.exists() and live.exists()


def test_an_unwritable_cache_warns_and_still_returns_the_fit(data, reference, tmp_path):
    ref = reference[0]
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    with pytest.warns(RuntimeWarning, match="cannot write the complementarity cache"):
        got = _fit(data, blocker)
    assert_same(got, ref)
    assert got.cache_path is None and not got.cache_hit
