"""encoders/: the real packaged MiniLM encoder and the on-disk cache."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from bundlerl.encoders import CachedEncoder, EncoderError, SentenceEncoder, TextEncoder, default_encoder
from bundlerl.encoders.cache import MAX_SHARDS

TEXTS = [
    "digital camera",
    "DSLR camera body",
    "banana",
    "Organic Bananas",
    "SD memory card 64GB",
    "wireless mouse",
    "Chocolate Sandwich Cookies",
    "All-Seasons Salt",
]


class Counting:
    """Thin wrapper counting the texts that reach the real encoder."""

    def __init__(self, inner):
        self.inner = inner
        self.calls: list[int] = []

    identity = property(lambda self: self.inner.identity)
    dim = property(lambda self: self.inner.dim)

    def encode(self, texts, *, batch_size=64, progress=None):
        self.calls.append(len(texts))
        return self.inner.encode(texts, batch_size=batch_size, progress=progress)


class HashEncoder:
    """Tiny deterministic fake (vectors from sha256 of the text) to test cache mechanics in isolation."""

    def __init__(self, dim=8, identity="hash-fake@1"):
        self.dim, self.identity, self.calls = dim, identity, 0

    def encode(self, texts, *, batch_size=64, progress=None):
        self.calls += 1
        raw = np.array([np.frombuffer(hashlib.sha256(t.encode()).digest(), dtype=np.uint8)[: self.dim] for t in texts])
        v = raw.reshape(len(texts), self.dim).astype(np.float32) - 127.5
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def shard_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("shard-*.npz"))


# --- SentenceEncoder ------------------------------------------------------------------------

def test_import_is_light():
    code = "import encoders, sys; assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_shape_dtype_unit_norm(minilm):
    assert isinstance(minilm, TextEncoder)
    v = minilm.encode(TEXTS)
    assert v.shape == (len(TEXTS), 384) and v.dtype == np.float32 and minilm.dim == 384
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    empty = minilm.encode([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32


def test_deterministic_and_batch_independent(minilm):
    a = minilm.encode(TEXTS)
    b = minilm.encode(TEXTS)
    np.testing.assert_allclose(a, b, atol=1e-6)
    # A text's vector does not depend on its batch-mates (padding) nor on the batch size.
    c = minilm.encode(TEXTS[::-1], batch_size=3)[::-1]
    np.testing.assert_allclose(a, c, atol=1e-5)


def test_semantic_sanity(minilm):
    cam, dslr, banana, bananas = minilm.encode(TEXTS[:4])
    assert cam @ dslr > cam @ banana + 0.2
    assert banana @ bananas > banana @ dslr + 0.2


@pytest.mark.parametrize(
    "bad, idx", [(["ok", ""], 1), (["   ", "ok"], 0), (["ok", "fine", 3], 2), (["ok", None], 1), (["ok", b"bytes"], 1)]
)
def test_bad_texts_name_the_index(minilm, bad, idx, tmp_path):
    for enc in (minilm, CachedEncoder(minilm, tmp_path)):
        with pytest.raises(EncoderError, match=f"index {idx}"):
            enc.encode(bad)


def test_single_string_is_rejected(minilm):
    with pytest.raises(EncoderError, match="wrap it in a list"):
        minilm.encode("digital camera")


def test_bad_batch_size(minilm):
    with pytest.raises(EncoderError, match="batch_size"):
        minilm.encode(["a"], batch_size=0)
    with pytest.raises(EncoderError, match="batch_size"):
        SentenceEncoder(batch_size=-1)


def test_unknown_model_path_or_name(tmp_path):
    missing = tmp_path / "no_such_model"
    with pytest.raises(EncoderError, match="no model folder at .*no_such_model"):
        SentenceEncoder(str(missing))
    (tmp_path / "empty").mkdir()
    with pytest.raises(EncoderError, match="not a sentence-transformers model folder"):
        SentenceEncoder(tmp_path / "empty")
    with pytest.raises(EncoderError, match="local Hugging Face cache.*downloads are disabled"):
        SentenceEncoder("no-such-org-bundlerl/no-such-model")


def test_identity_tracks_weights_not_location(tmp_path):
    packaged = SentenceEncoder()
    assert packaged.identity.startswith("all-MiniLM-L6-v2@")
    assert SentenceEncoder(str(packaged.path)).identity == packaged.identity
    assert SentenceEncoder("all-MiniLM-L6-v2").identity == packaged.identity
    # Same files elsewhere (symlinked) -> same fingerprint; a changed config -> a new identity.
    for name, changed in (("same", False), ("changed", True)):
        copy = tmp_path / name
        for f in packaged.path.rglob("*"):
            if f.is_file():
                dst = copy / f.relative_to(packaged.path)
                dst.parent.mkdir(parents=True, exist_ok=True)
                if changed and f.name == "config.json" and f.parent == packaged.path:
                    dst.write_text(f.read_text() + "\n")
                else:
                    dst.symlink_to(f)
        fp = SentenceEncoder(copy).identity.split("@")[1]
        assert (fp != packaged.identity.split("@")[1]) == changed


# --- CachedEncoder with the real model ------------------------------------------------------

def test_cache_hit_identical_and_skips_model(minilm, tmp_path):
    counting = Counting(minilm)
    cache = CachedEncoder(counting, tmp_path)
    assert isinstance(cache, TextEncoder) and cache.identity == minilm.identity and cache.dim == 384
    texts = TEXTS + [TEXTS[0]]  # a duplicate is encoded once
    first = cache.encode(texts)
    assert counting.calls == [len(TEXTS)]
    np.testing.assert_allclose(first, minilm.encode(texts), atol=1e-6)
    second = cache.encode(texts)
    assert counting.calls == [len(TEXTS)]
    np.testing.assert_array_equal(first, second)
    # A new object (a second run of the job) reads the disk, never the model.
    counting2 = Counting(minilm)
    third = CachedEncoder(counting2, tmp_path).encode(texts[::-1])
    assert counting2.calls == [] and np.array_equal(third, first[::-1])
    # Partial hits: only the new text reaches the model.
    mixed = cache.encode(["Greek yogurt", TEXTS[2]])
    assert counting.calls[-1] == 1
    np.testing.assert_array_equal(mixed[1], first[2])
    np.testing.assert_allclose(mixed[0], minilm.encode(["Greek yogurt"])[0], atol=1e-6)


def test_default_encoder_uses_env_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("BUNDLERL_CACHE", str(tmp_path / "c"))
    enc = default_encoder()
    assert isinstance(enc, CachedEncoder) and enc.dim == 384
    assert enc.folder.parent == tmp_path / "c" / "embeddings"
    assert default_encoder(cache_dir=tmp_path / "d").folder.parent == tmp_path / "d" / "embeddings"


# --- cache mechanics (small fake encoder) ---------------------------------------------------

def test_dimension_mismatch(tmp_path):
    CachedEncoder(HashEncoder(dim=8), tmp_path).encode(["a", "b"])
    with pytest.raises(EncoderError, match=r"dimension mismatch: cache at .* holds d=8; encoder gives d=4"):
        CachedEncoder(HashEncoder(dim=4), tmp_path).encode(["a"])
    # Also caught from a shard alone (metadata lost).
    folder = CachedEncoder(HashEncoder(dim=8), tmp_path).folder
    (folder / "identity.json").unlink()
    with pytest.raises(EncoderError, match="dimension mismatch.*shard-"):
        CachedEncoder(HashEncoder(dim=4), tmp_path).encode(["a"])


@pytest.mark.parametrize("damage", ["truncate", "garbage", "not_unit", "flip_byte"])
def test_corrupt_shard_is_ignored_with_warning(tmp_path, damage):
    fake = HashEncoder()
    texts = [f"item {i}" for i in range(50)]
    good = CachedEncoder(fake, tmp_path).encode(texts)
    (shard,) = shard_files(CachedEncoder(fake, tmp_path).folder)
    data = shard.read_bytes()
    if damage == "truncate":
        shard.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        shard.write_bytes(b"not a zip file at all")
    elif damage == "not_unit":
        with np.load(shard) as z:
            k1, k2, v = z["k1"], z["k2"], z["vecs"]
        np.savez(shard, k1=k1, k2=k2, vecs=v * 2)
    else:  # a flipped byte inside the vectors: caught by the zip CRC
        b = bytearray(data)
        b[len(b) // 2] ^= 0xFF
        shard.write_bytes(bytes(b))
    fake.calls = 0
    cache = CachedEncoder(fake, tmp_path)
    with pytest.warns(RuntimeWarning, match="corrupt embedding cache shard"):
        out = cache.encode(texts)
    np.testing.assert_array_equal(out, good)  # re-encoded, never the damaged vectors
    assert fake.calls == 1 and cache.misses == len(texts)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per shard, not on every call
        cache.encode(texts)
    # healed: the damaged shard is gone, a new object reads the re-encoded vectors with no warning and no encoding
    assert shard.name not in {p.name for p in shard_files(cache.folder)}
    fake.calls = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = CachedEncoder(fake, tmp_path).encode(texts)
    np.testing.assert_array_equal(again, good)
    assert fake.calls == 0


@pytest.mark.parametrize("damage", [b"", b"{not json", b'{"dim": "x"}', b"\xff\xfe"])
def test_unreadable_cache_metadata_is_rewritten(tmp_path, damage):
    fake = HashEncoder()
    cache = CachedEncoder(fake, tmp_path)
    good = cache.encode(["a", "b"])
    meta = cache.folder / "identity.json"
    meta.write_bytes(damage)
    with pytest.warns(RuntimeWarning, match="rewriting unreadable embedding cache metadata"):
        out = CachedEncoder(fake, tmp_path).encode(["a", "b"])
    np.testing.assert_array_equal(out, good)
    assert json.loads(meta.read_text())["dim"] == fake.dim


def test_atomic_writes_leave_no_temp_files(tmp_path, monkeypatch):
    fake = HashEncoder()
    cache = CachedEncoder(fake, tmp_path)
    cache.encode(["a", "b"])
    assert not [p for p in cache.folder.iterdir() if p.name.startswith(".")]

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        cache.encode(["c"])
    assert not [p for p in cache.folder.iterdir() if p.name.startswith(".")]
    assert len(shard_files(cache.folder)) == 1


def test_concurrent_writers_and_compaction(tmp_path):
    fa, fb = HashEncoder(), HashEncoder()
    a, b = CachedEncoder(fa, tmp_path), CachedEncoder(fb, tmp_path)
    a.encode(["x1", "shared"])
    b.encode(["x2", "shared"])  # b sees a's shard: "shared" is a hit
    assert fb.calls == 1 and b.hits == 1
    for i in range(MAX_SHARDS + 4):
        (a if i % 2 else b).encode([f"t{i}", "shared"])
    assert len(shard_files(a.folder)) <= MAX_SHARDS + 1
    everything = ["x1", "x2", "shared"] + [f"t{i}" for i in range(MAX_SHARDS + 4)]
    fresh_fake = HashEncoder()
    out = CachedEncoder(fresh_fake, tmp_path).encode(everything)
    assert fresh_fake.calls == 0
    np.testing.assert_array_equal(out, HashEncoder().encode(everything))


def test_rejects_non_encoder(tmp_path):
    with pytest.raises(EncoderError, match="TextEncoder"):
        CachedEncoder(object(), tmp_path)


def test_loading_the_packaged_model_opens_no_connection_and_sets_no_environment(tmp_path):
    """Offline by construction (local_files_only), not by changing the process: no socket is connected and
    HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE stay as the user left them (unset here)."""
    import os
    import textwrap

    code = textwrap.dedent("""
        import os, socket
        def refuse(*a, **k):
            raise RuntimeError(f"network access attempted: {a}")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        from bundlerl.encoders import SentenceEncoder
        v = SentenceEncoder(device="cpu").encode(["tripod for a camera"])
        assert v.shape == (1, 384), v.shape
        print(sorted(k for k in os.environ if k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")))
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
