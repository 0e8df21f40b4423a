"""Saving and loading catalogues and baskets as folders of arrays with a manifest.

Every file is written with :func:`bundlerl.utils.atomic.atomic_write` (a temporary file, then a rename), so
readers never see a half-written file and an interrupted save leaves the previous one intact.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

import numpy as np

from bundlerl.sim_data.baskets import BasketError, Baskets
from bundlerl.sim_data.catalog import Catalog, CatalogError
from bundlerl.utils.atomic import atomic_write
from bundlerl.utils.hashing import file_sha256

__all__ = ["save_catalog", "load_catalog", "save_baskets", "load_baskets", "FORMAT_VERSION"]


# ---------------------------------------------------------------------------------------------
# Catalogue / basket folders.
#
# Layout of a saved catalogue folder:
#   arrays.npz            item and category arrays (strings as UTF-8 bytes + offsets, see below)
#   embeddings.npy        (n, d) float32, only when the catalogue is encoded
#   complement_graph.npy  (C, C) float32, only when the catalogue carries the simulator truth
#   manifest.json         written last: format + version, counts, every array's dtype and shape,
#                         each file's sha256 and size, creation info, the catalogue's name and meta
# Baskets: <stem>.npz + <stem>.json (same manifest shape) in a folder (stem "baskets") or beside
# a given ``*.npz`` path. Strings are stored as one UTF-8 byte array plus (len + 1,) int64 offsets:
# exact (no trailing-NUL stripping as in numpy unicode arrays), compact, and loadable with
# ``allow_pickle=False``.

FORMAT_VERSION = 1
_CATALOG_FORMAT, _BASKETS_FORMAT = "bundlerl.catalog", "bundlerl.baskets"
_CATALOG_STR = ("item_ids", "titles", "descriptions", "brand", "category_names", "department_names")
_CATALOG_NUM = ("category", "category_department", "price", "popularity")
_CATALOG_OPTIONAL = ("embeddings", "complement_graph")


def _encode_strings(values) -> dict[str, np.ndarray]:
    raw = [str(v).encode("utf-8") for v in values]
    offsets = np.zeros(len(raw) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in raw], out=offsets[1:])
    return {"utf8": np.frombuffer(b"".join(raw), dtype=np.uint8), "offsets": offsets}


def _decode_strings(utf8: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    blob = utf8.tobytes()
    o = offsets.tolist()
    return np.array([blob[o[k]:o[k + 1]].decode("utf-8") for k in range(len(o) - 1)], dtype=object)



def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> dict:
    with atomic_write(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
    return {"sha256": file_sha256(path), "bytes": path.stat().st_size}


def _write_npy(path: Path, arr: np.ndarray) -> dict:
    with atomic_write(path, suffix=".npy") as tmp:
        np.save(tmp, arr, allow_pickle=False)
    return {"sha256": file_sha256(path), "bytes": path.stat().st_size}


def _creation_info() -> dict:
    return {
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "created_by": "bundlerl bundlerl.sim_data.io",
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _write_manifest(path: Path, manifest: dict) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _read_manifest(path: Path, fmt: str, err: type[ValueError], what: str) -> dict:
    if not path.is_file():
        raise err(f"{path}: no manifest; {path.parent} is not a saved {what} or its save was interrupted "
                  f"(the manifest is written last); save the {what} again")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise err(f"{path}: unreadable manifest ({e}); save the {what} again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != fmt:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise err(f"{path}: format {got!r}, expected {fmt!r}; point at a folder written by save_{what}")
    if manifest.get("version") != FORMAT_VERSION:
        raise err(f"{path}: format version {manifest.get('version')!r}, this bundlerl reads version "
                  f"{FORMAT_VERSION}; re-save the {what} with this version of bundlerl")
    return manifest


def _load_checked(folder: Path, manifest: dict, file: str, err: type[ValueError], what: str) -> dict[str, np.ndarray]:
    """The arrays of one listed file, after checking existence, size, sha256, names, dtypes and shapes."""
    path = folder / file
    info = manifest["files"][file]
    if not path.is_file():
        raise err(f"{path}: missing, but the manifest lists it; the {what} folder is incomplete: save it again")
    if path.stat().st_size != info["bytes"] or file_sha256(path) != info["sha256"]:
        raise err(f"{path}: checksum mismatch with {folder / manifest['_manifest_name']} (the file was changed or "
                  f"truncated after saving); save the {what} again")
    try:
        if file.endswith(".npz"):
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        else:
            arrays = {file[: -len(".npy")]: np.load(path, allow_pickle=False)}
    except ValueError as e:
        raise err(f"{path}: unreadable ({e}); save the {what} again") from None
    for name, spec in manifest["arrays"].items():
        if spec["file"] != file:
            continue
        if name not in arrays:
            raise err(f"{path}: array {name!r} listed in the manifest is missing; save the {what} again")
        a = arrays[name]
        if str(a.dtype) != spec["dtype"] or list(a.shape) != spec["shape"]:
            raise err(f"{path}: array {name!r} is {a.dtype}{list(a.shape)} but the manifest says "
                      f"{spec['dtype']}{spec['shape']}; save the {what} again")
    return arrays


def _specs(arrays: dict[str, np.ndarray], file: str) -> dict:
    return {k: {"file": file, "dtype": str(v.dtype), "shape": list(v.shape)} for k, v in arrays.items()}


def save_catalog(catalog: Catalog, folder: str | os.PathLike) -> Path:
    """Write ``catalog`` to ``folder`` (created if missing) and return the folder.

    Every file goes through :func:`atomic_write` and ``manifest.json`` is written last (an old one
    is removed first), so an interrupted save leaves a folder that :func:`load_catalog` refuses
    rather than a mix of old and new files. Raises :class:`CatalogError` if ``catalog.meta`` is
    not JSON-serialisable (nothing is written then).
    """
    folder = Path(folder)
    try:
        meta_json = json.loads(json.dumps(catalog.meta))
    except (TypeError, ValueError) as e:
        raise CatalogError(f"catalog.meta is not JSON-serialisable ({e}); keep only str/number/list/dict values") from None
    if folder.exists() and not folder.is_dir():
        raise CatalogError(f"{folder} exists and is not a folder; give a folder path for the catalogue")
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / "manifest.json"
    manifest_path.unlink(missing_ok=True)
    arrays: dict[str, np.ndarray] = {}
    for name in _CATALOG_STR:
        enc = _encode_strings(getattr(catalog, name).tolist())
        arrays[f"{name}.utf8"], arrays[f"{name}.offsets"] = enc["utf8"], enc["offsets"]
    for name in _CATALOG_NUM:
        arrays[name] = np.ascontiguousarray(getattr(catalog, name))
    files = {"arrays.npz": _write_npz(folder / "arrays.npz", arrays)}
    specs = _specs(arrays, "arrays.npz")
    for name in _CATALOG_OPTIONAL:
        value = getattr(catalog, name)
        path = folder / f"{name}.npy"
        if value is None:
            path.unlink(missing_ok=True)  # a stale file from an earlier save would only confuse readers
            continue
        files[path.name] = _write_npy(path, np.ascontiguousarray(value))
        specs.update(_specs({name: value}, path.name))
    _write_manifest(manifest_path, {
        "format": _CATALOG_FORMAT, "version": FORMAT_VERSION, **_creation_info(),
        "name": catalog.name, "meta": meta_json, "price_imputed": bool(catalog.price_imputed),
        "counts": {"n_items": catalog.n_items, "n_categories": catalog.n_categories,
                   "n_departments": len(catalog.department_names), "dim": catalog.dim},
        "files": files, "arrays": specs,
    })
    return folder


def load_catalog(folder: str | os.PathLike) -> Catalog:
    """Read a folder written by :func:`save_catalog` into a validated :class:`Catalog`.

    Raises :class:`CatalogError` naming the file and the fix when the manifest is missing or of
    another format/version, a listed file is missing, a checksum, dtype or shape does not match
    the manifest, or the arrays break the Catalog contract.
    """
    folder = Path(folder)
    manifest = _read_manifest(folder / "manifest.json", _CATALOG_FORMAT, CatalogError, "catalog")
    manifest["_manifest_name"] = "manifest.json"
    arrays: dict[str, np.ndarray] = {}
    for file in manifest["files"]:
        arrays.update(_load_checked(folder, manifest, file, CatalogError, "catalog"))
    kw = {name: _decode_strings(arrays[f"{name}.utf8"], arrays[f"{name}.offsets"]) for name in _CATALOG_STR}
    kw.update({name: arrays[name] for name in _CATALOG_NUM})
    kw.update({name: arrays.get(name) for name in _CATALOG_OPTIONAL})
    counts = manifest["counts"]
    if len(kw["item_ids"]) != counts["n_items"] or len(kw["category_names"]) != counts["n_categories"]:
        raise CatalogError(f"{folder / 'arrays.npz'}: {len(kw['item_ids'])} items / {len(kw['category_names'])} "
                           f"categories but the manifest counts {counts['n_items']} / {counts['n_categories']}; "
                           "save the catalog again")
    try:
        return Catalog(**kw, price_imputed=bool(manifest["price_imputed"]), name=manifest["name"], meta=manifest["meta"])
    except CatalogError as e:
        raise CatalogError(f"{folder}: the saved arrays break the catalogue contract ({e}); save the catalog again") from None


def _baskets_paths(where: str | os.PathLike) -> tuple[Path, Path]:
    p = Path(where)
    if p.suffix == ".npz":
        return p, p.with_suffix(".json")
    return p / "baskets.npz", p / "baskets.json"


def save_baskets(baskets: Baskets, folder_or_file: str | os.PathLike) -> Path:
    """Write ``baskets`` and return the ``.npz`` path.

    ``folder_or_file``: a ``*.npz`` path (its manifest goes to the same stem with ``.json``) or a
    folder (files ``baskets.npz`` and ``baskets.json``; can share a saved catalogue's folder).
    Atomic per file, manifest last (an old one removed first), as :func:`save_catalog`.
    """
    npz, manifest_path = _baskets_paths(folder_or_file)
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    manifest_path.unlink(missing_ok=True)
    arrays = {"indptr": baskets.indptr, "items": baskets.items}
    for name in ("user", "order_number"):
        if getattr(baskets, name) is not None:
            arrays[name] = getattr(baskets, name)
    if baskets.basket_ids is not None:
        enc = _encode_strings(baskets.basket_ids.tolist())
        arrays["basket_ids.utf8"], arrays["basket_ids.offsets"] = enc["utf8"], enc["offsets"]
    files = {npz.name: _write_npz(npz, arrays)}
    _write_manifest(manifest_path, {
        "format": _BASKETS_FORMAT, "version": FORMAT_VERSION, **_creation_info(),
        "counts": {"n_baskets": len(baskets), "n_items": int(baskets.n_items), "nnz": int(baskets.items.size)},
        "files": files, "arrays": _specs(arrays, npz.name),
    })
    return npz


def load_baskets(folder_or_file: str | os.PathLike) -> Baskets:
    """Read baskets written by :func:`save_baskets` (same path argument) into validated :class:`Baskets`.

    Raises :class:`BasketError` naming the file and the fix, as :func:`load_catalog` does.
    """
    npz, manifest_path = _baskets_paths(folder_or_file)
    manifest = _read_manifest(manifest_path, _BASKETS_FORMAT, BasketError, "baskets")
    manifest["_manifest_name"] = manifest_path.name
    if list(manifest["files"]) != [npz.name]:
        raise BasketError(f"{manifest_path}: lists {list(manifest['files'])}, expected [{npz.name!r}]; save the baskets again")
    a = _load_checked(npz.parent, manifest, npz.name, BasketError, "baskets")
    ids = _decode_strings(a["basket_ids.utf8"], a["basket_ids.offsets"]) if "basket_ids.utf8" in a else None
    counts = manifest["counts"]
    if a["indptr"].size - 1 != counts["n_baskets"] or a["items"].size != counts["nnz"]:
        raise BasketError(f"{npz}: {a['indptr'].size - 1} baskets / {a['items'].size} items but the manifest counts "
                          f"{counts['n_baskets']} / {counts['nnz']}; save the baskets again")
    try:
        return Baskets(a["indptr"], a["items"], counts["n_items"], user=a.get("user"),
                       order_number=a.get("order_number"), basket_ids=ids)
    except BasketError as e:
        raise BasketError(f"{npz}: the saved arrays break the baskets contract ({e}); save the baskets again") from None
