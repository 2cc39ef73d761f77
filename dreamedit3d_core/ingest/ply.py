"""PLY reader (ASCII and binary), our own: trimesh's silently shortens truncated files and drops bad faces.

Reads the `vertex` element (x, y, z; optional red/green/blue/alpha; optional s/t or u/v texture
coordinates) and the `face` element (a `vertex_indices` or `vertex_index` list; polygons become fans) and
skips any other element. The whole file is one part. Truncated data, faces with fewer than 3 vertices and
out-of-range indices refuse the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dreamedit3d_core.ingest.asset import AssetError, Material, Part
from dreamedit3d_core.ingest.sources import SourceResolver

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
                elements.append(_Element(words[1], int(words[2]), []))
            elif words[0] == "property" and words[1] == "list":
                elements[-1].properties.append((words[4], _TYPES[words[3]], _TYPES[words[2]]))
            elif words[0] == "property":
                elements[-1].properties.append((words[2], _TYPES[words[1]], None))
        except (IndexError, KeyError, ValueError):
            raise AssetError(f"{path.name}: bad PLY header line {line!r}") from None
    if encoding not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise AssetError(f"{path.name}: unknown PLY format {encoding!r}")
    return encoding, elements, data_start


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
            k = int(np.frombuffer(data, np.dtype(order + count_type), 1, offset)[0])
            dtype = np.dtype([("n", order + count_type), ("v", order + t, (k,))])
            if offset + dtype.itemsize * element.count <= len(data):
                table = np.frombuffer(data, dtype=dtype, count=element.count, offset=offset)
                if (table["n"] == k).all():
                    values[element.name] = {name: table["v"]}  # (count, k)
                    offset += dtype.itemsize * element.count
                    continue
        # rows with list properties have varying sizes: walk them one by one
        columns: dict[str, list] = {name: [] for name, _, _ in element.properties}
        for _ in range(element.count):
            for name, t, count_type in element.properties:
                n = 1
                if count_type is not None:
                    count_dtype = np.dtype(order + count_type)
                    if offset + count_dtype.itemsize > len(data):
                        raise AssetError(f"{path.name}: truncated PLY in element {element.name!r}")
                    n = int(np.frombuffer(data, count_dtype, 1, offset)[0])
                    offset += count_dtype.itemsize
                value_dtype = np.dtype(order + t)
                if offset + n * value_dtype.itemsize > len(data):
                    raise AssetError(f"{path.name}: truncated PLY in element {element.name!r}")
                value = np.frombuffer(data, value_dtype, n, offset)
                offset += n * value_dtype.itemsize
                columns[name].append(value if count_type is not None else value[0])
        values[element.name] = columns
    return values


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
        columns: dict[str, list] = {name: [] for name, _, _ in element.properties}
        for line in lines[row : row + element.count]:
            words = line.split()
            position = 0
            try:
                for name, _, count_type in element.properties:
                    if count_type is None:
                        columns[name].append(float(words[position]))
                        position += 1
                    else:
                        n = int(words[position])
                        columns[name].append(np.array([int(w) for w in words[position + 1 : position + 1 + n]]))
                        if len(columns[name][-1]) != n:
                            raise IndexError
                        position += 1 + n
            except (IndexError, ValueError):
                raise AssetError(f"{path.name}: bad PLY row {line.strip()!r} in element {element.name!r}") from None
        values[element.name] = columns
        row += element.count
    return values


def _triangulate(path: Path, lists: object) -> np.ndarray:
    """Face index lists -> (F, 3) triangles (fans)."""
    if isinstance(lists, np.ndarray):  # (count, k): all faces have k vertices
        if lists.shape[1] < 3:
            raise AssetError(f"{path.name}: faces have {lists.shape[1]} vertices (fewer than 3)")
        fans = [lists[:, [0, j, j + 1]] for j in range(1, lists.shape[1] - 1)]
        return np.stack(fans, axis=1).reshape(-1, 3).astype(np.int64)  # (count, k-2, 3) -> (F, 3)
    triangles = []
    for row, indices in enumerate(lists):
        if len(indices) < 3:
            raise AssetError(f"{path.name}: face {row} has {len(indices)} vertices (fewer than 3)")
        fan = np.asarray(indices, dtype=np.int64)
        triangles.append(np.stack([np.full(len(fan) - 2, fan[0]), fan[1:-1], fan[2:]], axis=1))  # (n-2, 3)
    return np.concatenate(triangles)


def read_ply(files: SourceResolver) -> tuple[list[Part], list[Material], list[str]]:
    path = files.main.path
    raw = files.read(files.main)
    if not raw.strip():
        raise AssetError(f"{path.name}: empty file")
    encoding, elements, data_start = _parse_header(path, raw)
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
