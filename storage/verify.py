"""fsck for the store: broken artifacts, orphaned writes, stale locks and leftover temporary files."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import pathlib
import posixpath
import shutil
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import filelock
import fsspec

from dreamedit3d_core.environment import setting
from storage.commit import FOLDER, StoreError
from storage.keys import NAME_PATTERN

if TYPE_CHECKING:
    from storage.store import ArtifactStore

_DRY_RUN = "reported only (verify(repair=True) fixes it)"


@dataclasses.dataclass
class VerifyReport:
    """What verify found: `problems` are (key or path, problem, action) rows."""

    root_uri: str
    repair: bool
    checked: int = 0
    problems: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        state = "clean" if self.clean else f"{len(self.problems)} problem(s)"
        lines = [f"verify {self.root_uri}: {self.checked} artifact(s) checked, {state}"]
        lines += [f"  {where}: {problem} -> {action}" for where, problem, action in self.problems]
        return "\n".join(lines)

    def found(self, where: str, problem: str, fix: Callable[[], object], action: str) -> None:
        if self.repair:
            fix()
        self.problems.append((where, problem, action if self.repair else _DRY_RUN))


def lock_is_held(path: pathlib.Path, *, remove_if_free: bool = False) -> bool:
    """Whether a live process holds the flock on `path`; a free lock file may be removed while we hold it."""
    if not path.exists():  # acquiring would create it
        return False
    lock = filelock.FileLock(path, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        return True
    try:
        if remove_if_free:
            path.unlink(missing_ok=True)
    finally:
        lock.release()
    return False


def _ls(fs: fsspec.AbstractFileSystem, path: str) -> list[dict[str, Any]]:
    try:
        return sorted(fs.ls(path, detail=True), key=lambda e: e["name"])
    except FileNotFoundError:
        return []


def _broken_files(store: ArtifactStore, record: dict[str, Any]) -> list[str]:
    base = store.attempt_path(record["key"], record["attempt"])
    broken = []
    for entry in record["files"]:
        path = f"{base}/{entry['path']}"
        try:
            size = store.fs.size(path)
            with store.fs.open(path, "rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
        except FileNotFoundError:
            broken.append(f"file {entry['path']} is missing")
            continue
        if size != entry["size"] or digest != entry["sha256"]:
            broken.append(f"file {entry['path']} does not match its digest in the commit record")
    return broken


def _check_commits(store: ArtifactStore, report: VerifyReport) -> set[tuple[str, str]]:
    referenced: set[tuple[str, str]] = set()
    for entry in _ls(store.fs, store.path(FOLDER)):
        path, name = entry["name"], posixpath.basename(entry["name"])
        if name.startswith(".") and name.endswith(".tmp"):
            fix = functools.partial(store.fs.rm_file, path)
            report.found(path, "temporary commit record of an interrupted commit", fix, "removed")
            continue
        if not name.endswith(".json"):
            continue
        key = name[: -len(".json")]
        report.checked += 1
        try:
            record = store.read_commit(key)
        except (StoreError, ValueError) as error:
            fix = functools.partial(store.fs.rm_file, path)
            report.found(key, str(error), fix, "commit record removed; the artifact will be recomputed")
            continue
        referenced.add((key, record["attempt"]))
        broken = _broken_files(store, record)
        if broken:
            problem = "; ".join(broken[:3]) + (f"; and {len(broken) - 3} more" if len(broken) > 3 else "")
            report.found(key, problem, functools.partial(store.delete, key), "removed; it will be recomputed")
    return referenced


def _committed_attempt(store: ArtifactStore, key: str) -> str | None:
    try:
        return store.read_commit(key)["attempt"]
    except (StoreError, ValueError):
        return None


def orphan_attempts(store: ArtifactStore, referenced: set[tuple[str, str]]) -> Iterator[tuple[str, str, str]]:
    """(key, attempt, why) of each attempt folder that no commit record references (`referenced`: the committed
    (key, attempt) pairs) and no live writer holds."""
    for key_entry in _ls(store.fs, store.path("objects")):
        key = posixpath.basename(key_entry["name"])
        if not NAME_PATTERN.fullmatch(key):
            continue
        for entry in _ls(store.fs, key_entry["name"]):
            name = posixpath.basename(entry["name"])
            if entry["type"] != "directory" or (key, name) in referenced:
                continue
            # Order matters: a writer releases its lock only after its commit record is in place.
            if lock_is_held(store.staging_root / key / f"{name}.lock") or _committed_attempt(store, key) == name:
                continue
            if store.shared_remote and _written_within_lease(store, entry["name"]):
                continue  # another machine may be uploading it right now
            if store.is_committed(key):
                yield key, name, "files of an older write, replaced by a newer commit"
            else:
                yield key, name, "files of an interrupted or failed write (never committed)"


def write_lease_s() -> float:
    """How long an uncommitted attempt on a remote root counts as another machine's write in progress, after
    its newest file was written (`DREAMEDIT3D_WRITE_LEASE_S`, 1 hour by default)."""
    return setting("DREAMEDIT3D_WRITE_LEASE_S")


def _written_within_lease(store: ArtifactStore, path: str) -> bool:
    """Whether any file of the attempt folder `path` was written less than the lease ago, by the object store's
    own clock (its modification times), so that every host decides the same way."""
    newest = None
    for info in store.fs.find(path, detail=True).values():
        modified = info.get("LastModified") or info.get("last_modified") or info.get("mtime") or info.get("created")
        if isinstance(modified, (int, float)):
            modified = dt.datetime.fromtimestamp(modified, dt.UTC)
        if isinstance(modified, dt.datetime):
            modified = modified if modified.tzinfo else modified.replace(tzinfo=dt.UTC)
            newest = modified if newest is None else max(newest, modified)
    if newest is None:
        return True  # no time to go by: never take it for dead
    now = store.leases.now() if store.leases is not None else dt.datetime.now(dt.UTC)
    return (now - newest).total_seconds() < write_lease_s()


def _check_attempts(store: ArtifactStore, report: VerifyReport, referenced: set[tuple[str, str]]) -> None:
    for key, name, why in orphan_attempts(store, referenced):
        report.found(f"objects/{key}/{name}", why, functools.partial(store.remove_attempt, key, name), "removed")


def _check_staging(store: ArtifactStore, report: VerifyReport) -> None:
    """Liveness lock files of writers (and, for remote roots, their local staging folders) left by crashes."""
    if not store.staging_root.is_dir():
        return
    for key_dir in sorted(p for p in store.staging_root.iterdir() if p.is_dir()):
        for lock_path in sorted(key_dir.glob("*.lock")):
            if not lock_is_held(lock_path):
                fix: Callable[[], object] = functools.partial(lock_is_held, lock_path, remove_if_free=True)
                report.found(str(lock_path), "lock file of a crashed writer", fix, "removed")
        if store.is_local:
            continue
        for attempt in sorted(p for p in key_dir.iterdir() if p.is_dir()):
            if not lock_is_held(key_dir / f"{attempt.name}.lock"):
                fix = functools.partial(shutil.rmtree, attempt, ignore_errors=True)
                report.found(str(attempt), "local staging files of an interrupted write", fix, "removed")


def _check_leftovers(store: ArtifactStore, report: VerifyReport) -> None:
    fix: Callable[[], object]
    if store.is_local:
        for lock_path in sorted(pathlib.Path(store.root, "locks").glob("*.lock")):
            if not lock_is_held(lock_path):
                fix = functools.partial(lock_is_held, lock_path, remove_if_free=True)
                report.found(str(lock_path), "stale lock left by a crashed process", fix, "removed")
    leases = store.leases
    if leases is not None:
        for key, lease in leases.list():
            if lease.lapsed:
                fix = functools.partial(leases.remove, key, lease.etag)
                holder = f"{lease.holder.get('host', '?')} (pid {lease.holder.get('pid', '?')})"
                problem = f"lock of {holder}, silent for {lease.age_s:.0f} s (lease {lease.lease_s:.0f} s)"
                report.found(leases.path(key), problem, fix, "removed")
    for entry in _ls(store.fs, store.path("ledger")):
        if posixpath.basename(entry["name"]).startswith("."):
            fix = functools.partial(store.fs.rm_file, entry["name"])
            report.found(entry["name"], "temporary ledger file of an interrupted append", fix, "removed")
    if store.scratch_root.is_dir():
        for folder in sorted(store.scratch_root.iterdir()):
            if not (folder.is_dir() and NAME_PATTERN.fullmatch(folder.name) and store.is_committed(folder.name)):
                continue
            fix = functools.partial(shutil.rmtree, folder, ignore_errors=True)
            report.found(str(folder), "scratch folder of an artifact that is committed", fix, "removed")


def verify_store(store: ArtifactStore, repair: bool) -> VerifyReport:
    report = VerifyReport(root_uri=store.root_uri, repair=repair)
    referenced = _check_commits(store, report)
    _check_attempts(store, report, referenced)
    _check_staging(store, report)
    _check_leftovers(store, report)
    return report
