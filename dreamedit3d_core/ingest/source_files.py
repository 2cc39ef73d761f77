"""Which files an asset is made of: its main file and every file its reader opens, found by the readers' own
reference walkers and resolver (reference_resolver.py), for the ingest stage's cache key."""

from __future__ import annotations

from pathlib import Path

from dreamedit3d_core.ingest.gltf_document import gltf_references
from dreamedit3d_core.ingest.limits import IngestLimits
from dreamedit3d_core.ingest.obj import obj_references
from dreamedit3d_core.ingest.reference_resolver import SourceFile, SourceResolver


# Listing an asset's files runs in the caller's process (planning, manifests, the ingest stage's cache key),
# not in the reader's child: it must stay far cheaper than reading the asset, so its time budget is short.
TIMEOUT_S = 60.0


def source_files(path: Path, limits: IngestLimits | None = None, timeout_s: float = TIMEOUT_S) -> list[SourceFile]:
    """The asset's main file first, then every other file its reader opens that exists (sorted, no duplicates).

    Cheap: reads only the main file and OBJ material libraries (never decodes a texture or a mesh), each
    once, under the readers' limits (`limits`, the defaults where not given) and a time budget. A file whose
    references cannot be parsed gives just the main file (ingesting it reports the problem); a reference
    outside the asset's folder, or a limit or the time budget passed, raises the AssetError that refuses it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"asset file not found: {path}")
    files = SourceResolver(path, limits, timeout_s)
    suffix = path.suffix.lower()
    referenced: list[SourceFile] = []
    if suffix in (".gltf", ".glb"):
        referenced = gltf_references(files)
    elif suffix == ".obj":
        referenced = obj_references(files)
    unique = {file.relative: file for file in referenced if file.relative != files.main.relative}
    return [files.main, *(unique[relative] for relative in sorted(unique))]
