"""Reading a committed artifact: every item is found through the (validated) commit record."""

from __future__ import annotations

import datetime as dt
import json
import pathlib
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import safetensors.numpy
import zarr

from storage.commit import StoreError

if TYPE_CHECKING:
    from storage.store import ArtifactStore


class Artifact:
    """A committed, immutable stage output: a set of named items plus metadata and a content digest."""

    def __init__(self, store: ArtifactStore, record: dict[str, Any]) -> None:
        self._store = store
        self.record = record
        self.key: str = record["key"]
        self.stage: str = record["stage"]
        self.digest: str = record["digest"]
        self.metadata: dict[str, Any] = record["metadata"]
        self.created = dt.datetime.fromisoformat(record["created"])
        self.attempt: str = record["attempt"]

    def __repr__(self) -> str:
        return f"Artifact({self.key!r}, stage={self.stage!r}, items={self.items}, digest={self.digest[:12]}...)"

    @property
    def items(self) -> list[str]:
        return list(self.record["items"])

    def info(self, item: str, kind: str | None = None) -> dict[str, Any]:
        """The commit record's entry for `item` (kind, path and a summary such as shapes or row counts)."""
        info = self.record["items"].get(item)
        if info is None:
            raise StoreError(f"artifact {self.key!r} has no item {item!r} (it has {self.items})")
        if kind is not None and info["kind"] != kind:
            raise ValueError(f"item {item!r} of artifact {self.key!r} is a {info['kind']}, not a {kind}")
        return info

    def files(self, item: str) -> list[dict[str, Any]]:
        """Commit record rows (path, sha256, size) of the files that make up `item`."""
        path = self.info(item)["path"]
        return [f for f in self.record["files"] if f["path"] == path or f["path"].startswith(path + "/")]

    def _path(self, item: str, kind: str | None = None) -> str:
        return f"{self._store.attempt_path(self.key, self.attempt)}/{self.info(item, kind)['path']}"

    def uri(self, item: str) -> str:
        return self._store.fs.unstrip_protocol(self._path(item))

    def local_path(self, item: str) -> pathlib.Path:
        """The item on local disk: the real file for local roots, a verified one-time download otherwise."""
        if self._store.is_local:
            return pathlib.Path(self._path(item))
        return self._store.download(self, item)

    def zarr_group(self, item: str) -> zarr.Group:
        path = self._path(item, "zarr")
        zstore: zarr.storage.LocalStore | zarr.storage.FsspecStore
        if self._store.is_local:
            zstore = zarr.storage.LocalStore(path, read_only=True)
        else:
            zstore = zarr.storage.FsspecStore.from_url(
                self.uri(item), storage_options=self._store.storage_options, read_only=True
            )
        return zarr.open_group(store=zstore, mode="r")

    def array(self, item: str, name: str) -> np.ndarray:
        arrays = self.info(item, "zarr").get("arrays", {})
        if name not in arrays:
            raise StoreError(f"item {item!r} of artifact {self.key!r} has no array {name!r} (it has {list(arrays)})")
        array = self.zarr_group(item)[name]
        if not isinstance(array, zarr.Array):
            raise StoreError(f"{name!r} in item {item!r} of artifact {self.key!r} is a group, not an array")
        return np.asarray(array[...])

    def table(self, item: str) -> pa.Table:
        return pq.read_table(self._path(item, "table"), filesystem=self._store.fs)

    def tensors(self, item: str) -> dict[str, np.ndarray]:
        return safetensors.numpy.load(self._store.fs.cat_file(self._path(item, "tensors")))

    def tensors_metadata(self, item: str) -> dict[str, str]:
        """The string metadata saved next to the tensors (safetensors' `__metadata__`)."""
        return dict(self.info(item, "tensors").get("metadata", {}))

    def json(self, item: str) -> Any:
        return json.loads(self._store.fs.cat_file(self._path(item, "json")))
