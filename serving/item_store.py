"""Cold start: the versioned item store under a model folder, and the model parts extended with its items.

``POST /v1/items`` encodes new items (title + description, the catalogue's own text, ``Catalog.item_texts``) and
writes them as one new **version** of ``MODEL_DIR/items/``: ``vNNNNNN.npy`` (the (m, d) float32 embeddings) then
``vNNNNNN.json`` (the items and the ``.npy``'s SHA-256). The ``.json`` is the commit: it is linked into place with
``os.link``, which fails when that version exists, so two workers adding items at once get consecutive versions,
never one overwriting the other; a killed writer leaves at most an uncommitted ``.npy`` (ignored). Nothing is
unpickled and every version's embeddings are checked against their hash.

Every worker compares the store's version with the one it serves before each request (:meth:`ItemStore.version`,
one ``scandir``) and reloads when it moved, so an item added through one worker is served by all of them and
survives a restart. The base model's files are never modified.

Cold items in the model (:func:`extend_parts`): appended to the catalogue (popularity 0) and to a fresh copy of the
FAISS index (retrievable at once), and given the complementarity of a **proxy**: their nearest base item by
embedding (in their category when one is given). Their complement lists and pair scores are the proxy's
(:class:`ProxyComplements`), until the models are refitted with baskets holding them; a cold item and its proxy
score 0 with each other (the proxy is its nearest text neighbour: a likely substitute, not a complement). Both the
complementarity model (reasons) and the builder's own model (the learned completion when the model folder has one,
as in the env) are proxied, so base items keep exactly the complement lists and pair scores they had: adding items
changes no existing user's candidates except where a cold item is retrieved.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bundlerl.utils.errors import BundlerlError
from bundlerl.utils.hashing import file_sha256

__all__ = ["NewItem", "ItemBatch", "ItemStore", "ItemStoreError", "ProxyComplements", "extend_parts"]

_VERSION = re.compile(r"^v(\d{6})\.json$")


class ItemStoreError(BundlerlError):
    """A bad new item (duplicate id, unknown category) or a damaged item-store version; the message says which."""


@dataclass(frozen=True)
class NewItem:
    """A cold-start item: ``item_id`` (new, unique), ``title``, ``description``, ``price`` (> 0), ``category`` (a
    category name of the catalogue, or None: the proxy's)."""

    item_id: str
    title: str
    price: float
    description: str = ""
    category: str | None = None


@dataclass
class ItemBatch:
    """The items of every version of a store, in version order, with their (m, d) embeddings."""

    items: list[NewItem]
    embeddings: np.ndarray
    version: int

    def __len__(self) -> int:
        return len(self.items)


class ItemStore:
    """The item store of the model folder ``folder`` (``folder/items/``); see the module docstring."""

    def __init__(self, folder: str | os.PathLike):
        self.dir = Path(folder) / "items"

    def version(self) -> int:
        """The newest committed version (0: none)."""
        if not self.dir.is_dir():
            return 0
        found = [int(m.group(1)) for e in os.scandir(self.dir) if (m := _VERSION.match(e.name))]
        return max(found, default=0)

    def read(self) -> ItemBatch:
        """Every committed version's items, checked. :raises ItemStoreError: a damaged version file."""
        items: list[NewItem] = []
        embs = []
        v = self.version()
        for n in range(1, v + 1):
            meta_path = self.dir / f"v{n:06d}.json"
            if not meta_path.is_file():
                continue
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
                npy = self.dir / meta["embeddings"]
                if file_sha256(npy) != meta["sha256"]:
                    raise ValueError("embeddings differ from their recorded SHA-256")
                with open(npy, "rb") as fh:
                    e = np.load(fh, allow_pickle=False)
                batch = [NewItem(**it) for it in meta["items"]]
                if e.shape[0] != len(batch):
                    raise ValueError(f"{e.shape[0]} embeddings for {len(batch)} items")
            except (OSError, ValueError, KeyError, TypeError) as err:
                raise ItemStoreError(f"item store version {meta_path} is damaged ({err}); remove it and add its "
                                     "items again") from None
            items += batch
            embs.append(e.astype(np.float32))
        d = embs[0].shape[1] if embs else 0
        return ItemBatch(items, np.concatenate(embs) if embs else np.zeros((0, d), np.float32), v)

    def add(self, items: list[NewItem], embeddings: np.ndarray) -> int:
        """Commit ``items`` (with their (m, d) unit embeddings) as the next version; returns it."""
        import tempfile

        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".pending.", suffix=".npy")
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, np.ascontiguousarray(embeddings, np.float32), allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        digest = file_sha256(tmp)
        npy = self.dir / f"e-{digest[:24]}.npy"
        os.replace(tmp, npy)  # content-addressed: complete before any version names it
        meta = {"items": [dataclasses.asdict(it) for it in items], "embeddings": npy.name, "sha256": digest}
        fd, pending = tempfile.mkstemp(dir=self.dir, prefix=".pending.", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(meta, indent=1))
                fh.flush()
                os.fsync(fh.fileno())
            while True:
                n = self.version() + 1
                try:
                    os.link(pending, self.dir / f"v{n:06d}.json")  # the commit: fails if another worker took n
                    return n
                except FileExistsError:
                    continue
        finally:
            os.unlink(pending)


class ProxyComplements:
    """A complementarity model over base + cold items: item ``i`` is scored as its proxy ``proxy[i]`` (base items
    are their own proxy); ``comp(i -> i) = 0``. Has what the builder needs (``top_items``, ``top_scores``,
    ``score``)."""

    def __init__(self, base, proxy: np.ndarray):
        self.base, self.proxy = base, np.asarray(proxy, np.int64)
        self.n_items = len(self.proxy)
        self.top_items = np.asarray(base.top_items)[self.proxy]
        self.top_scores = np.asarray(base.top_scores)[self.proxy]
        self.config = base.config

    def score(self, i, j) -> np.ndarray:
        i, j = np.asarray(i, np.int64), np.asarray(j, np.int64)
        return np.where(i == j, 0.0, self.base.score(self.proxy[i], self.proxy[j])).astype(np.float32)


def extend_parts(art, batch: ItemBatch):
    """(catalogue, proxy, index) of ``art`` (ModelArtifacts) extended with ``batch``'s cold items (see the module
    docstring): ``proxy`` (n0 + m,) int64 is each item's proxy (base items their own), for :class:`ProxyComplements`.
    :raises ItemStoreError: an item id already in the catalogue or an unknown category."""
    from bundlerl.candidates.index import ItemIndex

    base = art.catalog
    n0 = art.n_base_items
    names = {str(c): k for k, c in enumerate(base.category_names.tolist())}
    emb0 = base.embeddings[:n0]
    cats, proxy = [], []
    for it, e in zip(batch.items, batch.embeddings):
        sims = emb0 @ e
        if it.category is not None:
            if it.category not in names:
                raise ItemStoreError(f"item {it.item_id!r}: unknown category {it.category!r}")
            same = base.category[:n0] == names[it.category]
            sims = np.where(same, sims, -np.inf) if same.any() else sims
        p = int(np.argmax(sims))
        proxy.append(p)
        cats.append(names[it.category] if it.category is not None else int(base.category[p]))
    cat = dataclasses.replace(
        base,
        item_ids=np.concatenate([base.item_ids[:n0], [it.item_id for it in batch.items]]),
        titles=np.concatenate([base.titles[:n0], [it.title for it in batch.items]]),
        descriptions=np.concatenate([base.descriptions[:n0], [it.description for it in batch.items]]),
        brand=np.concatenate([base.brand[:n0], [""] * len(batch)]),
        category=np.concatenate([base.category[:n0], cats]),
        price=np.concatenate([base.price[:n0], [it.price for it in batch.items]]),
        popularity=np.concatenate([base.popularity[:n0], np.zeros(len(batch))]),
        embeddings=np.concatenate([emb0, batch.embeddings]),
    )
    index = ItemIndex.load(art.folder / "index.faiss")
    index.add(batch.embeddings)
    return cat, np.concatenate([np.arange(n0), proxy]).astype(np.int64), index
