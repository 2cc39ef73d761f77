"""Stores written by older versions, brought to today's layout: their commit records moved from manifests/ (the
folder's name before commit records had their own) to commits/.

Local roots: one atomic rename of the folder. Other roots: `fs.mv` of the folder, a copy and then a delete that can
be interrupted. Where both folders hold records (such an interrupted move, or a process of an older version that
committed after the move) the remaining records are moved one at a time; a key that commits/ already holds keeps
that record and the old copy is dropped (verify removes files only it named).
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
from typing import Any

from storage.commit import FOLDER, LEGACY_FOLDER, StoreError


def upgrade_layout(fs: Any, root_uri: str, old: str, new: str, is_local: bool) -> None:
    """Move the commit records from `old` (manifests/) to `new` (commits/) where `old` exists."""
    try:
        if is_local:
            _move_records_locally(old, new)
        elif fs.exists(old):
            _move_records_remotely(fs, old, new)
    except OSError as error:
        raise StoreError(
            f"store {root_uri} keeps its commit records in {LEGACY_FOLDER}/, the layout of older versions, "
            f"and they could not be moved to {FOLDER}/: {error}"
        ) from error


def _move_records_remotely(fs: Any, old: str, new: str) -> None:
    if not fs.exists(new):
        with contextlib.suppress(FileNotFoundError):  # another process is moving the same folder
            fs.mv(old, new, recursive=True)
        if not fs.exists(old):
            return
    try:
        entries = fs.ls(old, detail=True)
    except FileNotFoundError:
        return
    for entry in entries:
        if entry["type"] != "file":
            continue
        target = f"{new}/{posixpath.basename(entry['name'])}"
        with contextlib.suppress(FileNotFoundError):
            if fs.exists(target):  # the same record copied before the interruption, or a newer one
                fs.rm_file(entry["name"])
            else:
                fs.mv(entry["name"], target)
    with contextlib.suppress(OSError):
        fs.rmdir(old)


def _move_records_locally(old: str, new: str) -> None:
    """manifests/ -> commits/ on a local root: atomic, and safe when several processes open the store at once."""
    if not os.path.isdir(old):
        return
    try:
        os.rename(old, new)  # also replaces an empty commits/
        return
    except FileNotFoundError:
        return  # another process moved it first
    except OSError as error:
        if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    try:
        names = sorted(os.listdir(old))
    except FileNotFoundError:
        return
    for name in names:
        source = os.path.join(old, name)
        with contextlib.suppress(FileNotFoundError):  # moved by another process meanwhile
            with contextlib.suppress(FileExistsError):  # unlike a rename, a link never replaces a newer record
                os.link(source, os.path.join(new, name))
            os.unlink(source)
    with contextlib.suppress(OSError):
        os.rmdir(old)
