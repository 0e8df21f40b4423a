"""Loaders under hostile input: random bytes, byte-level mutations of valid files, other encodings (cp1252,
latin-1, UTF-16, binary), CSV dialects, truncations and header variants. Each case ends in exactly one of two
ways: a correct load (the expected values, stated per case), or a :class:`LoaderError` whose message names the
file (and the line, where one is to blame). Any other exception (UnicodeDecodeError, csv.Error, IndexError...)
fails the test."""

from __future__ import annotations

import csv
import io
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bundlerl.sim_data.loaders import (
    LoaderError,
    load_baskets_csv,
    load_bundles_csv,
    load_groceries,
    load_instacart,
    load_items_csv,
    load_steam_bundles,
)

FIX = Path(__file__).resolve().parent / "fixtures"
ITEMS = (FIX / "items.csv").read_bytes()
CATALOG = load_items_csv(FIX / "items.csv")
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _case(tmp_path_factory, name: str, data: bytes) -> Path:
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / name
    path.write_bytes(data)
    return path


def _folder_case(tmp_path_factory, fixture: str, name: str, data: bytes) -> Path:
    folder = tmp_path_factory.mktemp("fuzz") / fixture
    shutil.copytree(FIX / fixture, folder)
    (folder / name).write_bytes(data)
    return folder


#: loader name -> (file name it reads, call, fixture bytes); folder loaders replace one file of their folder
SINGLE = {
    "items": ("items.csv", lambda p: load_items_csv(p), ITEMS),
    "baskets": ("baskets.csv", lambda p: load_baskets_csv(p, CATALOG), (FIX / "baskets.csv").read_bytes()),
    "bundles": ("bundles.csv", lambda p: load_bundles_csv(p, CATALOG), (FIX / "bundles.csv").read_bytes()),
    "groceries": ("groceries.csv", lambda p: load_groceries(p), (FIX / "groceries.csv").read_bytes()),
}
FOLDER = {f"instacart/{f.name}": ("instacart", f.name, load_instacart) for f in sorted((FIX / "instacart").glob("*.csv"))}
FOLDER.update({f"steam/{f.name}": ("steam", f.name, load_steam_bundles) for f in sorted((FIX / "steam").glob("*.csv"))})


def _loads_or_names(call, arg: Path, named: Path):
    """Run the loader: a result, or None after checking the LoaderError names ``named`` (file or folder)."""
    try:
        return call(arg)
    except LoaderError as err:
        assert str(err).startswith(str(named)), f"the error does not start with the file: {err}"
        assert "Traceback" not in str(err)
        return None


def _mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """Apply (kind, position, byte) edits: 0 = replace, 1 = insert, 2 = delete."""
    b = bytearray(data)
    for kind, pos, val in edits:
        if not b and kind != 1:
            continue
        pos %= len(b) + (kind == 1)
        if kind == 0:
            b[pos] = val
        elif kind == 1:
            b.insert(pos, val)
        else:
            del b[pos]
    return bytes(b)


EDITS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6)


@pytest.mark.parametrize("kind", sorted(SINGLE))
@FUZZ
@given(data=st.one_of(st.binary(max_size=300), EDITS))
def test_single_file_loaders_on_random_and_mutated_bytes(tmp_path_factory, kind, data):
    name, call, valid = SINGLE[kind]
    raw = data if isinstance(data, bytes) else _mutate(valid, data)
    path = _case(tmp_path_factory, name, raw)
    _loads_or_names(call, path, path)


@pytest.mark.parametrize("target", sorted(FOLDER))
@FUZZ
@given(data=st.one_of(st.binary(max_size=200), EDITS))
def test_folder_loaders_on_random_and_mutated_bytes(tmp_path_factory, target, data):
    fixture, name, call = FOLDER[target]
    raw = data if isinstance(data, bytes) else _mutate((FIX / fixture / name).read_bytes(), data)
    folder = _folder_case(tmp_path_factory, fixture, name, raw)
    _loads_or_names(call, folder, folder)


TITLE = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12).filter(
    lambda t: t.strip() == t and t.strip())


def _items_text(titles: list[str], sep: str = ",", terminator: str = "\n", quoting=csv.QUOTE_MINIMAL,
                header=("item_id", "title", "category", "price")) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=sep, lineterminator=terminator, quoting=quoting)
    w.writerow(header)
    for k, t in enumerate(titles):
        row = {"item_id": f"i{k}", "title": t, "category": "c" + str(k % 2), "price": f"{k + 1}.5"}
        w.writerow([row.get(h.strip(), "x") for h in header])
    return buf.getvalue()


@FUZZ
@given(titles=st.lists(TITLE, min_size=1, max_size=5),
       encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "latin-1", "utf-16"]))
def test_encodings_load_utf8_exactly_and_name_the_line_otherwise(tmp_path_factory, titles, encoding):
    text = _items_text(titles)
    try:
        raw = text.encode(encoding)
    except UnicodeEncodeError:
        raw = text.encode(encoding, errors="replace")
    path = _case(tmp_path_factory, "items.csv", raw)
    cat = _loads_or_names(load_items_csv, path, path)
    try:
        decoded = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        decoded, bad_line = None, raw.count(b"\n", 0, err.start) + 1
    if decoded is not None and "\0" not in decoded:  # valid UTF-8 (any ASCII-only cp1252 / latin-1 file is)
        want = [row[1] for row in csv.reader(io.StringIO(decoded, newline=""))][1:]
        assert cat is not None and list(cat.titles) == want  # the right value, not just "no crash"
        if encoding.startswith("utf-8"):
            assert want == titles
    else:  # cp1252 / latin-1 bytes of non-ASCII text, or UTF-16: rejected, never mis-decoded
        assert cat is None
        if decoded is None and encoding != "utf-16":
            with pytest.raises(LoaderError, match=rf"line {bad_line}, byte \d+: not UTF-8"):
                load_items_csv(path)


@FUZZ
@given(titles=st.lists(TITLE, min_size=1, max_size=4), sep=st.sampled_from([",", ";", "\t", "|"]),
       terminator=st.sampled_from(["\n", "\r\n"]), quote_all=st.booleans())
def test_dialects(tmp_path_factory, titles, sep, terminator, quote_all):
    text = _items_text(titles, sep, terminator, csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
    path = _case(tmp_path_factory, "items.csv", text.encode())
    cat = _loads_or_names(load_items_csv, path, path)
    if sep == ",":
        assert cat is not None and list(cat.titles) == titles and list(cat.item_ids) == [f"i{k}" for k in range(len(titles))]
    else:
        assert cat is None
        with pytest.raises(LoaderError, match=r"line 1: missing column"):
            load_items_csv(path)


@FUZZ
@given(cut=st.integers(0, len(ITEMS)))
def test_truncated_files_load_a_prefix_or_name_the_line(tmp_path_factory, cut):
    path = _case(tmp_path_factory, "items.csv", ITEMS[:cut])
    cat = _loads_or_names(load_items_csv, path, path)
    if cat is not None:
        n = cat.n_items
        assert list(cat.item_ids[: n - 1]) == list(CATALOG.item_ids[: n - 1])  # complete rows unchanged
        assert list(cat.titles[: n - 1]) == list(CATALOG.titles[: n - 1])
        assert str(cat.item_ids[n - 1]).startswith(str(CATALOG.item_ids[n - 1])[:1])


HEADER = ("item_id", "title", "category", "price")


@FUZZ
@given(order=st.permutations(range(4)), pad=st.sampled_from(["", " ", "  "]), extra=st.booleans(),
       variant=st.sampled_from(["ok", "bom", "case", "duplicate"]))
def test_header_variants(tmp_path_factory, order, pad, extra, variant):
    header = [pad + HEADER[i] + pad for i in order] + (["notes"] if extra else [])
    if variant == "case":  # a required column in other letters is a missing column (names are case-sensitive)
        k = [h.strip() for h in header].index("title")
        header[k] = header[k].upper()
    if variant == "duplicate":
        header.append(header[0])
    titles = ["Trail Camera", "Tripod, aluminium", "Café crème"]
    text = _items_text(titles, header=tuple(header))
    raw = text.encode("utf-8-sig" if variant == "bom" else "utf-8")
    path = _case(tmp_path_factory, "items.csv", raw)
    cat = _loads_or_names(load_items_csv, path, path)
    if variant in ("ok", "bom"):
        assert cat is not None and list(cat.titles) == titles
        assert [round(float(p), 2) for p in cat.price] == [1.5, 2.5, 3.5]
    else:
        assert cat is None
        with pytest.raises(LoaderError, match=r"line 1: (missing column|column\(s\) .* more than once)"):
            load_items_csv(path)


@pytest.mark.parametrize("kind", sorted(SINGLE))
def test_named_encoding_errors_point_at_the_byte(tmp_path, kind):
    name, call, valid = SINGLE[kind]
    lines = valid.split(b"\n")
    lines[1] = lines[1].replace(b"a", b"\xe9", 1) if b"a" in lines[1] else lines[1] + b"\xe9"
    path = tmp_path / name
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(LoaderError) as err:
        call(path)
    assert re.match(rf"{re.escape(str(path))}: line 2, byte \d+: not UTF-8 \(byte 0xe9\); save the file as UTF-8",
                    str(err.value)), str(err.value)
    assert "iconv" in str(err.value)
