"""Manifests and assets at a URL (s3://, gs://, az://, memory://): read where they are, edited from a local copy.

Blender and the readers open local files, so the assets of a manifest at a URL are copied into this machine's
cache (`$DREAMEDIT3D_CACHE/sources/<digest of the manifest's folder URL>/`), keeping their paths relative to
the manifest's folder. The same rules as for a local manifest hold: an asset is named by a path relative to
the manifest's folder and may not leave it, and the files an asset references must sit in its own folder
(the reader's rule, applied to the copy).

What a remote library may not do:
- use any protocol: only those of object stores and local folders (`REMOTE_PROTOCOLS`) are read; http(s) only
  where the operator allows it (`allow_http`, or DREAMEDIT3D_ALLOW_HTTP_SOURCES=1); chained URLs
  (`simplecache::s3://...`, `zip://...::s3://...`) never;
- name a file outside the copy: every name it lists is used as written, never normalised, and must be a plain
  relative path (`checked_relative`); an asset whose folder lists another name is refused, naming it;
- fill the disk: a file's size is read before it is downloaded and checked against `max_file_bytes` (the
  ingest limit), and a download that grows past it while streaming is stopped.

Only what an asset references is copied. Which files those are is the readers' decision (`source_files`), so
the copy is found by a fixed point, in a folder of this operation's own: the asset's candidate neighbours stand
in as empty placeholders, the reader names what it would open, those files are downloaded, and so on until
nothing new is named (an OBJ names its MTL, the MTL its textures: three rounds). A file is downloaded again only
when the store's checksum of it (the ETag on S3) changed.

Several batches on one machine share the cache. Each operation downloads into its own staging folder
(`.staging/<pid>-<random>/`) and moves a complete file into the cache with one `os.replace`, under the cache's
lock (which also guards the checksums); placeholders live only in the staging folder, so nothing in the cache
is ever deleted, and a file another batch is about to ingest is at worst replaced by a complete newer version.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import posixpath
import re
import secrets
import shutil
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import filelock
import fsspec

from dreamedit3d_core.environment import setting
from dreamedit3d_core.ingest import source_files
from dreamedit3d_core.ingest.limits import IngestLimits
from storage import default_cache_dir

# Files an asset can reference, by suffix (material libraries, buffers, textures); only these stand in as
# placeholders while the references of an asset are found.
REFERENCE_SUFFIXES = (".mtl", ".bin", ".png", ".jpg", ".jpeg", ".webp", ".ktx2", ".tga", ".bmp", ".tif", ".tiff", ".gif", ".dds", ".exr", ".hdr")

# Protocols a remote library may use: object stores and local folders. http(s) reaches any host the machine can
# reach, so it is allowed only where the operator says so.
REMOTE_PROTOCOLS = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "file", "memory")
HTTP_PROTOCOLS = ("http", "https")
ALLOW_HTTP_ENV = "DREAMEDIT3D_ALLOW_HTTP_SOURCES"

CHUNK_BYTES = 8 << 20  # a download is copied (and counted) in pieces of this size

_DRIVE = re.compile(r"^[A-Za-z]:")  # C:\textures, C:wood.png


class RemoteSourceError(ValueError):
    """A remote library, or a file of it, that is not read: the message names the URL or the file and why."""


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


def checked_protocol(url: str, allow_http: bool = False) -> str:
    """The protocol of a remote library's URL, when a remote library may use it (RemoteSourceError otherwise):
    one of `REMOTE_PROTOCOLS`, or http(s) when `allow_http` or DREAMEDIT3D_ALLOW_HTTP_SOURCES=1 allows it.
    Chained URLs (`simplecache::s3://...`) are refused whatever their links."""
    allow_http = allow_http or setting(ALLOW_HTTP_ENV)
    allowed = REMOTE_PROTOCOLS + (HTTP_PROTOCOLS if allow_http else ())
    listed = ", ".join(allowed)
    if "::" in url:
        raise RemoteSourceError(f"{url}: chained URLs ('::') are not read for a remote library; use one of {listed}")
    protocol = (fsspec.core.split_protocol(url)[0] or "file").lower()
    if protocol not in allowed:
        hint = f" (http and https only with {ALLOW_HTTP_ENV}=1)" if not allow_http else ""
        raise RemoteSourceError(
            f"{url}: protocol {protocol!r} is not allowed for a remote library; use one of {listed}{hint}"
        )
    return protocol


class RemoteLibrary:
    """The folder of a manifest at a URL, and this machine's copy of what its assets need.

    `allow_http` lets the URL be http(s) (also allowed by DREAMEDIT3D_ALLOW_HTTP_SOURCES=1); `max_file_bytes`
    is the largest file copied (the ingest limit's default when None). Raises RemoteSourceError for a protocol
    that is not allowed."""

    def __init__(
        self,
        manifest_url: str,
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        allow_http: bool = False,
        max_file_bytes: int | None = None,
    ) -> None:
        checked_protocol(manifest_url, allow_http)
        self.fs, path = fsspec.core.url_to_fs(manifest_url)
        self.manifest_url = manifest_url
        self.manifest_path = path
        self.folder = posixpath.dirname(path)
        self.folder_url = self.fs.unstrip_protocol(self.folder)
        self.max_file_bytes = max_file_bytes if max_file_bytes is not None else IngestLimits().max_file_bytes
        digest = hashlib.sha256(self.folder_url.encode()).hexdigest()[:16]
        self.root = pathlib.Path(cache_dir or default_cache_dir()) / "sources" / digest
        self.root.mkdir(parents=True, exist_ok=True)
        self._checksums_path = self.root / ".checksums.json"
        # held while files are moved into the cache and while the checksums are read or written
        self._lock = filelock.FileLock(self.root / ".lock", thread_local=False)
        self._listing: dict[str, dict[str, Any]] | None = None
        self._refused: dict[str, str] = {}  # listed names that are not plain relative paths -> why

    def fetch_manifest(self) -> pathlib.Path:
        """The manifest itself, copied beside the assets (raises FileNotFoundError when it is not there,
        RemoteSourceError when it is larger than `max_file_bytes`)."""
        name = checked_relative(posixpath.basename(self.manifest_path))
        if not self.fs.isfile(self.manifest_path):
            raise FileNotFoundError(f"manifest not found: {self.manifest_url}")
        with self._staging() as staging:
            return self._fetch(name, self.fs.info(self.manifest_path), staging)

    def asset(self, relative: str) -> pathlib.Path:
        """The local copy of the asset at `relative` (a path under the manifest's folder) and of every file it
        references. Raises ValueError (RemoteSourceError) for a name that is not a plain relative path, for an
        asset whose folder lists such a name, or for a file larger than `max_file_bytes`; FileNotFoundError for
        a missing asset."""
        relative = checked_relative(relative)
        listing = self._files()
        if relative not in listing:
            raise FileNotFoundError(f"not found (looked for {self.folder_url}/{relative})")
        folder = posixpath.dirname(relative)
        for name, why in sorted(self._refused.items()):
            if not folder or name.startswith(folder + "/"):
                raise RemoteSourceError(
                    f"the asset's folder lists {name!r} (under {self.folder_url}), a name that is not copied: {why}"
                )
        neighbours = {
            name: info
            for name, info in listing.items()
            if name != relative
            and (not folder or name.startswith(folder + "/"))
            and name.lower().endswith(REFERENCE_SUFFIXES)
        }
        with self._staging() as staging:
            # The asset's folder as the reader sees it: the files fetched so far linked from the cache, the other
            # candidates empty placeholders. It lives (and dies) in the staging folder, never in the cache.
            work = staging / "work"
            main = self._fetch(relative, listing[relative], staging)
            _place(main, work / relative)
            for name in neighbours:
                (work / name).parent.mkdir(parents=True, exist_ok=True)
                (work / name).touch()
            fetched: set[str] = set()
            while True:
                named = {
                    posixpath.normpath(posixpath.join(folder, file.relative))
                    for file in source_files(work / relative)[1:]
                }
                new = sorted(name for name in named - fetched if name in neighbours)
                if not new:
                    break
                for name in new:
                    _place(self._fetch(name, neighbours[name], staging), work / name)
                    fetched.add(name)
        return main

    # -- internals ---------------------------------------------------------------------------------------

    def _files(self) -> dict[str, dict[str, Any]]:
        """Every file under the manifest's folder, by its name relative to it as listed (listed once). A name
        that is not a plain relative path (`checked_relative`) is left out and kept in `_refused`: it is never
        copied, and an asset whose folder holds one is refused."""
        if self._listing is None:
            prefix = self.folder.rstrip("/") + "/"
            listing: dict[str, dict[str, Any]] = {}
            for path, info in self.fs.find(self.folder, detail=True).items():
                if info.get("type") != "file":
                    continue
                name = path[len(prefix):] if path.startswith(prefix) else path
                try:
                    listing[checked_relative(name)] = info
                except ValueError as error:
                    self._refused[name] = str(error)
            self._listing = listing
        return self._listing

    def _remote(self, name: str) -> str:
        return posixpath.join(self.folder, name)

    def _fetch(self, name: str, info: dict[str, Any], staging: pathlib.Path) -> pathlib.Path:
        """The cache's copy of the remote file `name` (`info`: its listing entry). Its size is checked first;
        it is downloaded only when the cache holds no copy of this version (by the store's checksum), into
        `staging`, and moved into the cache complete."""
        remote = self._remote(name)
        size = info.get("size")
        if size is None:
            size = self.fs.info(remote).get("size")
        if size is not None and size > self.max_file_bytes:
            raise self._too_large(name, f"{size:,} bytes")
        checksum = str(info.get("ETag") or info.get("etag") or self.fs.checksum(remote))
        target = self.root / name
        with self._lock:
            if target.is_file() and self._read_checksums().get(name) == checksum:
                return target
        part = staging / f"{secrets.token_hex(8)}.part"
        try:
            self._download(remote, name, part)
            with self._lock:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(part, target)
                checksums = self._read_checksums()
                checksums[name] = checksum
                temp = staging / ".checksums.json"
                temp.write_text(json.dumps(checksums, indent=1, sort_keys=True))
                os.replace(temp, self._checksums_path)
        finally:
            part.unlink(missing_ok=True)
        return target

    def _download(self, remote: str, name: str, local: pathlib.Path) -> None:
        """Copy `remote` to `local` in pieces, stopping once more than `max_file_bytes` came (a listing's size is
        the store's word; the bytes counted here are what arrived)."""
        copied = 0
        with self.fs.open(remote, "rb") as source, local.open("wb") as target:
            while chunk := source.read(CHUNK_BYTES):
                copied += len(chunk)
                if copied > self.max_file_bytes:
                    raise self._too_large(name, f"more than {self.max_file_bytes:,} bytes arrived")
                target.write(chunk)

    def _too_large(self, name: str, size: str) -> RemoteSourceError:
        return RemoteSourceError(
            f"{self.folder_url}/{name}: {size}, more than the limit ingest.limits.max_file_bytes="
            f"{self.max_file_bytes:,}; not copied (raise the limit in the config if the file is meant to be this large)"
        )

    def _read_checksums(self) -> dict[str, str]:
        """The store's checksum of each file in the cache when it was copied (read under `_lock`)."""
        try:
            checksums = json.loads(self._checksums_path.read_text())
        except (OSError, ValueError):
            return {}
        return checksums if isinstance(checksums, dict) else {}

    @contextmanager
    def _staging(self) -> Iterator[pathlib.Path]:
        """A folder of this operation's own (`.staging/<pid>-<random>/` in the cache), removed when it ends.

        Its owner holds a lock file beside it (`.<name>.lock`) from before the folder exists until after it and
        the lock file are removed, so a staging folder whose lock nobody holds was left by a process that died:
        those are removed here first, and a live one never is (flock works across the processes and containers
        of one machine; names are never reused, so a lock file may be removed by whoever holds it)."""
        parent = self.root / ".staging"
        parent.mkdir(parents=True, exist_ok=True)
        for folder in parent.iterdir():
            if folder.is_dir():
                _remove_stale_staging(folder)
        folder = parent / f"{os.getpid()}-{secrets.token_hex(4)}"
        with filelock.FileLock(_staging_lock(folder), thread_local=False):
            folder.mkdir()
            try:
                yield folder
            finally:
                shutil.rmtree(folder, ignore_errors=True)
                _staging_lock(folder).unlink(missing_ok=True)  # still held: nobody else can be using it


def _staging_lock(folder: pathlib.Path) -> pathlib.Path:
    return folder.with_name(f".{folder.name}.lock")


def _remove_stale_staging(folder: pathlib.Path) -> None:
    """Remove another operation's staging folder and its lock file when no live process holds its lock."""
    try:
        with filelock.FileLock(_staging_lock(folder), timeout=0, thread_local=False):
            shutil.rmtree(folder, ignore_errors=True)
            _staging_lock(folder).unlink(missing_ok=True)
    except filelock.Timeout:
        pass  # a live operation's


def _place(cached: pathlib.Path, path: pathlib.Path) -> None:
    """Put the cache's file at `path` in a staging folder (a hard link; a copy where links are not possible)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    try:
        os.link(cached, path)
    except OSError:
        shutil.copyfile(cached, path)


def checked_relative(relative: str) -> str:
    """A file's name relative to the manifest's folder, when it is a plain relative posix path: returned as
    written, never normalised, so that no two spellings name one file. Refuses (RemoteSourceError, saying why)
    URLs, absolute paths, drive letters, backslashes, control characters, and empty, `.` or `..` segments."""
    if not relative:
        raise RemoteSourceError("an empty name")
    if is_url(relative):
        raise RemoteSourceError("give a path relative to the manifest's folder, not a URL")
    if any(unicodedata.category(character) == "Cc" for character in relative):
        raise RemoteSourceError("holds control characters")
    if "\\" in relative:
        raise RemoteSourceError("holds a backslash; separate folders with '/'")
    if relative.startswith("/") or _DRIVE.match(relative):
        raise RemoteSourceError("use a path relative to the manifest's folder")
    segments = relative.split("/")
    if ".." in segments:
        if posixpath.normpath(relative).split("/")[0] == "..":
            raise RemoteSourceError("escapes the manifest's folder")
        raise RemoteSourceError("holds a '..' segment; name the file without it")
    if "" in segments or "." in segments:
        raise RemoteSourceError("holds an empty or '.' segment ('a//b', 'a/./b', a trailing '/')")
    return relative


__all__ = [
    "RemoteLibrary",
    "RemoteSourceError",
    "absolute_location",
    "checked_protocol",
    "checked_relative",
    "is_url",
    "local_location",
]
