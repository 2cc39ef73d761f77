"""ArtifactStore: content-addressed stage outputs under one fsspec root (layout in storage/__init__.py)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import posixpath
import shutil
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from dreamedit3d_core.environment import setting
from storage import scratch
from storage.artifact import Artifact
from storage.commit import FOLDER, LEGACY_FOLDER, StoreError, parse_commit
from storage.keys import check_name, file_digest
from storage.layout import upgrade_layout
from storage.lease_record import LeaseInfo
from storage.leases import S3Leases, supports_leases
from storage.ledger import Ledger
from storage.locking import key_lock
from storage.verify import VerifyReport, verify_store
from storage.writer import ArtifactWriter


def default_cache_dir() -> pathlib.Path:
    """This machine's cache for remote data: $DREAMEDIT3D_CACHE, or ~/.cache/dreamedit3d."""
    return pathlib.Path(setting("DREAMEDIT3D_CACHE")).expanduser()


_LAYOUT_CURRENT: set[str] = set()  # roots whose layout this process has checked (ArtifactStore.upgrade_layout)


class ArtifactStore:
    """Catalog of stage artifacts rooted at a local folder or an fsspec URL (file://, memory://, s3://, ...).

    `cache_dir` (default $DREAMEDIT3D_CACHE or ~/.cache/dreamedit3d) holds, for remote roots only, the local
    staging folders of writes in progress, downloads made by `Artifact.local_path` and scratch folders.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        storage_options: dict[str, Any] | None = None,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.storage_options = dict(storage_options or {})
        root = os.fspath(root)
        if "://" not in root:
            root = str(pathlib.Path(root).expanduser().resolve())
        self.fs, path = fsspec.core.url_to_fs(root, **self.storage_options)
        self.is_local = isinstance(self.fs, LocalFileSystem)
        self.root = path.rstrip("/")
        if not self.root:
            raise ValueError(f"store root {root!r} is the top of its filesystem: give a folder")
        self.root_uri = self.fs.unstrip_protocol(self.root)
        cache = pathlib.Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.cache_dir = cache.resolve() / hashlib.sha256(self.root_uri.encode()).hexdigest()[:16]
        # Writes are prepared on local disk: in place for local roots, in the cache (then uploaded) otherwise.
        self.staging_root = pathlib.Path(self.root, "objects") if self.is_local else self.cache_dir / "staging"
        self.scratch_root = pathlib.Path(self.root, "scratch") if self.is_local else self.cache_dir / "scratch"
        if self.is_local:
            self.fs.makedirs(self.root, exist_ok=True)
        if self.root_uri not in _LAYOUT_CURRENT:  # once per store and process, not in every constructor
            self.upgrade_layout()

    def __repr__(self) -> str:
        return f"ArtifactStore({self.root_uri!r})"

    @property
    def shared_remote(self) -> bool:
        """An object store other machines may be writing to (not a local folder, not this process's memory://)."""
        return not self.is_local and not isinstance(self.fs, MemoryFileSystem)

    # -- paths -------------------------------------------------------------------------------------------

    def path(self, *parts: str) -> str:
        """Filesystem path (for `self.fs`) of a place under the root."""
        return "/".join((self.root, *parts))

    def commit_path(self, key: str) -> str:
        """Where the commit record of `key` is (or will be): its presence makes `key` committed."""
        return self.path(FOLDER, f"{check_name(key, 'artifact key')}.json")

    def attempt_path(self, key: str, attempt: str) -> str:
        return self.path("objects", key, attempt)

    # -- reading -----------------------------------------------------------------------------------------

    def is_committed(self, key: str) -> bool:
        path = self.commit_path(key)
        if not self.is_local:
            self.fs.invalidate_cache(path)  # another machine may have committed since this process last listed
        return self.fs.exists(path)

    def read_commit(self, key: str) -> dict[str, Any]:
        try:
            raw = self.fs.cat_file(self.commit_path(key))
        except FileNotFoundError:
            raise StoreError(f"artifact {key!r} is not in the store {self.root_uri}") from None
        return parse_commit(raw, key)

    def get(self, key: str) -> Artifact:
        return Artifact(self, self.read_commit(key))

    def list(self, stage: str | None = None) -> list[Artifact]:
        """Committed artifacts (of one stage, if given), sorted by key."""
        try:
            names = self.fs.ls(self.path(FOLDER), detail=False)
        except FileNotFoundError:
            return []
        paths = [p for p in names if p.endswith(".json") and not posixpath.basename(p).startswith(".")]
        raw = self.fs.cat(paths, on_error="omit") if paths else {}  # omit: deleted since ls
        found = []
        for path, data in raw.items():
            artifact = Artifact(self, parse_commit(data, posixpath.basename(path).removesuffix(".json")))
            if stage is None or artifact.stage == stage:
                found.append(artifact)
        return sorted(found, key=lambda a: a.key)

    def download(self, artifact: Artifact, item: str) -> pathlib.Path:
        """Copy `item` into the local cache once (checking every digest) and return its local path."""
        info = artifact.info(item)
        target = self.cache_dir / "objects" / artifact.key / artifact.attempt / info["path"]
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = pathlib.Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
        try:
            if info["kind"] in ("zarr", "directory"):
                (temp / info["path"]).mkdir()
            entries = artifact.files(item)
            for entry in entries:
                (temp / entry["path"]).parent.mkdir(parents=True, exist_ok=True)
            if entries:
                remote = self.attempt_path(artifact.key, artifact.attempt)
                self.fs.get([f"{remote}/{e['path']}" for e in entries], [str(temp / e["path"]) for e in entries])
            for entry in entries:
                if file_digest(temp / entry["path"]) != entry["sha256"]:
                    raise StoreError(f"file {entry['path']!r} of artifact {artifact.key!r} does not match its digest")
            with contextlib.suppress(OSError):  # another process may have finished the same download first
                os.replace(temp / info["path"], target)
        finally:
            shutil.rmtree(temp, ignore_errors=True)
        return target

    # -- writing -----------------------------------------------------------------------------------------

    def write(self, key: str, *, stage: str, metadata: Mapping[str, Any] | None = None) -> ArtifactWriter:
        """Context manager filling a new artifact; the commit record is written last, on clean exit only.

        Writing a key that is already committed replaces it atomically (the last commit wins); the older
        files are left for `verify(repair=True)` so that readers holding the old artifact are not broken.
        """
        return ArtifactWriter(self, key, stage, metadata)

    def publish(self, staging: pathlib.Path, record: dict[str, Any]) -> None:
        """Make a finished attempt visible: files first, then the commit record in one atomic step."""
        key, attempt = record["key"], record["attempt"]
        data = json.dumps(record, indent=1).encode()
        if self.is_local:
            folder = pathlib.Path(self.root, FOLDER)
            folder.mkdir(exist_ok=True)
            temp = folder / f".{key}.{attempt}.tmp"
            with open(temp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, folder / f"{key}.json")
            fd = os.open(folder, os.O_RDONLY)  # make the rename itself durable
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            return
        remote = self.attempt_path(key, attempt)
        for parent in sorted({posixpath.dirname(f"{remote}/{f['path']}") for f in record["files"]}):
            self.fs.makedirs(parent, exist_ok=True)
        paths = [entry["path"] for entry in record["files"]]
        if paths:  # lists: async filesystems (s3, gcs) upload them concurrently
            self.fs.put([str(staging / p) for p in paths], [f"{remote}/{p}" for p in paths])
        if self.leases is not None:  # a holder whose lease lapsed must not commit: another may own the key now
            self.leases.check(key)
        self.fs.pipe_file(self.commit_path(key), data)  # one PUT: atomic on object stores
        shutil.rmtree(staging, ignore_errors=True)

    def remove_dead_attempts(self, key: str) -> list[str]:
        """Remove the files of earlier writes of `key` that died before committing (e.g. a SIGKILLed run).

        A write is dead when its liveness lock is free (local roots), or on S3 roots, whose key lease the caller
        holds, always. Called under the key's lock before a new write, so
        that re-running a killed stage leaves the store as clean as if it had never been interrupted.
        """
        from storage.verify import lock_is_held

        # Local roots: a write is alive while its flock is held. S3 roots: the caller holds the key's lease, so
        # no other live writer can be uploading an attempt of this key. Elsewhere nothing can tell.
        if not (self.is_local or self.leases is not None):
            return []
        if self.leases is not None:  # only the lease's live holder may delete other attempts' files
            self.leases.check(key)
        removed = []
        self.fs.invalidate_cache(self.path("objects", key))
        if self.fs.exists(self.path("objects", key)):
            committed = self.read_commit(key)["attempt"] if self.is_committed(key) else None
            for entry in self.fs.ls(self.path("objects", key), detail=True):
                name = posixpath.basename(entry["name"])
                if entry["type"] != "directory" or name == committed:
                    continue
                lock_path = self.staging_root / key / f"{name}.lock"
                if not self.is_local or not lock_is_held(lock_path, remove_if_free=True):
                    self.remove_attempt(key, name)
                    removed.append(name)
        # What is left on this machine of dead writes: a writer killed between taking its liveness lock and
        # making its folder leaves the lock file alone; on remote roots, a local staging folder beside it.
        for lock_path in sorted((self.staging_root / key).glob("*.lock")):
            if not lock_is_held(lock_path, remove_if_free=True) and not self.is_local:
                shutil.rmtree(lock_path.with_suffix(""), ignore_errors=True)
        if self.is_local:  # one killed while publishing leaves its temporary commit record (see `publish`)
            for temp in pathlib.Path(self.root, FOLDER).glob(f".{key}.*.tmp"):
                attempt = temp.name[len(key) + 2 : -len(".tmp")]
                if not lock_is_held(self.staging_root / key / f"{attempt}.lock"):
                    temp.unlink(missing_ok=True)
        return removed

    def remove_attempt(self, key: str, attempt: str) -> None:
        """Best-effort removal of one attempt's files (and of the key's folder once it is empty)."""
        with contextlib.suppress(OSError):
            path = self.attempt_path(key, attempt)
            if self.fs.exists(path):
                self.fs.rm(path, recursive=True)
        if self.is_local:
            with contextlib.suppress(OSError):
                os.rmdir(self.path("objects", key))

    def lock(
        self, key: str, timeout: float | None = None, owner: Mapping[str, Any] | None = None
    ) -> contextlib.AbstractContextManager[None]:
        """Exclusive right to compute `key`.

        Local roots: a file lock (flock) under locks/, across processes; the kernel frees it if its holder dies.
        memory://: a lock in this process. s3://: a lease object under locks/, taken with conditional writes and
        kept by a heartbeat, across machines; a holder that stops beating loses it after the lease
        (`storage.leases`). `owner` (e.g. the Prefect flow run) is recorded in the lease for others to read.
        Other protocols: no lock; two processes may both compute and the last (identical) commit wins, which
        is safe because attempts never share files. The locks themselves are in storage/locking.py.
        """
        return key_lock(self, key, timeout, owner)

    @property
    def leases(self) -> S3Leases | None:
        """The cross-machine locks of an S3 root (None for other roots)."""
        return S3Leases(self.fs, self.path("locks")) if supports_leases(self.fs) else None

    def lock_info(self, key: str) -> LeaseInfo | None:
        """Who holds the cross-machine lock of `key` and whether it lapsed (S3 roots; None elsewhere or if free)."""
        leases = self.leases
        return None if leases is None else leases.info(check_name(key, "artifact key"))

    def compute(
        self,
        key: str,
        *,
        stage: str,
        metadata: Mapping[str, Any] | None = None,
        fn: Callable[[ArtifactWriter], None],
        lock_timeout: float | None = None,
        owner: Mapping[str, Any] | None = None,
    ) -> tuple[Artifact, str]:
        """The artifact of `key` and "cached", or, after running `fn(writer)` under the key's lock, "computed"."""
        if self.is_committed(key):
            return self.get(key), "cached"
        with self.lock(key, lock_timeout, owner):
            if self.is_committed(key):  # another process finished while we waited
                return self.get(key), "cached"
            self.remove_dead_attempts(key)
            with self.write(key, stage=stage, metadata=metadata) as writer:
                fn(writer)
            assert writer.artifact is not None
            return writer.artifact, "computed"

    def delete(self, key: str) -> None:
        """Remove a committed artifact: the commit record first (it disappears at once), then its files."""
        path = self.commit_path(key)
        if not self.fs.exists(path):
            raise StoreError(f"artifact {key!r} is not in the store {self.root_uri}")
        try:
            attempt: str | None = self.read_commit(key)["attempt"]
        except StoreError:
            attempt = None  # an unreadable commit record names no files we may trust; verify removes the orphans
        self.fs.rm_file(path)
        if attempt is not None:
            self.remove_attempt(key, attempt)

    # -- upkeep ------------------------------------------------------------------------------------------

    def verify(self, repair: bool = False) -> VerifyReport:
        """Check every artifact, orphaned write, stale lock and leftover temp file; with repair, remove them."""
        return verify_store(self, repair)

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.fs, self.path("ledger"), local=self.is_local)

    # -- in-stage checkpoints (storage/scratch.py) ------------------------------------------------------

    def scratch_dir(self, key: str) -> pathlib.Path:
        """A local folder for in-stage checkpoints of `key`, kept across crashes until clear_scratch(key).

        On a shared object store the checkpoints also live in the store (`scratch/<key>/`, see `push_scratch`),
        so that a stage killed on one machine resumes on another: an empty local folder is filled from there."""
        return scratch.folder(self, key)

    def clear_scratch(self, key: str) -> None:
        scratch.clear(self, key)

    def push_scratch(self, key: str) -> list[str]:
        """Upload the complete local scratch entries of `key` the store does not have yet; drop the store's
        entries that are gone locally (older checkpoints). Returns the names uploaded."""
        return scratch.push(self, key)

    def pull_scratch(self, key: str, folder: pathlib.Path) -> list[str]:
        """Download the store's complete scratch entries of `key` into `folder`; returns their names (an entry
        dropped while it is being copied is skipped, see storage/scratch.py)."""
        return scratch.pull(self, key, folder)

    # -- stores of older versions ------------------------------------------------------------------------

    def upgrade_layout(self) -> None:
        """Bring a store written by an older version to today's layout (storage/layout.py); a store in today's
        layout is left as it is. The first `ArtifactStore` of a root in a process runs it; later ones trust it."""
        upgrade_layout(self.fs, self.root_uri, self.path(LEGACY_FOLDER), self.path(FOLDER), self.is_local)
        _LAYOUT_CURRENT.add(self.root_uri)
