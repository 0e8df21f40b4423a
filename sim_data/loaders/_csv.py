"""CSV reading with error messages that name the file, the 1-based line and the column.

Every loader reads its files through :func:`read_table`, so every bad input surfaces as a
:class:`LoaderError` of the same shape: ``<file>: line <n>, column '<col>': <problem>; <fix>``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from bundlerl.utils.args import need_array, need_sequence, shown
from bundlerl.utils.errors import BundlerlError

__all__ = ["LoaderError", "Table", "open_text", "csv_rows", "read_table", "hash_normal", "impute_prices",
           "check_skip_options"]


class LoaderError(BundlerlError):
    """A data file is unusable; the message names the file, the 1-based line, the column and the fix."""


def where(path: Path, line: int | None = None, column: str | None = None) -> str:
    out = str(path)
    if line is not None:
        out += f": line {line}"
    if column is not None:
        out += f", column {column!r}" if line is not None else f": column {column!r}"
    return out


def open_text(path: Path, fix: str) -> io.StringIO:
    """The file's text, decoded as UTF-8 (a leading byte-order mark is dropped), for ``csv.reader``.

    :param fix: what the file should hold, added to the "file not found" message.
    :raises LoaderError: the file is missing or unreadable, is not UTF-8 (naming the line and the byte, with the
        command that converts it), or holds a NUL byte (a binary or UTF-16 file; naming the line).
    """
    if not path.is_file():
        raise LoaderError(f"{path}: file not found; {fix}")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise LoaderError(f"{path}: cannot be read ({err.strerror or err}); check its permissions") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        col = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise LoaderError(
            f"{path}: line {line}, byte {col}: not UTF-8 (byte 0x{raw[err.start]:02x}); save the file as UTF-8, e.g. "
            f"`iconv -f cp1252 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix}` for a Windows / Excel export"
        ) from None
    nul = text.find("\0")
    if nul >= 0:
        raise LoaderError(f"{path}: line {text.count(chr(10), 0, nul) + 1}: a NUL byte; this is a binary or UTF-16 "
                          "file, not a UTF-8 CSV: export it again as CSV (UTF-8)")
    return io.StringIO(text, newline="")


def csv_rows(path: Path, fh: io.StringIO):
    """``(first_line, row)`` for each record of ``fh`` (RFC 4180; a quoted field may span lines), raising
    :class:`LoaderError` naming the line for what the csv module rejects (e.g. an over-long field)."""
    reader = csv.reader(fh, strict=False)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise LoaderError(f"{where(path, start)}: unreadable CSV ({err}); check the quoting near this line") from None
        yield start, row
        start = reader.line_num + 1


@dataclass
class Table:
    """The rows of one CSV file as string columns; ``lines[r]`` is the 1-based line where row ``r`` starts."""

    path: Path
    header: list[str]
    columns: dict[str, list[str]]
    lines: np.ndarray

    def __len__(self) -> int:
        return int(self.lines.size)

    def error(self, row: int | None, column: str | None, problem: str, fix: str) -> LoaderError:
        line = None if row is None else int(self.lines[row])
        return LoaderError(f"{where(self.path, line, column)}: {problem}; {fix}")

    def strings(self, column: str, *, nonempty: bool = False, what: str = "value") -> list[str]:
        """The column's values, stripped; ``nonempty`` raises on the first blank one."""
        vals = [v.strip() for v in self.columns[column]]
        if nonempty:
            for r, v in enumerate(vals):
                if not v:
                    raise self.error(r, column, f"empty {what}", f"give every row a {what} or remove the row")
        return vals

    def ints(self, column: str) -> np.ndarray:
        """(rows,) int64; a non-integer cell raises naming its line."""
        vals = self.columns[column]
        try:  # the fast path: numpy parses the whole column at C speed
            return np.asarray(vals, dtype=np.str_).astype(np.int64)
        except ValueError:
            pass
        for r, v in enumerate(vals):
            try:
                int(v)
            except ValueError:
                raise self.error(r, column, f"{v!r} is not an integer", "write a whole number (ids are integers)") from None
        raise AssertionError("unreachable: numpy rejected a column that int() accepts")  # pragma: no cover

    def prices(self, column: str) -> np.ndarray:
        """(rows,) float64 prices; a blank, non-numeric, NaN/inf, zero or negative cell raises naming its line."""
        out = np.empty(len(self), dtype=np.float64)
        for r, v in enumerate(self.columns[column]):
            try:
                x = float(v)
            except ValueError:
                raise self.error(r, column, f"price {v!r} is not a number", "write a plain decimal such as 3.99") from None
            if not math.isfinite(x) or x <= 0:
                raise self.error(r, column, f"price {v!r} is not finite and > 0",
                                 "give a positive price or drop the price column to have prices imputed")
            out[r] = x
        return out

    def unique_ids(self, column: str, values: Sequence | np.ndarray) -> None:
        """Raise naming both lines when ``values`` (parallel to the rows) holds a duplicate."""
        seen: dict = {}
        for r, v in enumerate(values.tolist() if isinstance(values, np.ndarray) else values):
            first = seen.setdefault(v, r)
            if first != r:
                raise self.error(r, column, f"duplicate id {v!r} (first on line {int(self.lines[first])})",
                                 "ids must be unique: remove or renumber one of the rows")


def read_table(path: str | Path, required: Sequence[str], optional: Sequence[str] = (), *,
               allow_empty: bool = False) -> Table:
    """Read a headed CSV (UTF-8, RFC 4180 quoting) keeping the ``required`` and present ``optional`` columns.

    Raises :class:`LoaderError` when the file is missing or empty, lacks a required column, has a
    row with the wrong number of fields, or (unless ``allow_empty``) has no data rows.
    """
    path = Path(path)
    rows = csv_rows(path, open_text(path, f"check the folder, or create it with the columns {', '.join(required)}"))
    _, header = next(rows, (1, None))
    if header is None or not any(h.strip() for h in header):
        raise LoaderError(f"{path}: the file is empty; it needs a header line with the columns {', '.join(required)}")
    header = [h.strip() for h in header]
    twice = sorted({h for h in header if h and header.count(h) > 1})
    if twice:
        raise LoaderError(f"{where(path, 1)}: column(s) {', '.join(map(repr, twice))} appear more than once in the "
                          "header; name every column once")
    missing = [c for c in required if c not in header]
    if missing:
        raise LoaderError(f"{where(path, 1)}: missing column(s) {', '.join(map(repr, missing))} (the header has "
                          f"{', '.join(map(repr, header))}); add them to the header line (comma-separated)")
    keep = [c for c in [*required, *optional] if c in header]
    pos = [header.index(c) for c in keep]
    cols: list[list[str]] = [[] for _ in keep]
    lines: list[int] = []
    width = len(header)
    for start, row in rows:
        if not row:  # blank line: csv yields []; skip it
            continue
        if len(row) != width:
            raise LoaderError(f"{where(path, start)}: {len(row)} fields but the header has {width}; "
                              "quote fields that contain commas and give every row the same columns")
        for out, p in zip(cols, pos):
            out.append(row[p])
        lines.append(start)
    if not lines and not allow_empty:
        raise LoaderError(f"{path}: the header is there but there are no data rows; add rows or point at the right file")
    return Table(path, header, dict(zip(keep, cols)), np.asarray(lines, dtype=np.int64))


def hash_normal(keys: Sequence[str], salt: str) -> np.ndarray:
    """(len(keys),) float64 standard normals that depend only on (salt, key): deterministic across runs and machines.

    Box-Muller on two 53-bit uniforms taken from the key's BLAKE2b digest; no global RNG state is touched.
    """
    out = np.empty(len(keys), dtype=np.float64)
    s = salt.encode()
    for k, key in enumerate(keys):
        d = hashlib.blake2b(key.encode("utf-8"), digest_size=16, key=s).digest()
        u1 = ((int.from_bytes(d[:8], "little") >> 11) + 0.5) / 2.0**53
        u2 = (int.from_bytes(d[8:], "little") >> 11) / 2.0**53
        out[k] = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
    return out


#: The imputed-price rule (documented once, used by every loader whose source has no prices):
#: category median m_c = BASE · exp(SIGMA_CAT · z(category name)), item price
#: p_i = m_c · exp(SIGMA_ITEM · z(item id)), rounded to cents and floored at FLOOR, where z(·) is
#: :func:`hash_normal` of the name / id. Deterministic, finite, > 0, and independent of row order.
PRICE_BASE, PRICE_SIGMA_CAT, PRICE_SIGMA_ITEM, PRICE_FLOOR = 3.5, 0.5, 0.35, 0.49


def check_skip_options(skip_unknown, stats, where: str) -> None:
    """The loaders' ``skip_unknown`` (True or False) and ``stats`` (a dict to fill, or None); else LoaderError."""
    if not isinstance(skip_unknown, (bool, np.bool_)):
        raise LoaderError(f"{where}(skip_unknown={shown(skip_unknown)}): skip_unknown must be True or False")
    if stats is not None and not isinstance(stats, dict):
        raise LoaderError(f"{where}(stats={shown(stats)}): stats must be a dict to fill, or None")


def impute_prices(item_ids: Sequence[str], category: np.ndarray, category_names: Sequence[str]) -> np.ndarray:
    """(n,) float32 prices by the rule above (per-category lognormal median, per-item hashed spread)."""
    item_ids = need_sequence(item_ids, "item_ids", "impute_prices", "a list of item ids (str)", error=LoaderError)
    category_names = need_sequence(category_names, "category_names", "impute_prices", "a list of category names (str)",
                                   error=LoaderError)
    if not all(isinstance(v, str) for v in [*item_ids, *category_names]):
        raise LoaderError("impute_prices(item_ids=..., category_names=...): item_ids and category_names must be str")
    category = need_array(category, "category", "impute_prices", np.int64, ndim=1, error=LoaderError)
    if category.shape != (len(item_ids),) or ((category < 0) | (category >= len(category_names))).any():
        raise LoaderError(f"impute_prices(category={shown(category)}): category must hold one position in "
                          f"[0, {len(category_names)}) per item ({len(item_ids)} items)")
    median = PRICE_BASE * np.exp(PRICE_SIGMA_CAT * hash_normal(list(category_names), "bundlerl-category-price"))
    spread = np.exp(PRICE_SIGMA_ITEM * hash_normal(list(item_ids), "bundlerl-item-price"))
    return np.maximum(np.round(median[np.asarray(category)] * spread, 2), PRICE_FLOOR).astype(np.float32)
