"""PLY reader (ASCII and binary), our own: trimesh's silently shortens truncated files and drops bad faces.

Reads the `vertex` element (x, y, z; optional red/green/blue/alpha; optional s/t or u/v texture
coordinates) and the `face` element (a `vertex_indices` or `vertex_index` list; polygons become fans) and
skips any other element. The whole file is one part. Truncated data, faces with fewer than 3 vertices and
out-of-range indices refuse the file.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dreamedit3d_core.ingest.asset import AssetError, Material, Part
from dreamedit3d_core.ingest.limits import check_count
from dreamedit3d_core.ingest.sources import SourceResolver

_STRUCT = {"i1": "b", "u1": "B", "i2": "h", "u2": "H", "i4": "i", "u4": "I", "f4": "f", "f8": "d"}
_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
          "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
          "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}  # fmt: skip
PLY_MATERIAL = Material(name="default", base_color=(0.8, 0.8, 0.8, 1.0), metallic=0.0, roughness=0.5)


@dataclass
class _Element:
    name: str
    count: int
    properties: list[tuple[str, str, str | None]]  # (name, value type, list count type or None)


def _parse_header(path: Path, raw: bytes) -> tuple[str, list[_Element], int]:
    if not raw.startswith(b"ply"):
        raise AssetError(f"{path.name}: not a PLY file (it does not start with 'ply')")
    end = raw.find(b"end_header")
    if end < 0:
        raise AssetError(f"{path.name}: truncated PLY header (no 'end_header')")
    data_start = raw.index(b"\n", end) + 1 if b"\n" in raw[end:] else len(raw)
    encoding, elements = "", []
    for line in raw[:end].decode("ascii", errors="replace").splitlines()[1:]:
        words = line.split()
        try:
            if not words or words[0] in ("comment", "obj_info"):
                continue
            if words[0] == "format":
                encoding = words[1]
            elif words[0] == "element":
                count = int(words[2])
                if count < 0:
                    raise ValueError
                elements.append(_Element(words[1], count, []))
            elif words[0] == "property" and words[1] == "list":
                elements[-1].properties.append((words[4], _TYPES[words[3]], _TYPES[words[2]]))
            elif words[0] == "property":
                elements[-1].properties.append((words[2], _TYPES[words[1]], None))
        except (IndexError, KeyError, ValueError):
            raise AssetError(f"{path.name}: bad PLY header line {line!r}") from None
    if encoding not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise AssetError(f"{path.name}: unknown PLY format {encoding!r}")
    return encoding, elements, data_start


@dataclass
class _Ragged:
    """Lists of varying length, flat: row i is values[starts[i] : starts[i] + counts[i]]."""

    values: np.ndarray  # (total,) the lists' entries, one after another
    starts: np.ndarray  # (rows,) int64
    counts: np.ndarray  # (rows,) int64

    def __len__(self) -> int:
        return len(self.counts)


def _read_binary(path: Path, data: bytes, elements: list[_Element], order: str) -> dict[str, dict[str, object]]:
    values: dict[str, dict[str, object]] = {}
    offset = 0
    for element in elements:
        if all(kind is None for _, _, kind in element.properties):
            dtype = np.dtype([(name, order + t) for name, t, _ in element.properties])
            size = dtype.itemsize * element.count
            if offset + size > len(data):
                raise AssetError(f"{path.name}: truncated PLY: element {element.name!r} needs {size} bytes")
            table = np.frombuffer(data, dtype=dtype, count=element.count, offset=offset)
            values[element.name] = {name: table[name] for name, _, _ in element.properties}
            offset += size
            continue
        if len(element.properties) == 1 and offset < len(data):
            # the usual face element (one list, all rows the same length) reads in one go
            name, t, count_type = element.properties[0]
            k = max(int(np.frombuffer(data, np.dtype(order + count_type), 1, offset)[0]), 0)
            dtype = np.dtype([("n", order + count_type), ("v", order + t, (k,))])
            if offset + dtype.itemsize * element.count <= len(data):
                table = np.frombuffer(data, dtype=dtype, count=element.count, offset=offset)
                if (table["n"] == k).all():
                    values[element.name] = {name: table["v"]}  # (count, k)
                    offset += dtype.itemsize * element.count
                    continue
        values[element.name], offset = _read_binary_rows(path, data, element, order, offset)
    return values


def _read_binary_rows(
    path: Path, data: bytes, element: _Element, order: str, offset: int
) -> tuple[dict[str, object], int]:
    """An element with lists of varying length: one pass over the rows reads only where each value starts
    (the lists' lengths decide where the next row begins), then every column is gathered at once."""
    layout = []  # (name, value dtype, count dtype or None)
    for name, t, count_type in element.properties:
        layout.append((name, np.dtype(order + t), None if count_type is None else struct.Struct(order + _STRUCT[count_type])))
    minimum = sum((c.size if c is not None else v.itemsize) for _, v, c in layout)
    if offset + minimum * element.count > len(data):
        raise AssetError(f"{path.name}: truncated PLY: element {element.name!r} needs at least {minimum * element.count} bytes")
    starts = {name: np.empty(element.count, dtype=np.int64) for name, _, _ in layout}
    counts = {name: np.ones(element.count, dtype=np.int64) for name, _, _ in layout}
    for row in range(element.count):
        for name, value_type, count_struct in layout:
            n = 1
            if count_struct is not None:
                if offset + count_struct.size > len(data):
                    raise AssetError(f"{path.name}: truncated PLY in element {element.name!r}")
                (n,) = count_struct.unpack_from(data, offset)
                if n < 0:
                    raise AssetError(f"{path.name}: negative list length {n} in PLY element {element.name!r}")
                offset += count_struct.size
                counts[name][row] = n
            starts[name][row] = offset
            offset += n * value_type.itemsize
            if offset > len(data):
                raise AssetError(f"{path.name}: truncated PLY in element {element.name!r}")
    raw = np.frombuffer(data, dtype=np.uint8)
    columns: dict[str, object] = {}
    for name, value_type, count_struct in layout:
        size = value_type.itemsize
        lengths = counts[name] * size  # bytes of each row's value(s)
        firsts = np.repeat(starts[name] - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        gathered = raw[firsts + np.arange(int(lengths.sum()))].view(value_type)  # the values, row after row
        if count_struct is None:
            columns[name] = gathered
        else:
            columns[name] = _Ragged(gathered, np.cumsum(counts[name]) - counts[name], counts[name])
    return columns, offset


def _read_ascii(path: Path, data: bytes, elements: list[_Element]) -> dict[str, dict[str, object]]:
    lines = [line for line in data.decode("ascii", errors="replace").splitlines() if line.strip()]
    values: dict[str, dict[str, object]] = {}
    row = 0
    for element in elements:
        if row + element.count > len(lines):
            raise AssetError(
                f"{path.name}: truncated PLY: element {element.name!r} declares {element.count} rows, "
                f"{max(len(lines) - row, 0)} present"
            )
        block = lines[row : row + element.count]
        values[element.name] = _ascii_element(path, element, block)
        row += element.count
    return values


def _ascii_element(path: Path, element: _Element, block: list[str]) -> dict[str, object]:
    """One element's rows, parsed column-wise: scalars as arrays, lists as `_Ragged`."""
    rows = [line.split() for line in block]
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    starts = np.cumsum(lengths) - lengths  # where each row begins among all words
    try:
        words = np.array([word for row in rows for word in row], dtype=np.float64)
    except ValueError:
        words = None
    columns: dict[str, object] = {}
    position = np.zeros(len(rows), dtype=np.int64)  # each row's next word
    for name, _, count_type in element.properties:
        if words is None or (position >= lengths).any():
            return _bad_row(path, element, block, words, lengths, position)
        if count_type is None:
            columns[name] = words[starts + position]
            position += 1
            continue
        counts = words[starts + position]
        if (counts < 0).any() or (counts != np.round(counts)).any() or (position + 1 + counts > lengths).any():
            return _bad_row(path, element, block, words, lengths, position, counts)
        counts = counts.astype(np.int64)
        firsts = starts + position + 1
        index = np.repeat(firsts - (np.cumsum(counts) - counts), counts) + np.arange(int(counts.sum()))
        entries = words[index]
        if (entries != np.round(entries)).any():
            return _bad_row(path, element, block, words, lengths, position, counts)
        columns[name] = _Ragged(entries.astype(np.int64), np.cumsum(counts) - counts, counts)
        position += 1 + counts
    if (position != lengths).any():
        return _bad_row(path, element, block, words, lengths, position)
    return columns


def _bad_row(path: Path, element: _Element, block: list[str], *_: object) -> dict[str, object]:
    """Refuse the first row of `block` that does not match the element's properties, naming it."""
    for line in block:
        words = line.split()
        position = 0
        try:
            for _, _, count_type in element.properties:
                if count_type is None:
                    float(words[position])
                    position += 1
                else:
                    n = int(words[position])
                    if n < 0 or len(words) < position + 1 + n:
                        raise IndexError
                    [int(word) for word in words[position + 1 : position + 1 + n]]
                    position += 1 + n
            if position != len(words):
                raise IndexError
        except (IndexError, ValueError):
            raise AssetError(f"{path.name}: bad PLY row {line.strip()[:200]!r} in element {element.name!r}") from None
    raise AssetError(f"{path.name}: bad PLY rows in element {element.name!r}")


def _triangulate(path: Path, lists: object) -> np.ndarray:
    """Face index lists -> (F, 3) triangles (fans), in the order of the faces."""
    if isinstance(lists, np.ndarray):  # (count, k): all faces have k vertices
        if lists.shape[1] < 3:
            raise AssetError(f"{path.name}: faces have {lists.shape[1]} vertices (fewer than 3)")
        fans = [lists[:, [0, j, j + 1]] for j in range(1, lists.shape[1] - 1)]
        return np.stack(fans, axis=1).reshape(-1, 3).astype(np.int64)  # (count, k-2, 3) -> (F, 3)
    assert isinstance(lists, _Ragged)
    short = np.flatnonzero(lists.counts < 3)
    if len(short):
        row = int(short[0])
        raise AssetError(f"{path.name}: face {row} has {int(lists.counts[row])} vertices (fewer than 3)")
    per_face = lists.counts - 2  # triangles of each face
    face = np.repeat(np.arange(len(lists)), per_face)  # (F,) the face each triangle comes from
    j = np.arange(len(face)) - np.repeat(np.cumsum(per_face) - per_face, per_face) + 1  # 1 .. n-2 within its face
    first = lists.starts[face]
    values = lists.values.astype(np.int64)
    return np.stack([values[first], values[first + j], values[first + j + 1]], axis=1)


def read_ply(files: SourceResolver) -> tuple[list[Part], list[Material], list[str]]:
    path = files.main.path
    raw = files.read(files.main)
    if not raw.strip():
        raise AssetError(f"{path.name}: empty file")
    encoding, elements, data_start = _parse_header(path, raw)
    for element in elements:  # before reading: a face is at least one triangle
        if element.name in ("vertex", "face"):
            limit = "max_vertices" if element.name == "vertex" else "max_faces"
            check_count(files.limits, limit, element.count, path.name, f"{element.name} rows in the header")
    data = raw[data_start:]
    if encoding == "ascii":
        values = _read_ascii(path, data, elements)
    else:
        values = _read_binary(path, data, elements, "<" if encoding == "binary_little_endian" else ">")
    vertex = values.get("vertex", {})
    if not all(axis in vertex for axis in "xyz") or len(vertex["x"]) == 0:
        raise AssetError(f"{path.name}: no geometry (no vertices with x, y, z)")
    vertices = np.stack([np.asarray(vertex[axis], dtype=np.float64) for axis in "xyz"], axis=1)  # (N, 3)
    face = values.get("face", {})
    lists = face.get("vertex_indices", face.get("vertex_index"))
    if lists is None or len(lists) == 0:
        raise AssetError(f"{path.name}: no geometry (no faces; {len(vertices)} vertices): point clouds are not meshes")
    faces = _triangulate(path, lists)
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise AssetError(f"{path.name}: face index out of range (0..{len(vertices) - 1}): {faces.max()}")
    if not np.isfinite(vertices).all():
        first = int(np.flatnonzero(~np.isfinite(vertices).all(axis=1))[0])
        raise AssetError(f"{path.name}: non-finite vertex coordinate (vertex {first})")

    colors = None
    if all(c in vertex for c in ("red", "green", "blue")):
        types = {name: t for name, t, _ in next(e for e in elements if e.name == "vertex").properties}
        channels = [np.asarray(vertex[c], dtype=np.float64) for c in ("red", "green", "blue", "alpha") if c in vertex]
        scale = 255.0 if types["red"].startswith("f") else 1.0  # float colours are 0..1, integer ones 0..255
        rgba = np.stack([c * scale for c in channels] + [np.full(len(vertices), 255.0)] * (4 - len(channels)), axis=1)
        colors = np.clip(np.round(rgba), 0, 255).astype(np.uint8)  # (N, 4)
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
