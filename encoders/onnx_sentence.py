"""``OnnxSentenceEncoder``: a :class:`~bundlerl.encoders.sentence.SentenceEncoder`'s model run by onnxruntime, the
service's encoder of new profile text and new items.

The same model, tokenizer and vectors (max abs difference ~1e-7 on unit vectors, tested), about half the CPU per
sentence on one thread (BENCHMARKS.md, Serving: 10.8 vs 19.1 CPU ms for a 46-token profile text): torch's eager
BERT pays Python and dispatch overhead per layer, onnxruntime runs one optimised graph (fused attention and layer
norms). Only the standard pipeline is exported: a BERT-style transformer, mean pooling over the attention mask and L2
normalisation (``modules.json`` of the packaged all-MiniLM-L6-v2); another pipeline is an :class:`EncoderError`
naming it (use the SentenceEncoder).

The graph is exported once per model (the TorchScript tracer, ``dynamo=False``, opset 17, dynamic batch and
sequence axes: torch's dynamo exporter needs ``onnxscript``) and cached on disk by the model's identity (content
fingerprint) in ``$BUNDLERL_CACHE/onnx-encoders/``; the write is atomic, and a cached file that does not load is a
warned miss, exported again. ``identity`` and ``dim`` are the wrapped encoder's, so embedding caches keyed by
identity stay shared.

``precision="int8"`` runs a copy of the graph whose MatMul weights are quantised to int8 per output channel
(onnxruntime's dynamic quantisation: activations quantised per call, no calibration data). About a third of the CPU per
sentence, at a cost in fidelity: cosine to the float32 vectors 0.99 on average (0.98 at worst) on 300 profile texts,
91-94% of their top-10 catalogue neighbours kept (BENCHMARKS.md, Serving). Its vectors are not the model's, so its
``identity`` carries ``+int8`` and no embedding cache mixes the two. The quantised graph is cached beside the float32
one, with the same atomic write and warned-miss rules.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bundlerl.encoders._texts import check_texts
from bundlerl.encoders.base import EncoderError
from bundlerl.encoders.sentence import SentenceEncoder

__all__ = ["OnnxSentenceEncoder", "ONNX_FORMAT", "PRECISIONS", "check_precision", "EncoderCacheWarning"]

ONNX_FORMAT = 1
"""Version of the exported graph's layout (inputs, pooling); part of the cache key."""

PRECISIONS = ("fp32", "int8")
"""Weight precisions of the run graph: the exported float32 graph, or its int8 dynamic quantisation."""


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`; EncoderError naming the choices otherwise."""
    if precision not in PRECISIONS:
        raise EncoderError(f"encoder precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    return precision

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_STANDARD = ("sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
             "sentence_transformers.models.Normalize")


class EncoderCacheWarning(UserWarning):
    """A cached exported encoder that does not load; it is exported again."""


def _check_pipeline(folder: Path) -> None:
    """Raise EncoderError unless ``folder`` is a transformer + mean pooling + normalise sentence-transformers model."""
    try:
        modules = [m["type"] for m in json.loads((folder / "modules.json").read_text())]
        pool = next(m for m in json.loads((folder / "modules.json").read_text()) if m["type"].endswith("Pooling"))
        cfg = json.loads((folder / pool["path"] / "config.json").read_text())
    except (OSError, ValueError, KeyError, StopIteration) as err:
        raise EncoderError(f"{folder}: not a standard sentence-transformers folder ({err}); use SentenceEncoder") \
            from None
    modes = {k for k, v in cfg.items() if k.startswith("pooling_mode") and v}
    if tuple(modules) != _STANDARD or modes != {"pooling_mode_mean_tokens"}:
        raise EncoderError(f"{folder}: OnnxSentenceEncoder exports transformer + mean pooling + normalize only, this "
                           f"model is {modules} with {sorted(modes)}; use SentenceEncoder")


def _export(st_model, path: Path) -> None:
    """Export ``st_model``'s transformer with mean pooling and normalisation to ``path`` (atomically)."""
    import torch

    from bundlerl.utils.atomic import atomic_write

    class _Graph(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            h = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            v = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(v, dim=1)

    bert = st_model[0].auto_model.eval()
    example = st_model.tokenizer(["an example sentence", "a second, longer example sentence"], return_tensors="pt",
                                 padding=True)
    args = tuple(example[k] if k in example else torch.zeros_like(example["input_ids"]) for k in _INPUTS)
    axes = {k: {0: "batch", 1: "tokens"} for k in _INPUTS} | {"embedding": {0: "batch"}}
    with atomic_write(path) as tmp, warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the tracer's notes on the library's Python control flow
        torch.onnx.export(_Graph(bert), args, str(tmp), input_names=list(_INPUTS), output_names=["embedding"],
                          dynamic_axes=axes, dynamo=False, opset_version=17)


def _quantize(fp32: Path, path: Path) -> None:
    """Write the int8 dynamic quantisation of the float32 graph ``fp32`` to ``path`` (atomically).

    Only MatMuls with constant weights are quantised, per output channel: per-tensor scales lose more (cosine 0.949
    to float32 on profile texts, against 0.992 per channel); the attention's activation-by-activation MatMuls stay
    float32."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    from bundlerl.utils.atomic import atomic_write

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime logs a pre-processing suggestion that is for static quantisation
    try:
        with atomic_write(path) as tmp:
            quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul"], extra_options={"MatMulConstBOnly": True})
    finally:
        root.setLevel(level)


class OnnxSentenceEncoder:
    """Text -> unit-norm float32 vectors: ``base``'s model on onnxruntime (see the module docstring).

    :param base: the SentenceEncoder whose model is run (default: the packaged one). :param threads: onnxruntime
        intra-op threads (default 1: a service worker answers one request at a time; more threads fight over a
        busy machine's cores). :param cache_dir: where exported graphs are kept (default
        ``$BUNDLERL_CACHE/onnx-encoders``). :param precision: ``"fp32"`` (the model's vectors) or ``"int8"``
        (quantised weights: ~3x less CPU, cosine ~0.99 to the model's vectors; see the module docstring).
    :raises EncoderError: (at once) an unknown precision; (on first use) a model that is not transformer + mean
        pooling + normalize.
    """

    def __init__(self, base: SentenceEncoder | None = None, *, threads: int = 1, cache_dir: Path | None = None,
                 precision: str = "fp32"):
        self.precision = check_precision(precision)
        self.base = base if base is not None else SentenceEncoder()
        self.threads = int(threads)
        self._cache_dir = cache_dir
        self._session: Any = None
        self._tokenizer: Any = None
        self._max_len = 512
        #: Number of texts encoded so far (for tests and benchmarks).
        self.texts_encoded = 0

    @property
    def identity(self) -> str:
        """The wrapped encoder's identity (same model, same vectors to float precision); ``+int8`` appended for the
        quantised graph, whose vectors differ."""
        return self.base.identity + ("" if self.precision == "fp32" else f"+{self.precision}")

    @property
    def dim(self) -> int:
        return self.base.dim

    @property
    def path(self) -> Path:
        """The cached ONNX file this encoder runs (the float32 export, or its quantisation beside it)."""
        return self._path(self.precision)

    def _path(self, precision: str) -> Path:
        from bundlerl.utils.cache import cache_root

        folder = self._cache_dir if self._cache_dir is not None else cache_root() / "onnx-encoders"
        tail = "" if precision == "fp32" else f"-{precision}"
        return Path(folder) / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', self.base.identity)}-f{ONNX_FORMAT}{tail}.onnx"

    def _open(self, path: Path):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    def _load(self) -> None:
        if self._session is not None:
            return
        _check_pipeline(self.base.path)
        st = self.base._load()  # the tokenizer and its length limit; the torch module only to export
        self._tokenizer, self._max_len = st.tokenizer, int(st.max_seq_length)
        fp32 = self._path("fp32")
        if self.precision == "fp32":
            self._session = self._cached(fp32, lambda: _export(st, fp32))
            return

        def quantized():
            self._cached(fp32, lambda: _export(st, fp32))  # its source, checked and healed like any cached graph
            _quantize(fp32, self.path)

        self._session = self._cached(self.path, quantized)

    def _cached(self, path: Path, make):
        """An onnxruntime session of the cached graph ``path``, made by ``make()`` when missing or damaged."""
        if path.is_file():
            try:
                return self._open(path)
            except Exception as err:  # noqa: BLE001 - onnxruntime raises its own types for a damaged file
                warnings.warn(f"cached encoder graph {path} does not load ({type(err).__name__}: {err}); making "
                              "it again", EncoderCacheWarning, stacklevel=4)
        make()
        return self._open(path)

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool | None = None) -> np.ndarray:
        """(len(texts), dim) float32 unit-norm rows, as :meth:`SentenceEncoder.encode` (blank or non-string texts
        raise EncoderError naming the index; ``progress`` is accepted for the protocol and ignored: the service
        encodes a few texts at a time)."""
        texts = check_texts(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._load()
        parts = []
        for lo in range(0, len(texts), max(int(batch_size), 1)):
            enc = self._tokenizer(texts[lo:lo + batch_size], padding=True, truncation=True, max_length=self._max_len,
                                  return_tensors="np")
            feed = {k: np.asarray(enc[k], np.int64) if k in enc else np.zeros_like(enc["input_ids"], np.int64)
                    for k in _INPUTS}
            parts.append(self._session.run(None, feed)[0])
        self.texts_encoded += len(texts)
        out = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
        out /= np.linalg.norm(out, axis=1, keepdims=True)  # unit to float32 precision, as SentenceEncoder
        return out
