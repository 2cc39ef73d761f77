"""The commit record: the one small file whose presence makes an artifact visible, and its validation.

A commit record is JSON at commits/<key>.json: format, key, stage, attempt (the folder under objects/<key>/
holding the files), created, metadata, items ({name: {kind, path, ...summary}}), files ([{path, sha256, size}])
and digest. Everything read from a commit record is validated before it is used as a path, so a tampered record
raises StoreError instead of reading outside the store.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from storage.keys import HEX_DIGEST, NAME_PATTERN

FORMAT = "dreamedit3d-artifact/1"  # stored in every commit record: a new value would make every existing record invalid
FOLDER = "commits"  # commits/<key>.json under the store root
LEGACY_FOLDER = "manifests"  # the same folder in stores written before commit records had their own name
KINDS = ("zarr", "table", "tensors", "json", "file", "directory")
TREE_KINDS = ("zarr", "directory")  # items that are folders of files


class StoreError(Exception):
    """The store cannot give what was asked: a missing, incomplete or tampered artifact."""


def content_digest(files: Sequence[dict[str, Any]]) -> str:
    """sha256 over the sorted (path, sha256, size) rows: equal for equal content, whatever the key or attempt."""
    rows = sorted([f["path"], f["sha256"], f["size"]] for f in files)
    return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()


def is_safe_relative(path: str) -> bool:
    """A relative posix path that stays below its folder: no '..', no absolute path, no empty parts."""
    if not path or "\\" in path or "\x00" in path:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


def parse_commit(raw: bytes, key: str) -> dict[str, Any]:
    """Parse and validate a commit record read for `key`; raise StoreError naming the key if anything is off."""

    def invalid(why: str) -> StoreError:
        return StoreError(f"commit record of artifact {key!r} is invalid: {why}")

    try:
        record = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise invalid(f"not JSON ({error})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise invalid(f"format is not {FORMAT!r}")
    if record.get("key") != key:
        raise invalid(f"it names another key, {record.get('key')!r}")
    for field in ("stage", "attempt"):
        if not isinstance(record.get(field), str) or not NAME_PATTERN.fullmatch(record[field]):
            raise invalid(f"{field} {record.get(field)!r} is not a valid name")
    if not isinstance(record.get("metadata"), dict):
        raise invalid("metadata is not an object")
    try:
        dt.datetime.fromisoformat(str(record.get("created")))
    except ValueError:
        raise invalid(f"created {record.get('created')!r} is not an ISO date") from None

    items = record.get("items")
    if not isinstance(items, dict):
        raise invalid("items is not an object")
    kind_of_path: dict[str, str] = {}
    for name, info in items.items():
        if not NAME_PATTERN.fullmatch(name) or not isinstance(info, dict) or info.get("kind") not in KINDS:
            raise invalid(f"item {name!r} has no valid name or kind")
        path = info.get("path")
        if not isinstance(path, str) or not NAME_PATTERN.fullmatch(path) or path in kind_of_path:
            raise invalid(f"item {name!r} has path {path!r}: must be one unique file or folder name")
        kind_of_path[path] = info["kind"]

    files = record.get("files")
    if not isinstance(files, list):
        raise invalid("files is not a list")
    seen: set[str] = set()
    for entry in files:
        path = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(path, str) or not is_safe_relative(path) or path in seen:
            raise invalid(f"file path {path!r} is unsafe or repeated")
        seen.add(path)
        top, _, rest = path.partition("/")
        kind = kind_of_path.get(top)
        if kind is None or (kind in TREE_KINDS) != bool(rest):
            raise invalid(f"file {path!r} belongs to no item")
        if not isinstance(entry.get("sha256"), str) or not HEX_DIGEST.fullmatch(entry["sha256"]):
            raise invalid(f"file {path!r} has no sha256 digest")
        size = entry.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise invalid(f"file {path!r} has size {size!r}")
    if record.get("digest") != content_digest(files):
        raise invalid("digest does not match its file list")
    return record
