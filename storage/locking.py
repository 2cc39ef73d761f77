"""The compute lock of an artifact key (`ArtifactStore.lock`), by kind of root.

- Local roots: a file lock (flock) at `locks/<key>.lock`, across processes; the kernel frees it if its holder dies,
  and only the holder unlinks the file, so a leftover lock file means a crash (found by `verify`).
- memory://: a lock in this process, which is exact there, since a memory:// store lives in one process only.
- s3://: a lease object at `locks/<key>.lease`, across machines, kept by a heartbeat (storage/leases.py).
- Other protocols: no lock; two processes may both compute and the last (identical) commit wins, which is safe
  because attempts never share files.
"""

from __future__ import annotations

import contextlib
import pathlib
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import filelock
from fsspec.implementations.memory import MemoryFileSystem

from storage.keys import check_name

if TYPE_CHECKING:
    from storage.store import ArtifactStore

# memory:// lives in this process only, so a process-wide lock per (root, key) is exact there.
_MEMORY_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_MEMORY_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def key_lock(
    store: ArtifactStore, key: str, timeout: float | None = None, owner: Mapping[str, Any] | None = None
) -> Iterator[None]:
    """Exclusive right to compute `key` in `store` while the block runs (the kinds of lock above); raises
    TimeoutError after `timeout` seconds of waiting. `owner` is recorded in an s3:// lease for others to read."""
    check_name(key, "artifact key")
    wait = -1 if timeout is None else timeout
    if store.is_local:
        path = pathlib.Path(store.root, "locks", f"{key}.lock")
        path.parent.mkdir(exist_ok=True)
        file_lock = filelock.FileLock(path, timeout=wait, thread_local=False)
        try:
            file_lock.acquire()
        except filelock.Timeout:
            raise TimeoutError(f"artifact {key!r} stayed locked by another process for {timeout} s") from None
        try:
            yield
        finally:
            path.unlink(missing_ok=True)  # only the holder unlinks: a leftover lock file means a crash
            file_lock.release()
    elif isinstance(store.fs, MemoryFileSystem):
        with _MEMORY_LOCKS_GUARD:
            memory_lock = _MEMORY_LOCKS.setdefault((store.root_uri, key), threading.Lock())
        if not memory_lock.acquire(timeout=wait):
            raise TimeoutError(f"artifact {key!r} stayed locked for {timeout} s")
        try:
            yield
        finally:
            memory_lock.release()
    elif store.leases is not None:
        with store.leases.hold(key, timeout=timeout, owner=owner):
            yield
    else:
        yield
