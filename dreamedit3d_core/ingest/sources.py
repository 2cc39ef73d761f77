"""Which files an asset is made of: the file itself plus what it references beside it.

The ingest stage's cache key hashes all of them, so editing a texture or a glTF buffer re-ingests the
asset, while unrelated files in the same folder do not.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote


def source_files(path: Path) -> list[Path]:
    """`path` first, then the existing local files it references (sorted, no duplicates)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"asset file not found: {path}")
    suffix = path.suffix.lower()
    referenced: set[Path] = set()
    if suffix == ".gltf":
        referenced |= _gltf_references(path)
    elif suffix == ".obj":
        for library in _obj_material_libraries(path):
            referenced.add(library)
            referenced |= _mtl_textures(library)
    files = sorted(file for file in referenced if file.is_file() and file.resolve() != path.resolve())
    return [path, *files]


def _gltf_references(path: Path) -> set[Path]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return set()  # the ingest stage itself reports the broken file
    uris = [entry.get("uri") for key in ("buffers", "images") for entry in document.get(key, []) if isinstance(entry, dict)]
    return {path.parent / unquote(uri) for uri in uris if isinstance(uri, str) and not uri.startswith("data:")}


def _obj_material_libraries(path: Path) -> set[Path]:
    libraries = set()
    with path.open("r", encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if line.startswith("mtllib"):
                name = line[len("mtllib") :].strip()
                if name:
                    libraries.add(path.parent / name)
    return libraries


_TEXTURE_STATEMENT = re.compile(r"^\s*(map_\w+|bump|disp|decal|refl|norm)\s+(.*)$", re.IGNORECASE)


def _mtl_textures(library: Path) -> set[Path]:
    if not library.is_file():
        return set()
    textures = set()
    for line in library.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _TEXTURE_STATEMENT.match(line)
        if not match:
            continue
        # Options (-bm 1, -o 0 0 0, ...) come first; the file name is the rest and may contain spaces.
        words = match.group(2).split()
        while words and words[0].startswith("-") and len(words) > 1:
            words = words[1:]
            while words and _is_number(words[0]) and len(words) > 1:
                words = words[1:]
        if words:
            textures.add(library.parent / " ".join(words))
    return textures


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True
