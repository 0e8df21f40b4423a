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
