"""The ingest stage: read a 3D file, refuse bad input, clean and normalise it into an IngestedAsset.

Normalisation: the up axis is rotated onto +Z (Blender world axes), then the asset is centred on its
axis-aligned bounding-box centre and scaled so that the vertex farthest from that centre is at distance 1
("unit bounding sphere" here means the sphere around the bounding-box centre through the farthest vertex,
not the minimal enclosing sphere). glTF is +Y up by its specification; OBJ, PLY and STL have no convention
and are taken as +Y up too unless `IngestConfig.up_axis` says otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from dreamedit3d_core.ingest.asset import AssetError, IngestedAsset, Material, Part
from dreamedit3d_core.ingest.config import DEFAULT_UP_AXIS, SUPPORTED_SUFFIXES, IngestConfig
from dreamedit3d_core.ingest.gltf import read_gltf
from dreamedit3d_core.ingest.limits import check_count
from dreamedit3d_core.ingest.obj import read_obj
from dreamedit3d_core.ingest.ply import read_ply
from dreamedit3d_core.ingest.reference_resolver import SourceFile, SourceResolver
from dreamedit3d_core.ingest.split import split_single_mesh
from dreamedit3d_core.ingest.stl import read_stl

logger = logging.getLogger(__name__)


# rotations taking each up axis onto +Z with a right-handed turn about a horizontal axis;
# "+y" is MVDream's / glTF's: (x, y, z) -> (x, -z, y), so glTF's front (+Z) faces -Y (azimuth 0)
_UP_ROTATIONS = {
    "+z": np.eye(3),
    "+y": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]),
    "-y": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]),
    "-z": np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]]),
    "+x": np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),
    "-x": np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]),
}


def up_rotation(up_axis: str) -> np.ndarray:
    """(3, 3) rotation taking `up_axis` ("+y", "-x", ...) onto +Z."""
    return _UP_ROTATIONS[up_axis].copy()


_READERS: dict[str, Callable[[SourceResolver], tuple[list[Part], list[Material], list[str]]]] = {
    ".glb": read_gltf,
    ".gltf": read_gltf,
    ".obj": read_obj,
    ".ply": read_ply,
    ".stl": read_stl,
}


def _clean(parts: list[Part], source: str, config: IngestConfig, warnings: list[str]) -> list[Part]:
    """Refuse non-finite coordinates; drop degenerate faces, unused vertices and empty parts."""
    for part in parts:
        if not np.isfinite(part.vertices).all():
            raise AssetError(f"{source}: part {part.name!r} has non-finite (NaN or infinite) vertex coordinates")
    corners = np.concatenate([p.vertices[p.faces].reshape(-1, 3) for p in parts if len(p.faces)])  # (3F, 3)
    diagonal = float(np.linalg.norm(corners.max(axis=0) - corners.min(axis=0))) if len(corners) else 0.0
    cleaned = []
    for part in parts:
        faces = part.faces
        repeated = (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])
        degenerate = repeated | (part.face_areas() <= config.degenerate_area * diagonal**2)
        if degenerate.any():
            warnings.append(
                f"{source}: dropped {int(degenerate.sum())} degenerate face(s) (zero area or repeated vertex) "
                f"of {len(faces)} in part {part.name!r}"
            )
        if degenerate.all():
            warnings.append(f"{source}: part {part.name!r} has no faces left and is dropped")
            continue
        cleaned.append(part.with_faces(~degenerate))
    if not cleaned:
        raise AssetError(f"{source}: no geometry (every face is degenerate)")
    return cleaned


def printable_name(name: str) -> str:
    """A part name as people see it: control and format characters (terminal escapes, bidirectional
    overrides, line breaks) become spaces and runs of spaces one space; printable text is kept as written."""
    if all(ch.isprintable() for ch in name):
        return name
    return " ".join("".join(ch if ch.isprintable() else " " for ch in name).split())


def _unique_names(parts: list[Part], source: str, warnings: list[str]) -> None:
    """Printable, non-empty names, unique within the asset (`seat`, `seat_1`, ...)."""
    seen: set[str] = set()
    for i, part in enumerate(parts):
        printable = printable_name(part.name or "")
        if printable != (part.name or ""):
            warnings.append(f"{source}: part name {part.name!r} has control characters; named {printable!r}")
        base = printable.strip() or f"part_{i}"
        name, k = base, 1
        while name in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(name)
        part.name = name


def _compact_materials(parts: list[Part], materials: list[Material]) -> list[Material]:
    used = np.unique(np.concatenate([p.face_materials for p in parts]))
    remap = np.full(len(materials), -1, dtype=np.int32)
    remap[used] = np.arange(len(used), dtype=np.int32)
    for part in parts:
        part.face_materials = remap[part.face_materials]
    return [materials[i] for i in used]


def ingest_asset(
    path: Path | str, config: IngestConfig | None = None, *, opened: list[SourceFile] | None = None
) -> IngestedAsset:
    """Read, check, clean and normalise a GLB / glTF / OBJ / PLY / STL file. Raises AssetError on bad input.

    `opened`, where given, receives every file the reader opened (the main file first), also when it refuses
    the asset; on success these are exactly `sources.source_files(path)`.
    """
    config = config or IngestConfig()
    path = Path(path)
    if not path.is_file():
        raise AssetError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise AssetError(f"{path.name}: unsupported format {suffix!r} (supported: {', '.join(SUPPORTED_SUFFIXES)})")

    files = SourceResolver(path, config.limits)
    try:
        parts, materials, warnings = _READERS[suffix](files)
    except MemoryError:
        raise AssetError(
            f"{path.name}: reading the file needs more memory than a reader may use "
            f"(ingest.limits.max_memory_bytes={config.limits.max_memory_bytes:,})"
        ) from None
    except (RecursionError, Image.DecompressionBombError) as error:
        # what the limits did not foresee is still the file's doing: refused, not retried
        raise AssetError(f"{path.name}: the file is too large or too deeply nested to read ({type(error).__name__})") from None
    finally:
        if opened is not None:
            opened.extend(files.opened)
    check_count(config.limits, "max_vertices", sum(len(p.vertices) for p in parts), path.name, "vertices")
    check_count(config.limits, "max_faces", sum(len(p.faces) for p in parts), path.name, "triangles")
    check_count(config.limits, "max_parts", len(parts), path.name, "parts")
    parts = _clean(parts, path.name, config, warnings)
    parts = split_single_mesh(parts, materials, warnings, path.name)
    materials = _compact_materials(parts, materials)
    _unique_names(parts, path.name, warnings)

    up_axis = DEFAULT_UP_AXIS[suffix] if config.up_axis == "auto" else config.up_axis
    transform = np.eye(4)
    transform[:3, :3] = up_rotation(up_axis)
    if config.normalize:
        rotated = np.concatenate([p.vertices for p in parts]) @ transform[:3, :3].T  # (N, 3)
        centre = 0.5 * (rotated.min(axis=0) + rotated.max(axis=0))
        radius = float(np.linalg.norm(rotated - centre, axis=1).max())
        if not np.isfinite(radius) or radius <= 0.0:
            raise AssetError(f"{path.name}: the geometry has zero size")
        translate = np.eye(4)
        translate[:3, 3] = -centre
        scale = np.diag([1.0 / radius] * 3 + [1.0])
        transform = scale @ translate @ transform  # rotate, centre, scale
    for part in parts:
        part.vertices = (part.vertices @ transform[:3, :3].T + transform[:3, 3]).astype(np.float32)
        part.faces = part.faces.astype(np.int32)
        part.uvs = None if part.uvs is None else part.uvs.astype(np.float32)
    for message in warnings:
        logger.warning(message)
    return IngestedAsset(parts=parts, materials=materials, source=path.name, normalization=transform, warnings=warnings)
