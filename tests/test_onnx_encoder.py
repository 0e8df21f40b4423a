"""OnnxSentenceEncoder: the packaged model on onnxruntime gives the SentenceEncoder's vectors; its cached graph is
exported once, and a damaged one is a warned miss."""

from __future__ import annotations

import numpy as np
import pytest

from bundlerl.encoders.base import EncoderError
from bundlerl.encoders.onnx_sentence import EncoderCacheWarning, OnnxSentenceEncoder

TEXTS = ["hello", "Looking for grill tools, bbq grills and plant pots. Organised and easygoing, a regular in garden.",
         "Ünïcode café – naïve façade 東京", "word " * 400]  # the last one is truncated at the model's limit


@pytest.fixture(scope="module")
def exported(tmp_path_factory, minilm):
    enc = OnnxSentenceEncoder(minilm, cache_dir=tmp_path_factory.mktemp("onnx-enc"))
    enc.encode(["export once"])
    return enc


def test_same_vectors_as_the_sentence_encoder(exported, minilm):
    got = exported.encode(TEXTS)
    want = minilm.encode(TEXTS)
    assert got.shape == want.shape == (len(TEXTS), 384) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    # batched with padding equals one at a time (the pooling respects the attention mask)
    np.testing.assert_allclose(np.concatenate([exported.encode([t]) for t in TEXTS]), got, atol=1e-5)
    assert exported.identity == minilm.identity and exported.dim == 384
    assert exported.encode([]).shape == (0, 384)
    with pytest.raises(EncoderError, match="index 1"):
        exported.encode(["fine", "   "])


def test_cached_graph_is_reused_and_a_damaged_one_is_rebuilt(exported, minilm):
    path = exported.path
    assert path.is_file()
    stamp = path.stat().st_mtime_ns
    again = OnnxSentenceEncoder(minilm, cache_dir=path.parent)
    again.encode(["reuse"])
    assert path.stat().st_mtime_ns == stamp  # loaded, not exported again
    path.write_bytes(b"not an onnx graph")
    fresh = OnnxSentenceEncoder(minilm, cache_dir=path.parent)
    with pytest.warns(EncoderCacheWarning, match="does not load"):
        v = fresh.encode(["rebuilt"])
    np.testing.assert_allclose(v, minilm.encode(["rebuilt"]), atol=1e-5)
    assert path.stat().st_size > 1_000_000


def test_int8_weights_keep_the_vectors_close_under_their_own_identity(exported, minilm):
    """The quantised graph: unit vectors within cosine 0.97 of the model's (0.992 on average on profile texts,
    BENCHMARKS.md), a distinct identity and file so no embedding cache mixes the two, its own warned-miss healing."""
    q = OnnxSentenceEncoder(minilm, cache_dir=exported.path.parent, precision="int8")
    got, want = q.encode(TEXTS), exported.encode(TEXTS)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    cos = (got * want).sum(axis=1)
    assert cos.min() > 0.97 and not np.allclose(got, want, atol=1e-4)  # close, and really the quantised graph
    assert q.identity == minilm.identity + "+int8" and q.path != exported.path
    assert q.path.stat().st_size < 0.75 * exported.path.stat().st_size  # int8 MatMul weights (the embedding table stays)
    q.path.write_bytes(b"\0" * 64)
    healed = OnnxSentenceEncoder(minilm, cache_dir=exported.path.parent, precision="int8")
    with pytest.warns(EncoderCacheWarning, match="does not load"):
        np.testing.assert_allclose(healed.encode(TEXTS), got, atol=1e-6)
    with pytest.raises(EncoderError, match="'int4' is not one of fp32, int8"):
        OnnxSentenceEncoder(minilm, precision="int4")
