"""STL reader (binary and ASCII), our own: trimesh's returns an empty scene for truncated or foreign bytes.

A binary STL is exactly 84 + 50 * n bytes; anything else that does not parse as ASCII STL is refused.
The whole file is one part; triangles keep their own corners (STL shares no vertices).

ASCII STL is read in time linear in its size (one pass of a pattern that cannot backtrack across lines) and
its `vertex` lines are counted against `max_faces` before any is parsed; their numbers are parsed a batch
of lines at a time.
"""

from __future__ import annotations

import re
from itertools import islice
from pathlib import Path

import numpy as np

from dreamedit3d_core.ingest.asset import AssetError, Material, Part
from dreamedit3d_core.ingest.limits import IngestLimits, check_count
from dreamedit3d_core.ingest.reference_resolver import SourceResolver

STL_MATERIAL = Material(name="default", base_color=(0.8, 0.8, 0.8, 1.0), metallic=0.0, roughness=0.5)
_BINARY_RECORD = np.dtype([("normal", "<f4", (3,)), ("corners", "<f4", (3, 3)), ("attribute", "<u2")])
# a `vertex` line: spaces within the line only ([^\S\n]), never runs of blank lines, so each try at a line
# start stops at that line's end (with \s, each blank line's try ran over all the blank lines after it)
_VERTEX = re.compile(rb"^[^\S\n]*vertex[^\S\n]+(\S+)[^\S\n]+(\S+)[^\S\n]+(\S+)[^\S\n]*$", re.MULTILINE)
_BATCH_LINES = 1 << 18  # vertex lines whose numbers are parsed together


def _read_ascii(path: Path, raw: bytes, count: int, limits: IngestLimits) -> np.ndarray:
    """The corners of an ASCII STL's triangles, (3F, 3); `count` is what a binary header would have said."""
    if not (raw[:4096].lstrip().startswith(b"solid") and b"facet" in raw[:4096]):
        if count < 0:
            raise AssetError(f"{path.name}: not an STL file ({len(raw)} bytes, shorter than a binary STL header)")
        raise AssetError(
            f"{path.name}: truncated or not an STL file: a binary STL whose header says {count} triangles "
            f"has {84 + 50 * count} bytes, this file has {len(raw)} (and it is not ASCII STL)"
        )
    if b"endsolid" not in raw:
        raise AssetError(f"{path.name}: truncated ASCII STL (no 'endsolid')")
    check_count(limits, "max_faces", raw.count(b"vertex") // 3, path.name, "triangles (its 'vertex' words / 3)")
    matches = _VERTEX.finditer(raw)
    batches = [np.empty((0, 3))]
    while batch := [match.groups() for match in islice(matches, _BATCH_LINES)]:
        try:
            batches.append(np.array(batch, dtype=np.float64))  # (lines, 3)
        except ValueError as error:
            raise AssetError(f"{path.name}: bad vertex line in ASCII STL ({error})") from None
    corners = np.concatenate(batches)  # (3F, 3)
    if len(corners) % 3:
        raise AssetError(f"{path.name}: {len(corners)} vertex lines is not a whole number of triangles")
    if len(corners) // 3 != raw.count(b"endfacet"):
        raise AssetError(f"{path.name}: facets with other than 3 vertices")
    return corners


def read_stl(files: SourceResolver) -> tuple[list[Part], list[Material], list[str]]:
    path = files.main.path
    raw = files.read(files.main)
    if not raw or raw.isspace():  # (no stripped copy of the whole file)
        raise AssetError(f"{path.name}: empty file")
    count = int(np.frombuffer(raw[80:84], "<u4")[0]) if len(raw) >= 84 else -1
    if count >= 0 and len(raw) == 84 + 50 * count:
        check_count(files.limits, "max_faces", count, path.name, "triangles")
        records = np.frombuffer(raw, dtype=_BINARY_RECORD, count=count, offset=84)
        with np.errstate(invalid="ignore"):  # a signalling NaN warns as it widens; refused as non-finite below
            corners = records["corners"].reshape(-1, 3).astype(np.float64)  # (F, 3, 3) -> (3F, 3)
    else:
        corners = _read_ascii(path, raw, count, files.limits)
    if len(corners) == 0:
        raise AssetError(f"{path.name}: no geometry (0 triangles)")
    check_count(files.limits, "max_faces", len(corners) // 3, path.name, "triangles")
    if not np.isfinite(corners).all():
        first = int(np.flatnonzero(~np.isfinite(corners).all(axis=1))[0]) // 3
        raise AssetError(f"{path.name}: non-finite vertex coordinate in triangle {first}")
    faces = np.arange(len(corners), dtype=np.int32).reshape(-1, 3)  # (3F,) -> (F, 3)
    part = Part(name=path.stem, vertices=corners, faces=faces, face_materials=np.zeros(len(faces), np.int32))
    return [part], [STL_MATERIAL], []
