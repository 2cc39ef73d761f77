"""Manifests and assets at a URL (s3://, gs://, any fsspec protocol): read where they are, edited from a local copy.

Blender and the readers open local files, so the assets of a manifest at a URL are copied into this machine's
cache (`$DREAMEDIT3D_CACHE/sources/<digest of the manifest's folder URL>/`), keeping their paths relative to
the manifest's folder. The same rules as for a local manifest hold: an asset is named by a path relative to
the manifest's folder and may not leave it, and the files an asset references must sit in its own folder
(the reader's rule, applied to the copy).

Only what an asset references is copied. Which files those are is the readers' decision (`source_files`), so
the copy is found by a fixed point: the asset's candidate neighbours stand in as empty placeholders, the
reader names what it would open, those files are downloaded, and so on until nothing new is named (an OBJ
names its MTL, the MTL its textures: three rounds). Placeholders never survive the copy. A file is
downloaded again only when the store's checksum of it (the ETag on S3) changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import posixpath
import tempfile
from typing import Any
from urllib.parse import urlparse

import fsspec

from dreamedit3d_core.ingest import source_files
from storage import default_cache_dir

# Files an asset can reference, by suffix (material libraries, buffers, textures); only these stand in as
# placeholders while the references of an asset are found.
REFERENCE_SUFFIXES = (".mtl", ".bin", ".png", ".jpg", ".jpeg", ".webp", ".ktx2", ".tga", ".bmp", ".tif", ".tiff", ".gif", ".dds", ".exr", ".hdr")


def is_url(location: str | os.PathLike[str]) -> bool:
    """A URL with a scheme of two letters or more (a one-letter scheme is a Windows drive)."""
    scheme = urlparse(os.fspath(location)).scheme
    return len(scheme) > 1


def local_location(location: str | os.PathLike[str]) -> str:
    """A `file://` URL as the local path it names; anything else unchanged."""
    text = os.fspath(location)
    if text.startswith("file://"):
        return fsspec.core.url_to_fs(text)[1]
    return text


def absolute_location(location: str | os.PathLike[str]) -> str:
    """A URL unchanged, a local path (or file:// URL) as an absolute path: the same file from any folder."""
    local = local_location(location)
    return local if is_url(local) else str(pathlib.Path(local).expanduser().resolve())


class RemoteLibrary:
    """The folder of a manifest at a URL, and this machine's copy of what its assets need."""

    def __init__(self, manifest_url: str, cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.fs, path = fsspec.core.url_to_fs(manifest_url)
        self.manifest_url = manifest_url
        self.manifest_path = path
        self.folder = posixpath.dirname(path)
        self.folder_url = self.fs.unstrip_protocol(self.folder)
        digest = hashlib.sha256(self.folder_url.encode()).hexdigest()[:16]
        self.root = pathlib.Path(cache_dir or default_cache_dir()) / "sources" / digest
        self.root.mkdir(parents=True, exist_ok=True)
        self._checksums_path = self.root / ".checksums.json"
        try:
            self._checksums: dict[str, str] = json.loads(self._checksums_path.read_text())
        except (OSError, ValueError):
            self._checksums = {}
        self._listing: dict[str, dict[str, Any]] | None = None

    def fetch_manifest(self) -> pathlib.Path:
        """The manifest itself, copied beside the assets (raises FileNotFoundError when it is not there)."""
        if not self.fs.isfile(self.manifest_path):
            raise FileNotFoundError(f"manifest not found: {self.manifest_url}")
        return self._download(posixpath.basename(self.manifest_path), self.fs.info(self.manifest_path))

    def asset(self, relative: str) -> pathlib.Path:
        """The local copy of the asset at `relative` (a path under the manifest's folder) and of every file it
        references. Raises ValueError for a path that leaves the folder, FileNotFoundError for a missing one."""
        relative = checked_relative(relative)
        listing = self._files()
        if relative not in listing:
            raise FileNotFoundError(f"not found (looked for {self.folder_url}/{relative})")
        main = self._download(relative, listing[relative])
        folder = posixpath.dirname(relative)
        neighbours = {
            name: info
            for name, info in listing.items()
            if name != relative
            and (not folder or name.startswith(folder + "/"))
            and name.lower().endswith(REFERENCE_SUFFIXES)
        }
        placeholders: set[pathlib.Path] = set()
        try:
            for name in neighbours:
                target = self.root / name
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.touch()
                    placeholders.add(target)
                    self._checksums.pop(name, None)  # the placeholder is not the file: never take it for a copy
            fetched: set[str] = set()
            while True:
                named = {
                    posixpath.normpath(posixpath.join(folder, file.relative))
                    for file in source_files(main)[1:]
                }
                new = sorted(name for name in named - fetched if name in neighbours)
                if not new:
                    break
                for name in new:
                    placeholders.discard(self.root / name)
                    self._download(name, neighbours[name])
                    fetched.add(name)
        finally:
            for target in placeholders:
                target.unlink(missing_ok=True)
            self._save_checksums()
        return main

    # -- internals ---------------------------------------------------------------------------------------

    def _files(self) -> dict[str, dict[str, Any]]:
        """Every file under the manifest's folder, by its path relative to it (listed once)."""
        if self._listing is None:
            found = self.fs.find(self.folder, detail=True)
            self._listing = {
                posixpath.relpath(path, self.folder): info for path, info in found.items() if info.get("type") == "file"
            }
        return self._listing

    def _download(self, relative: str, info: dict[str, Any]) -> pathlib.Path:
        target = self.root / relative
        checksum = str(info.get("ETag") or info.get("etag") or self.fs.checksum(f"{self.folder}/{relative}"))
        if target.is_file() and self._checksums.get(relative) == checksum:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=".download-", dir=target.parent)
        os.close(handle)
        try:
            self.fs.get_file(f"{self.folder}/{relative}", temp)
            os.replace(temp, target)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)
        self._checksums[relative] = checksum
        return target

    def _save_checksums(self) -> None:
        temp = self._checksums_path.with_suffix(".tmp")
        temp.write_text(json.dumps(self._checksums, indent=1, sort_keys=True))
        os.replace(temp, self._checksums_path)


def checked_relative(relative: str) -> str:
    """A path relative to the manifest's folder, normalised; refuses absolute paths, URLs and `..` leaving it."""
    if is_url(relative):
        raise ValueError("give a path relative to the manifest's folder, not a URL")
    text = relative.replace("\\", "/")
    if text.startswith("/"):
        raise ValueError("use a path relative to the manifest's folder")
    normal = posixpath.normpath(text)
    if normal == ".." or normal.startswith("../") or normal in ("", "."):
        raise ValueError("escapes the manifest's folder")
    return normal


__all__ = ["RemoteLibrary", "absolute_location", "checked_relative", "is_url", "local_location"]
