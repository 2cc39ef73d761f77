"""In-stage checkpoints of the store ("scratch"): a local folder per artifact key, kept across crashes until the
key is committed, and on a shared object store mirrored to `scratch/<key>/` in the store, so that a stage killed
on one machine resumes on another (`ArtifactStore.scratch_dir`, `push_scratch`, `pull_scratch`, `clear_scratch`).

Scratch entries are the top-level subfolders of a scratch folder whose names do not start with "." (a
checkpoint is written under a dot-name and renamed when complete). In the store, `<entry>.done` is written after
an entry's files, so a half-uploaded entry is never taken.
"""

from __future__ import annotations

import contextlib
import pathlib
import posixpath
import shutil
from typing import TYPE_CHECKING

from storage.keys import check_name

if TYPE_CHECKING:
    from storage.store import ArtifactStore


def folder(store: ArtifactStore, key: str) -> pathlib.Path:
    """The local scratch folder of `key`, made if missing; on a shared object store an empty one is filled from
    the store's entries (`store.pull_scratch`)."""
    local = store.scratch_root / check_name(key, "artifact key")
    local.mkdir(parents=True, exist_ok=True)
    if store.shared_remote and not any(entry for entry in local.iterdir() if not entry.name.startswith(".")):
        store.pull_scratch(key, local)
    return local


def clear(store: ArtifactStore, key: str) -> None:
    """Remove the scratch of `key`: the local folder and, on a shared object store, the store's copy."""
    shutil.rmtree(store.scratch_root / check_name(key, "artifact key"), ignore_errors=True)
    if store.shared_remote:
        with contextlib.suppress(FileNotFoundError):
            store.fs.rm(store.path("scratch", key), recursive=True)


def push(store: ArtifactStore, key: str) -> list[str]:
    """Upload the complete local scratch entries of `key` the store does not have yet; drop the store's
    entries that are gone locally (older checkpoints). Returns the names uploaded."""
    local_folder, remote = store.scratch_root / check_name(key, "artifact key"), store.path("scratch", key)
    local = (
        sorted(p.name for p in local_folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if local_folder.is_dir()
        else []
    )
    stored = _stored_entries(store, key)
    uploaded = []
    for name in (name for name in local if name not in stored):
        for path in sorted(p for p in (local_folder / name).rglob("*") if p.is_file()):
            store.fs.put_file(str(path), f"{remote}/{name}/{path.relative_to(local_folder / name).as_posix()}")
        store.fs.pipe_file(f"{remote}/{name}.done", b"")
        uploaded.append(name)
    for name in (name for name in stored if name not in local):
        with contextlib.suppress(FileNotFoundError):
            store.fs.rm(f"{remote}/{name}.done")
            store.fs.rm(f"{remote}/{name}", recursive=True)
    return uploaded


def pull(store: ArtifactStore, key: str, local_folder: pathlib.Path) -> list[str]:
    """Download the store's complete scratch entries of `key` into `local_folder`; returns their names.

    The machine that wrote them may still be running (it lost its lease, not its process) and drop an older
    entry once it uploaded a newer one: an entry that vanishes while it is being copied is skipped (the
    newer one is taken instead), never an error that fails the resumed stage."""
    remote = store.path("scratch", key)
    store.fs.invalidate_cache(remote)  # a listing cached earlier in this process may name dropped entries
    pulled = []
    for name in sorted(_stored_entries(store, key)):
        staging = local_folder / f".pull-{name}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            store.fs.get(f"{remote}/{name}/", str(staging), recursive=True)
            if not store.fs.exists(f"{remote}/{name}.done"):  # dropped while we copied: possibly partial
                raise FileNotFoundError(f"{remote}/{name}")
        except FileNotFoundError:
            shutil.rmtree(staging, ignore_errors=True)
            continue
        staging.replace(local_folder / name)
        pulled.append(name)
    return pulled


def _stored_entries(store: ArtifactStore, key: str) -> set[str]:
    """The complete entries of `key` in the store (those with their `.done` marker)."""
    remote = store.path("scratch", key)
    try:
        names = [posixpath.basename(entry) for entry in store.fs.ls(remote, detail=False)]
    except FileNotFoundError:
        return set()
    return {name.removesuffix(".done") for name in names if name.endswith(".done")}
