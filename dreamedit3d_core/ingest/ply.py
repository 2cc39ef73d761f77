"""PLY reader (ASCII and binary), our own: trimesh's silently shortens truncated files and drops bad faces.

Reads the `vertex` element (x, y, z; optional red/green/blue/alpha; optional s/t or u/v texture
coordinates) and the `face` element (a `vertex_indices` or `vertex_index` list; polygons become fans) and
steps over any other element. The whole file is one part. Truncated data, faces with fewer than 3 vertices
and out-of-range indices refuse the file.

What the header claims is checked before any data is read: its size (`max_ply_header_bytes`), the rows of
all elements together (`max_ply_rows`), the vertex and face rows (`max_vertices`, `max_faces`), row counts
that are plain non-negative integers, list lengths of an integer type, no property twice in an element,
x/y/z single values and face indices a list of an integer type. The data is then read as it comes: ASCII
rows a batch of lines at a time (the file is never split into a list of all its lines), binary elements as
views of the bytes where every row has the same size, else row by row. Whatever a file holds, what goes
wrong is an AssetError naming the file and the problem.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import NoReturn

import numpy as np

from dreamedit3d_core.ingest.asset import AssetError, Material, Part
from dreamedit3d_core.ingest.limits import IngestLimits, check_count
from dreamedit3d_core.ingest.reference_resolver import SourceResolver

_STRUCT = {"i1": "b", "u1": "B", "i2": "h", "u2": "H", "i4": "i", "u4": "I", "f4": "f", "f8": "d"}
_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
          "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
          "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}  # fmt: skip
_INTEGER_TYPES = frozenset(t for t in _STRUCT if t[0] in "iu")
_VERTEX_SCALARS = ("x", "y", "z", "red", "green", "blue", "alpha", "s", "t", "u", "v", "texture_u", "texture_v")
_FACE_LISTS = ("vertex_indices", "vertex_index")  # the first one present is read
_READ = ("vertex", "face")  # the elements read; any other is stepped over
_LINE_END = re.compile(rb"[\r\n]")
_CHUNK_BYTES = 1 << 20  # ASCII data split into lines a chunk of about this size at a time
_BATCH_ROWS = 65536  # ASCII rows parsed together
_GATHER_ROWS = 1 << 20  # binary rows of varying size whose values are gathered together
_EXACT = 2.0**53  # ASCII integers beyond this are not read exactly as floats: refused
PLY_MATERIAL = Material(name="default", base_color=(0.8, 0.8, 0.8, 1.0), metallic=0.0, roughness=0.5)


@dataclass
class _Element:
    name: str
    count: int
    properties: list[tuple[str, str, str | None]]  # (name, value type, list length type or None)


def _header_lines(path: Path, raw: bytes, limits: IngestLimits) -> tuple[list[str], int]:
    """The header's lines after 'ply' and before 'end_header', and where the data starts; a header longer
    than `max_ply_header_bytes` is refused without looking further."""
    limit = limits.max_ply_header_bytes
    region = raw[:limit]
    lines: list[str] = []
    position = 0
    while position < len(region):
        end = region.find(b"\n", position)
        if end < 0 and len(raw) > limit:
            break  # this line goes on past the limit
        end = len(region) if end < 0 else end
        line = region[position:end].decode("ascii", errors="replace").strip()
        position = end + 1
        if line == "end_header":
            return lines[1:], min(position, len(raw))
        lines.append(line)
    if len(raw) > limit:
        raise AssetError(
            f"{path.name}: no 'end_header' in the first {limit:,} bytes: the PLY header is longer than the limit "
            f"ingest.limits.max_ply_header_bytes={limit:,} (raise it in the config if the header is meant to be this "
            "long)"
        )
    raise AssetError(f"{path.name}: truncated PLY header (no 'end_header')")


def _row_count(path: Path, element: str, text: str, limits: IngestLimits) -> int:
    """An element's row count as written in the header: plain decimal digits, nothing else."""
    if not (text.isascii() and text.isdigit()):
        raise AssetError(f"{path.name}: PLY element {element!r} has {text[:40]!r} rows, not a non-negative integer")
    if len(text) > 30:  # not worth converting (nor printing in full)
        raise AssetError(
            f"{path.name}: PLY element {element!r} has a {len(text)}-digit number of rows, more than the limit "
            f"ingest.limits.max_ply_rows={limits.max_ply_rows:,}"
        )
    return int(text)


def _value_type(path: Path, line: str, name: str) -> str:
    if name not in _TYPES:
        raise AssetError(f"{path.name}: bad PLY header line {line[:200]!r} (unknown type {name[:40]!r})")
    return _TYPES[name]


def _parse_header(path: Path, raw: bytes, limits: IngestLimits) -> tuple[str, list[_Element], int]:
    """(format, elements, where the data starts), with every count checked against the limits as it is read."""
    if not raw.startswith(b"ply"):
        raise AssetError(f"{path.name}: not a PLY file (it does not start with 'ply')")
    lines, data_start = _header_lines(path, raw, limits)
    encoding, elements, rows, names = "", [], 0, set()
    for line in lines:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format" and len(words) >= 2:
            encoding = words[1]
        elif words[0] == "element" and len(words) >= 3:
            if words[1] in names:
                raise AssetError(f"{path.name}: PLY element {words[1]!r} is declared twice in the header")
            names.add(words[1])
            element = _Element(words[1], _row_count(path, words[1], words[2], limits), [])
            if element.name in _READ:
                limit = "max_vertices" if element.name == "vertex" else "max_faces"
                check_count(limits, limit, element.count, path.name, f"{element.name} rows in the header")
            rows += element.count
            check_count(limits, "max_ply_rows", rows, path.name, "rows in the PLY header (all elements together)")
            elements.append(element)
        elif words[0] == "property" and elements and len(words) >= 5 and words[1] == "list":
            count_type, value_type = _value_type(path, line, words[2]), _value_type(path, line, words[3])
            if count_type not in _INTEGER_TYPES:
                raise AssetError(
                    f"{path.name}: PLY list {words[4]!r} of element {elements[-1].name!r} has its length typed "
                    f"{words[2]!r}: a list's length must be of an integer type"
                )
            elements[-1].properties.append((words[4], value_type, count_type))
        elif words[0] == "property" and elements and len(words) >= 3 and words[1] != "list":
            elements[-1].properties.append((words[2], _value_type(path, line, words[1]), None))
        elif words[0] in ("format", "element", "property"):
            raise AssetError(f"{path.name}: bad PLY header line {line[:200]!r}")
    if encoding not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise AssetError(f"{path.name}: unknown PLY format {encoding[:40]!r}")
    for element in elements:
        seen: set[str] = set()
        for name, _, _ in element.properties:
            if name in seen:
                raise AssetError(f"{path.name}: PLY element {element.name!r} has the property {name!r} twice")
            seen.add(name)
        if element.count and not element.properties:
            raise AssetError(f"{path.name}: PLY element {element.name!r} has {element.count:,} rows but no properties")
    return encoding, elements, data_start


def _check_properties(path: Path, elements: list[_Element]) -> tuple[_Element, str]:
    """Before reading data: the vertex element has single-valued x, y, z (and single-valued colours and
    texture coordinates), the face element a list of vertex indices of an integer type. Returns the vertex
    element and the name of the face list."""
    by_name = {element.name: element for element in elements}
    vertex, face = by_name.get("vertex"), by_name.get("face")
    kinds = {name: (t, count_type) for name, t, count_type in vertex.properties} if vertex else {}
    if vertex is None or vertex.count == 0 or not all(axis in kinds for axis in "xyz"):
        raise AssetError(f"{path.name}: no geometry (no vertices with x, y, z)")
    for name in _VERTEX_SCALARS:
        if kinds.get(name, (None, None))[1] is not None:
            raise AssetError(f"{path.name}: PLY vertex property {name!r} is a list, not a single value")
    kinds = {name: (t, count_type) for name, t, count_type in face.properties} if face else {}
    indices = next((name for name in _FACE_LISTS if name in kinds), None)
    if face is None or face.count == 0 or indices is None:
        raise AssetError(f"{path.name}: no geometry (no faces; {vertex.count} vertices): point clouds are not meshes")
    value_type, count_type = kinds[indices]
    if count_type is None:
        raise AssetError(f"{path.name}: PLY face property {indices!r} is a single value, not a list of vertex indices")
    if value_type not in _INTEGER_TYPES:
        typed = next(name for name, t in _TYPES.items() if t == value_type)
        raise AssetError(
            f"{path.name}: PLY face indices {indices!r} are typed {typed!r}: indices must be of an integer type"
        )
    return vertex, indices


@dataclass
class _Ragged:
    """Lists of varying length, flat: row i is values[starts[i] : starts[i] + counts[i]]."""

    values: np.ndarray  # (total,) the lists' entries, one after another
    starts: np.ndarray  # (rows,) int64
    counts: np.ndarray  # (rows,) int64

    @classmethod
    def of(cls, values: np.ndarray, counts: np.ndarray) -> _Ragged:
        return cls(values, np.cumsum(counts) - counts, counts)

    def __len__(self) -> int:
        return len(self.counts)


def _read_binary(path: Path, data: memoryview, elements: list[_Element], order: str) -> dict[str, dict[str, object]]:
    """The columns of the vertex and face elements (scalars as arrays, lists as `_Ragged` or, where every row's
    list has the same length, (rows, k) arrays); other elements are stepped over."""
    values: dict[str, dict[str, object]] = {}
    offset = 0
    for element in elements:
        layout = [(name, np.dtype(order + t), c if c is None else np.dtype(order + c)) for name, t, c in element.properties]
        table = _fixed_rows(path, data, offset, element, layout) if element.count else None
        if table is not None:  # every row the same size: a view of the bytes
            columns: dict[str, object] = {name: table[f"v{i}"] for i, (name, _, _) in enumerate(layout)}
            offset += table.dtype.itemsize * element.count
        elif element.count == 0:
            empty = np.empty(0, np.int64)
            columns = {name: np.empty(0, v) if c is None else _Ragged.of(np.empty(0, v), empty) for name, v, c in layout}
        else:
            columns, offset = _varying_rows(path, data, offset, element, order, element.name in _READ)
        if element.name in _READ:
            values[element.name] = columns
    return values


def _fixed_rows(
    path: Path, data: memoryview, offset: int, element: _Element, layout: list[tuple[str, np.dtype, np.dtype | None]]
) -> np.ndarray | None:
    """The element as a structured view of `data` (fields v0, v1, ... the properties; n0, ... list lengths)
    when each of its lists has, in every row, the length it has in the first row; None when not."""
    fields: list[tuple] = []
    position = offset  # in the first row
    for i, (_, value, count) in enumerate(layout):
        if count is None:
            fields.append((f"v{i}", value))
            position += value.itemsize
            continue
        if position + count.itemsize > len(data):
            return None
        k = int(np.frombuffer(data, count, 1, position)[0])
        position += count.itemsize + k * value.itemsize
        if k < 0 or k >= 2**31 or position > len(data):
            return None  # read row by row, which says what is wrong
        fields += [(f"n{i}", count), (f"v{i}", value, (k,))]
    size = position - offset  # bytes of each row, if all are like the first
    if offset + size * element.count > len(data):
        if all(count is None for _, _, count in layout):
            raise AssetError(
                f"{path.name}: truncated PLY: element {element.name!r} needs {size * element.count:,} bytes, "
                f"{max(len(data) - offset, 0):,} present"
            )
        return None
    table = np.frombuffer(data, dtype=np.dtype(fields), count=element.count, offset=offset)
    for i, (_, _, count) in enumerate(layout):
        if count is not None and not (table[f"n{i}"] == table[f"n{i}"][0]).all():
            return None
    return table


def _varying_rows(
    path: Path, data: memoryview, offset: int, element: _Element, order: str, keep: bool
) -> tuple[dict[str, object], int]:
    """An element with lists of varying length: one pass over the rows finds where each value starts (the
    lists' lengths decide where the next row begins); the columns of a kept element are then gathered."""
    plan = [(np.dtype(order + t), c if c is None else struct.Struct(order + _STRUCT[c])) for _, t, c in element.properties]
    minimum = sum(v.itemsize if c is None else c.size for v, c in plan)  # bytes of a row whose lists are empty
    if offset + minimum * element.count > len(data):
        raise AssetError(
            f"{path.name}: truncated PLY: element {element.name!r} needs at least {minimum * element.count:,} bytes, "
            f"{max(len(data) - offset, 0):,} present"
        )
    rows = element.count if keep else 0
    starts = [np.empty(rows, dtype=np.int64) for _ in plan]
    counts = [np.ones(rows, dtype=np.int64) for _ in plan]
    try:
        for row in range(element.count):
            for i, (value, count_struct) in enumerate(plan):
                n = 1
                if count_struct is not None:
                    (n,) = count_struct.unpack_from(data, offset)
                    if n < 0:
                        raise AssetError(f"{path.name}: negative list length {n} in PLY element {element.name!r}")
                    offset += count_struct.size
                    if keep:
                        counts[i][row] = n
                if keep:
                    starts[i][row] = offset
                offset += n * value.itemsize
    except struct.error:  # a list's length read past the end
        offset = len(data) + 1
    if offset > len(data):
        raise AssetError(f"{path.name}: truncated PLY in element {element.name!r}")
    columns: dict[str, object] = {}
    if keep:
        for (name, _, _), (value, count_struct), first, n in zip(element.properties, plan, starts, counts):
            gathered = _gather(data, value, first, n)
            columns[name] = gathered if count_struct is None else _Ragged.of(gathered, n)
    return columns, offset


def _gather(data: memoryview, value: np.dtype, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The counts[i] values at starts[i] in `data`, for every row i in order, as one array; the index arrays
    are built a slice of rows at a time, so they stay small whatever the lists' lengths."""
    out = np.empty(int(counts.sum()), dtype=value)
    if len(out) == 0:
        return out
    at = np.ndarray((len(data) - value.itemsize + 1,), dtype=value, buffer=data, strides=(1,))  # the value at each byte
    done = 0
    for first in range(0, len(starts), _GATHER_ROWS):
        row_starts, row_counts = starts[first : first + _GATHER_ROWS], counts[first : first + _GATHER_ROWS]
        n = int(row_counts.sum())
        within = np.arange(n) - np.repeat(np.cumsum(row_counts) - row_counts, row_counts)  # place in its list
        out[done : done + n] = at[np.repeat(row_starts, row_counts) + within * value.itemsize]
        done += n
    return out


def _lines(raw: bytes, start: int) -> Iterator[bytes]:
    """The non-blank lines of ASCII data from `start` on, stripped, one at a time; the data is split a chunk of
    about `_CHUNK_BYTES` at a time (cut after a line end), so its lines are never all in memory at once."""
    while start < len(raw):
        end = len(raw)
        if start + _CHUNK_BYTES < len(raw):
            found = _LINE_END.search(raw, start + _CHUNK_BYTES)
            end = len(raw) if found is None else found.end()
        yield from filter(None, map(bytes.strip, raw[start:end].splitlines()))
        start = end


def _read_ascii(path: Path, raw: bytes, start: int, elements: list[_Element]) -> dict[str, dict[str, object]]:
    """The columns of the vertex and face elements, parsed a batch of rows at a time (scalars as float64
    arrays, lists as `_Ragged`); the rows of other elements are counted, not parsed."""
    lines = _lines(raw, start)
    values: dict[str, dict[str, object]] = {}
    for element in elements:
        if element.name not in _READ:
            present = sum(1 for _ in islice(lines, element.count))
            if present < element.count:
                _truncated(path, element, present)
            continue
        batches, done = [], 0
        while done < element.count:
            block = _take(lines, element.count - done)
            if not block:
                _truncated(path, element, done)
            batches.append(_ascii_rows(path, element, block))
            done += len(block)
        values[element.name] = _joined(element, batches)
    return values


def _take(lines: Iterator[bytes], count: int) -> list[bytes]:
    """The next rows to parse together: `count` lines, at most `_BATCH_ROWS`, and fewer where they come to more
    than `_CHUNK_BYTES` (the words of a batch are Python objects, some tens of bytes each)."""
    block: list[bytes] = []
    size = 0
    for line in lines:
        block.append(line)
        size += len(line)
        if len(block) >= min(count, _BATCH_ROWS) or size >= _CHUNK_BYTES:
            break
    return block


def _truncated(path: Path, element: _Element, present: int) -> NoReturn:
    raise AssetError(
        f"{path.name}: truncated PLY: element {element.name!r} declares {element.count:,} rows, {present:,} present"
    )


def _joined(element: _Element, batches: list[dict[str, object]]) -> dict[str, object]:
    """One element's columns from the columns of its batches of rows."""
    columns: dict[str, object] = {}
    for name, _, count_type in element.properties:
        parts = [batch[name] for batch in batches]
        if count_type is None:
            columns[name] = np.concatenate(parts) if parts else np.empty(0)
        else:
            lists: list[_Ragged] = parts  # type: ignore[assignment]
            values = np.concatenate([part.values for part in lists]) if lists else np.empty(0, np.int64)
            counts = np.concatenate([part.counts for part in lists]) if lists else np.empty(0, np.int64)
            columns[name] = _Ragged.of(values, counts)
    return columns


def _integral(values: np.ndarray) -> bool:
    """Whether every one of these ASCII numbers is an integer that a float holds exactly."""
    return bool((np.abs(values) <= _EXACT).all() and (values == np.round(values)).all())


def _ascii_rows(path: Path, element: _Element, block: list[bytes]) -> dict[str, object]:
    """A batch of one element's rows, parsed column-wise: scalars as float64 arrays, lists as `_Ragged`
    (int64 values for a list of an integer type). Any row that does not fit the properties refuses the file."""
    rows = [line.split() for line in block]
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    starts = np.cumsum(lengths) - lengths  # where each row begins among all words
    try:
        words = np.array([word for row in rows for word in row], dtype=np.float64)
    except ValueError:
        _bad_row(path, element, block)
    columns: dict[str, object] = {}
    position = np.zeros(len(rows), dtype=np.int64)  # each row's next word
    for name, value_type, count_type in element.properties:
        if (position >= lengths).any():
            _bad_row(path, element, block)
        if count_type is None:
            columns[name] = words[starts + position]
            position += 1
            continue
        counts = words[starts + position]
        if (counts < 0).any() or not _integral(counts) or (position + 1 + counts > lengths).any():
            _bad_row(path, element, block)
        counts = counts.astype(np.int64)
        firsts = starts + position + 1
        entries = words[np.repeat(firsts - (np.cumsum(counts) - counts), counts) + np.arange(int(counts.sum()))]
        if value_type in _INTEGER_TYPES:
            if not _integral(entries):
                _bad_row(path, element, block)
            entries = entries.astype(np.int64)
        columns[name] = _Ragged.of(entries, counts)
        position += 1 + counts
    if (position != lengths).any():
        _bad_row(path, element, block)
    return columns


def _row_problem(element: _Element, words: list[bytes]) -> str | None:
    """What is wrong with one ASCII row of `element`, or None when it fits the properties."""

    def number(word: bytes) -> float | None:
        try:
            return float(word)
        except ValueError:
            return None

    def integer(word: bytes) -> int | None:
        value = number(word)
        return int(value) if value is not None and abs(value) <= _EXACT and value == round(value) else None

    position = 0
    for name, value_type, count_type in element.properties:
        if position >= len(words):
            return f"{len(words)} values, too few for the element's properties"
        word = words[position]
        if count_type is None:
            if number(word) is None:
                return f"{name!r} is {word[:40].decode(errors='replace')!r}, not a number"
            position += 1
            continue
        n = integer(word)
        if n is None or n < 0:
            return f"the length of list {name!r} is {word[:40].decode(errors='replace')!r}, not a non-negative integer"
        entries = words[position + 1 : position + 1 + n]
        if len(entries) < n:
            return f"list {name!r} says {n} values, {len(entries)} follow"
        for entry in entries:
            if (integer(entry) if value_type in _INTEGER_TYPES else number(entry)) is None:
                kind = "an integer" if value_type in _INTEGER_TYPES else "a number"
                return f"list {name!r} holds {entry[:40].decode(errors='replace')!r}, not {kind}"
        position += 1 + n
    if position != len(words):
        return f"{len(words) - position} values more than the element's properties"
    return None


def _bad_row(path: Path, element: _Element, block: list[bytes]) -> NoReturn:
    """Refuse the first row of `block` that does not fit the element's properties, naming it and what is wrong."""
    for line in block:
        problem = _row_problem(element, line.split())
        if problem is not None:
            row = line[:200].decode("ascii", errors="replace")
            raise AssetError(f"{path.name}: bad PLY row {row!r} in element {element.name!r}: {problem}")
    raise AssetError(f"{path.name}: bad PLY rows in element {element.name!r}")


def _triangulate(path: Path, lists: object, limits: IngestLimits) -> np.ndarray:
    """Face index lists -> (F, 3) triangles (fans), in the order of the faces; F is checked against
    `max_faces` before the triangles are made."""
    if isinstance(lists, np.ndarray):  # (count, k): all faces have k vertices
        if lists.shape[1] < 3:
            raise AssetError(f"{path.name}: faces have {lists.shape[1]} vertices (fewer than 3)")
        check_count(limits, "max_faces", len(lists) * (lists.shape[1] - 2), path.name, "triangles")
        fans = [lists[:, [0, j, j + 1]] for j in range(1, lists.shape[1] - 1)]
        return np.stack(fans, axis=1).reshape(-1, 3).astype(np.int64)  # (count, k-2, 3) -> (F, 3)
    assert isinstance(lists, _Ragged)
    short = np.flatnonzero(lists.counts < 3)
    if len(short):
        row = int(short[0])
        raise AssetError(f"{path.name}: face {row} has {int(lists.counts[row])} vertices (fewer than 3)")
    per_face = lists.counts - 2  # triangles of each face
    check_count(limits, "max_faces", int(per_face.sum()), path.name, "triangles")
    face = np.repeat(np.arange(len(lists)), per_face)  # (F,) the face each triangle comes from
    j = np.arange(len(face)) - np.repeat(np.cumsum(per_face) - per_face, per_face) + 1  # 1 .. n-2 within its face
    first = lists.starts[face]
    values = lists.values.astype(np.int64)
    return np.stack([values[first], values[first + j], values[first + j + 1]], axis=1)


def read_ply(files: SourceResolver) -> tuple[list[Part], list[Material], list[str]]:
    path = files.main.path
    raw = files.read(files.main)
    if not raw or raw.isspace():  # (no stripped copy of the whole file)
        raise AssetError(f"{path.name}: empty file")
    encoding, elements, data_start = _parse_header(path, raw, files.limits)
    vertex_element, indices = _check_properties(path, elements)
    if encoding == "ascii":
        values = _read_ascii(path, raw, data_start, elements)
    else:
        order = "<" if encoding == "binary_little_endian" else ">"
        values = _read_binary(path, memoryview(raw)[data_start:], elements, order)
    vertex = values["vertex"]
    vertices = np.stack([np.asarray(vertex[axis], dtype=np.float64) for axis in "xyz"], axis=1)  # (N, 3)
    faces = _triangulate(path, values["face"][indices], files.limits)
    if faces.min() < 0 or faces.max() >= len(vertices):
        bad = faces.min() if faces.min() < 0 else faces.max()
        raise AssetError(f"{path.name}: face index out of range (0..{len(vertices) - 1}): {bad}")
    if not np.isfinite(vertices).all():
        first = int(np.flatnonzero(~np.isfinite(vertices).all(axis=1))[0])
        raise AssetError(f"{path.name}: non-finite vertex coordinate (vertex {first})")

    colors = None
    if all(c in vertex for c in ("red", "green", "blue")):
        types = {name: t for name, t, _ in vertex_element.properties}
        channels = [np.asarray(vertex[c], dtype=np.float64) for c in ("red", "green", "blue", "alpha") if c in vertex]
        scale = 255.0 if types["red"].startswith("f") else 1.0  # float colours are 0..1, integer ones 0..255
        rgba = np.stack([c * scale for c in channels] + [np.full(len(vertices), 255.0)] * (4 - len(channels)), axis=1)
        colors = np.clip(np.round(np.nan_to_num(rgba)), 0, 255).astype(np.uint8)  # (N, 4)
    uvs = None
    for u_name, v_name in (("s", "t"), ("u", "v"), ("texture_u", "texture_v")):
        if u_name in vertex and v_name in vertex:
            uvs = np.stack([np.asarray(vertex[u_name]), np.asarray(vertex[v_name])], axis=1).astype(np.float64)
    part = Part(
        name=path.stem,
        vertices=vertices,
        faces=faces.astype(np.int32),
        face_materials=np.zeros(len(faces), dtype=np.int32),
        uvs=uvs,
        colors=colors,
    )
    return [part], [PLY_MATERIAL], []
