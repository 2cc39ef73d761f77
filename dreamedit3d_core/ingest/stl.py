"""STL reader (binary and ASCII), our own: trimesh's returns an empty scene for truncated or foreign bytes.

A binary STL is exactly 84 + 50 * n bytes; anything else that does not parse as ASCII STL is refused.
The whole file is one part; triangles keep their own corners (STL shares no vertices).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from dreamedit3d_core.ingest.asset import AssetError, Material, Part
from dreamedit3d_core.ingest.limits import check_count
from dreamedit3d_core.ingest.sources import SourceResolver

STL_MATERIAL = Material(name="default", base_color=(0.8, 0.8, 0.8, 1.0), metallic=0.0, roughness=0.5)
_BINARY_RECORD = np.dtype([("normal", "<f4", (3,)), ("corners", "<f4", (3, 3)), ("attribute", "<u2")])
_VERTEX = re.compile(rb"^\s*vertex\s+(\S+)\s+(\S+)\s+(\S+)\s*$", re.MULTILINE)


def _read_ascii(path: Path, raw: bytes, count: int) -> np.ndarray:
    if not (raw.lstrip().startswith(b"solid") and b"facet" in raw[:4096]):
        if count < 0:
            raise AssetError(f"{path.name}: not an STL file ({len(raw)} bytes, shorter than a binary STL header)")
        raise AssetError(
            f"{path.name}: truncated or not an STL file: a binary STL whose header says {count} triangles "
            f"has {84 + 50 * count} bytes, this file has {len(raw)} (and it is not ASCII STL)"
        )
    if b"endsolid" not in raw:
        raise AssetError(f"{path.name}: truncated ASCII STL (no 'endsolid')")
    try:
        corners = np.array(_VERTEX.findall(raw), dtype=np.float64)  # (3F, 3)
    except ValueError as error:
        raise AssetError(f"{path.name}: bad vertex line in ASCII STL ({error})") from None
    if len(corners) % 3:
        raise AssetError(f"{path.name}: {len(corners)} vertex lines is not a whole number of triangles")
    if len(corners) // 3 != raw.count(b"endfacet"):
        raise AssetError(f"{path.name}: facets with other than 3 vertices")
    return corners


def read_stl(files: SourceResolver) -> tuple[list[Part], list[Material], list[str]]:
    path = files.main.path
    raw = files.read(files.main)
    if not raw.strip():
        raise AssetError(f"{path.name}: empty file")
    count = int(np.frombuffer(raw[80:84], "<u4")[0]) if len(raw) >= 84 else -1
    if count >= 0 and len(raw) == 84 + 50 * count:
        check_count(files.limits, "max_faces", count, path.name, "triangles")
        records = np.frombuffer(raw, dtype=_BINARY_RECORD, count=count, offset=84)
        corners = records["corners"].reshape(-1, 3).astype(np.float64)  # (F, 3, 3) -> (3F, 3)
    else:
        corners = _read_ascii(path, raw, count)
    if len(corners) == 0:
        raise AssetError(f"{path.name}: no geometry (0 triangles)")
    check_count(files.limits, "max_faces", len(corners) // 3, path.name, "triangles")
    if not np.isfinite(corners).all():
        first = int(np.flatnonzero(~np.isfinite(corners).all(axis=1))[0]) // 3
        raise AssetError(f"{path.name}: non-finite vertex coordinate in triangle {first}")
    faces = np.arange(len(corners), dtype=np.int32).reshape(-1, 3)  # (3F,) -> (F, 3)
    part = Part(name=path.stem, vertices=corners, faces=faces, face_materials=np.zeros(len(faces), np.int32))
    return [part], [STL_MATERIAL], []
