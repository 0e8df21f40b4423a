"""A damaged saved ItemIndex is a clear error, never a crash inside faiss nor an index of flipped vectors.

``ItemIndex.save`` writes the faiss file and a JSON sidecar holding its SHA-256; ``ItemIndex.load`` of any damaged
pair (index file cut, bytes flipped, garbage, empty, a folder in its place; sidecar cut, garbage, a field missing or
mistyped) raises :class:`IndexError_` (a BundlerlError) naming the file and the fix. Before the checksum, faiss
loaded most bit-flipped files without complaint and failed on truncated ones with a bare RuntimeError.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from bundlerl.candidates.index import IndexConfig, IndexError_, ItemIndex
from bundlerl.utils.errors import BundlerlError

KINDS = {"flat": IndexConfig(), "hnsw": IndexConfig(kind="hnsw"), "ivf": IndexConfig(kind="ivf", nlist=4),
         "reduced": IndexConfig(reduce_dim=8)}


@pytest.fixture(scope="module")
def saved():
    """Per kind: (index file bytes, sidecar text, the search results of the saved index)."""
    rng = np.random.default_rng(0)
    E = rng.standard_normal((200, 16)).astype(np.float32)
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for name, cfg in KINDS.items():
            index = ItemIndex(E, cfg)
            p = index.save(Path(d) / f"{name}.faiss")
            out[name] = (p.read_bytes(), (Path(d) / f"{name}.faiss.json").read_text(), index.search(E[:5], 4))
    return out


def _index_damage(n: int):
    def flips(fl):
        def make(raw):
            b = bytearray(raw)
            for at, mask in fl:
                b[at] ^= mask
            return bytes(b) if bytes(b) != raw else raw[:-1]  # flips that cancel out: damage it anyway

        return ("flipped", make)

    return st.one_of(
        st.integers(0, n - 1).map(lambda k: ("truncated", lambda raw: raw[:k])),
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, 255)), min_size=1, max_size=6).map(flips),
        st.binary(min_size=1, max_size=2048).map(lambda g: ("garbage", lambda raw: g)),
        st.just(("empty", lambda raw: b"")),
        st.just(("folder", None)),
    )


def _sidecar_damage(text: str):
    meta = json.loads(text)

    def without(key):
        return ("missing " + key, json.dumps({k: v for k, v in meta.items() if k != key}))

    def mistyped(key, value):
        return (f"{key} = {value!r}", json.dumps({**meta, key: value}))

    return st.one_of(
        st.integers(0, len(text) - 2).map(lambda k: ("truncated", text[:k])),
        st.text(max_size=200).filter(lambda t: t.strip()[:1] != "{").map(lambda t: ("garbage", t)),
        st.sampled_from(["format", "dim", "n_items", "config"]).map(without),
        st.sampled_from([("dim", "sixteen"), ("n_items", None), ("config", [1, 2]), ("config", {"kind": "tree"}),
                         ("config", {"no_such_field": 1}), ("format", "bundlerl.ItemIndex/0"),
                         ("sha256", "0" * 64)]).map(lambda kv: mistyped(*kv)),
        st.just(("a list", "[1, 2, 3]")),
    )


@settings(max_examples=80, deadline=None)
@given(draw=st.data())
def test_any_damaged_index_file_is_a_clear_error(saved, draw):
    kind = draw.draw(st.sampled_from(sorted(KINDS)), label="kind")
    raw, side, _ = saved[kind]
    which = draw.draw(st.sampled_from(["index", "sidecar"]), label="which")
    with tempfile.TemporaryDirectory() as d:
        path, sidecar = Path(d) / "items.faiss", Path(d) / "items.faiss.json"
        path.write_bytes(raw)
        sidecar.write_text(side)
        if which == "index":
            label, make = draw.draw(_index_damage(len(raw)), label="damage")
            if make is None:
                path.unlink()
                path.mkdir()
            else:
                path.write_bytes(make(raw))
        else:
            label, text = draw.draw(_sidecar_damage(side), label="damage")
            sidecar.write_text(text)
        event(f"{which}: {label.split(' = ')[0]}")
        with pytest.raises(IndexError_) as err:
            ItemIndex.load(path)
        msg = str(err.value)
        assert isinstance(err.value, BundlerlError)
        assert str(path) in msg, msg  # the index file or its sidecar (whose name starts with the index's)
        assert "ItemIndex" in msg, msg  # the fix: rebuild and save (or write it) with ItemIndex.save


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_intact_files_round_trip_and_old_sidecars_still_load(saved, tmp_path, kind):
    raw, side, expect = saved[kind]
    path = tmp_path / "items.faiss"
    path.write_bytes(raw)
    (tmp_path / "items.faiss.json").write_text(side)
    rng = np.random.default_rng(0)
    E = rng.standard_normal((200, 16)).astype(np.float32)
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    for a, b in zip(ItemIndex.load(path).search(E[:5], 4), expect):
        np.testing.assert_array_equal(a, b)
    meta = json.loads(side)
    assert len(meta.pop("sha256")) == 64
    (tmp_path / "items.faiss.json").write_text(json.dumps(meta))  # written before the checksum existed
    for a, b in zip(ItemIndex.load(path).search(E[:5], 4), expect):
        np.testing.assert_array_equal(a, b)


def test_truncated_file_without_checksum_is_still_a_clear_error(saved, tmp_path):
    raw, side, _ = saved["flat"]
    path = tmp_path / "items.faiss"
    path.write_bytes(raw[: len(raw) // 2])
    meta = json.loads(side)
    del meta["sha256"]
    (tmp_path / "items.faiss.json").write_text(json.dumps(meta))
    with pytest.raises(IndexError_, match="faiss cannot read the index file .*items.faiss"):
        ItemIndex.load(path)
