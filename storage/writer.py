"""Writing an artifact: items go to a private attempt folder; the commit record, written last, commits them."""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import hashlib
import json
import os
import pathlib
import shutil
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import filelock
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import safetensors.numpy
import zarr
from zarr.codecs import BloscCodec

from storage.artifact import Artifact
from storage.commit import FORMAT, TREE_KINDS, content_digest
from storage.keys import check_name, to_json

if TYPE_CHECKING:
    from storage.store import ArtifactStore

_SINGLE_CHUNK_BYTES = 64 * 2**20


def default_chunks(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...] | Literal["auto"]:
    """One view (leading index) per chunk for image stacks; small 1-D/2-D arrays in one chunk; zarr decides above."""
    if len(shape) >= 3:
        return (1, *(max(1, s) for s in shape[1:]))
    if int(np.prod(shape)) * itemsize <= _SINGLE_CHUNK_BYTES:
        return tuple(max(1, s) for s in shape)
    return "auto"


def table_from_columns(columns: Mapping[str, Any], schema: pa.Schema | None = None) -> pa.Table:
    """A table whose schema is inferred once per column and then fixed, so every file states its types.

    A numpy column with extra axes, or a list of equally shaped arrays, becomes nested fixed-size lists
    ((N, 4, 4) -> fixed_size_list<fixed_size_list<double, 4>, 4>); nested Python lists become list<list<...>>.
    """
    arrays = []
    for name, values in columns.items():
        if isinstance(values, Sequence) and values and all(isinstance(v, np.ndarray) for v in values):
            values = np.stack(values)
        try:
            if isinstance(values, (pa.Array, pa.ChunkedArray)):
                array = values
            elif isinstance(values, np.ndarray) and values.ndim > 1:
                array = pa.array(values.reshape(-1))  # (N, *inner) -> (N * prod(inner),)
                for size in reversed(values.shape[1:]):
                    array = pa.FixedSizeListArray.from_arrays(array, size)
            else:
                array = pa.array(values)
            if schema is not None:
                array = array.cast(schema.field(name).type)
        except (pa.ArrowException, KeyError, TypeError, ValueError) as error:
            raise ValueError(f"column {name!r} cannot become an Arrow column: {error}") from error
        arrays.append(array)
    if schema is None:
        schema = pa.schema([pa.field(str(name), a.type) for name, a in zip(columns, arrays, strict=True)])
    return pa.Table.from_arrays(arrays, schema=schema)


class ArtifactWriter:
    """Context manager that fills one attempt folder and commits it on clean exit (see ArtifactStore.write)."""

    def __init__(self, store: ArtifactStore, key: str, stage: str, metadata: Mapping[str, Any] | None) -> None:
        self._store = store
        self.key = check_name(key, "artifact key")
        self.stage = check_name(stage, "stage name")
        self.metadata = to_json(dict(metadata or {}))
        self.attempt = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"
        self.path = store.staging_root / key / self.attempt  # local folder receiving the files
        self.artifact: Artifact | None = None
        self._items: dict[str, dict[str, Any]] = {}
        self._liveness: filelock.BaseFileLock | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------

    def __enter__(self) -> ArtifactWriter:
        # Held while this write runs: verify tells a live write from a crashed one by trying this lock.
        self._liveness = filelock.FileLock(self.path.parent / f"{self.attempt}.lock", thread_local=False)
        for retry in range(3):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._liveness.acquire()
                break
            except FileNotFoundError:  # a concurrent delete removed the key's empty folder in between
                if retry == 2:
                    raise
        self.path.mkdir()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self._abort()

    def commit(self) -> Artifact:
        """Hash the files, publish them and write the commit record last. Called by a clean `with` exit."""
        self._check_open()
        try:
            files = self._hash_files()
            record = {
                "format": FORMAT,
                "key": self.key,
                "stage": self.stage,
                "attempt": self.attempt,
                "created": dt.datetime.now(dt.UTC).isoformat(),
                "metadata": self.metadata,
                "items": self._items,
                "files": files,
                "digest": content_digest(files),
            }
            self._store.publish(self.path, record)
        except BaseException:
            self._abort()
            raise
        self._release()
        self.artifact = Artifact(self._store, record)
        return self.artifact

    def _abort(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self._release()
        if not self._store.is_local:
            self._store.remove_attempt(self.key, self.attempt)  # a partial upload

    def _release(self) -> None:
        if self._liveness is not None and self._liveness.is_locked:
            # Only the holder unlinks, so a lock file left behind always means a crashed writer.
            pathlib.Path(self._liveness.lock_file).unlink(missing_ok=True)
            self._liveness.release()
            with contextlib.suppress(OSError):  # the key's staging folder, once nothing else is in it
                self.path.parent.rmdir()

    def _check_open(self) -> None:
        if self._liveness is None or not self._liveness.is_locked:
            raise RuntimeError(f"writer of {self.key!r} is not open: use it as `with store.write(...) as writer:`")

    def _hash_files(self) -> list[dict[str, Any]]:
        paths = []
        for folder, dirs, names in os.walk(self.path):
            dirs.sort()
            for name in sorted(names):
                rel = pathlib.Path(folder, name).relative_to(self.path).as_posix()
                top, _, rest = rel.partition("/")
                if not any(i["path"] == top and (i["kind"] in TREE_KINDS) == bool(rest) for i in self._items.values()):
                    raise ValueError(f"file {rel!r} in the folder of {self.key!r} belongs to no item")
                paths.append(rel)
        # Threads: hashing and fsync release the GIL, and concurrent fsyncs share the filesystem's journal commits.
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(self._hash_file, paths))

    def _hash_file(self, rel: str) -> dict[str, Any]:
        with open(self.path / rel, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
            if self._store.is_local:
                os.fsync(f.fileno())  # the data must be on disk before the commit record says it is
            return {"path": rel, "sha256": digest, "size": os.fstat(f.fileno()).st_size}

    def _claim(self, item: str, kind: str, path: str) -> dict[str, Any]:
        self._check_open()
        check_name(item, "item name")
        info = self._items.get(item)
        if info is not None:
            if kind == "zarr" and info["kind"] == "zarr":
                return info
            raise ValueError(f"item {item!r} of {self.key!r} was already written (as {info['kind']})")
        check_name(path, f"file name of item {item!r}")
        if any(i["path"] == path for i in self._items.values()):
            raise ValueError(f"item {item!r} of {self.key!r} would overwrite {path!r}, written by another item")
        info = {"kind": kind, "path": path}
        self._items[item] = info
        return info

    # -- items ---------------------------------------------------------------------------------------------

    def _group(self, item: str) -> zarr.Group:
        info = self._claim(item, "zarr", f"{item}.zarr")
        zstore = zarr.storage.LocalStore(self.path / info["path"])
        return zarr.open_group(store=zstore, mode="a", zarr_format=3)

    def array(
        self,
        item: str,
        name: str,
        data: np.ndarray,
        *,
        dims: Sequence[str],
        attrs: Mapping[str, Any] | None = None,
        chunks: tuple[int, ...] | None = None,
    ) -> None:
        """Array `name` in the Zarr v3 group `<item>.zarr`, with named dimensions and JSON attributes."""
        data = np.asarray(data)
        dims = tuple(dims)
        if len(dims) != data.ndim or not all(isinstance(d, str) and d for d in dims):
            raise ValueError(f"array {item}/{name} has shape {data.shape} but dims {dims}: give one name per axis")
        check_name(name, "array name")
        group = self._group(item)
        arrays = self._items[item].setdefault("arrays", {})
        if name in arrays:
            raise ValueError(f"array {name!r} of item {item!r} was already written")
        numeric = data.dtype.kind in "biufc"
        group.create_array(
            name,
            data=data,
            chunks=tuple(chunks) if chunks is not None else default_chunks(data.shape, data.dtype.itemsize),
            dimension_names=dims,
            attributes=to_json(dict(attrs or {})),
            compressors=BloscCodec(cname="zstd", clevel=5, shuffle="shuffle") if numeric else "auto",
        )
        arrays[name] = {"shape": list(data.shape), "dtype": str(data.dtype), "dims": list(dims)}

    def group_attrs(self, item: str, attrs: Mapping[str, Any]) -> None:
        self._group(item).attrs.update(to_json(dict(attrs)))

    def table(self, item: str, table: pa.Table | Mapping[str, Any], *, schema: pa.Schema | None = None) -> None:
        """`<item>.parquet`; a mapping of columns gets a schema inferred per column (or `schema`, cast to)."""
        if isinstance(table, Mapping):
            table = table_from_columns(table, schema)
        elif not isinstance(table, pa.Table):
            raise ValueError(f"table {item!r} must be a pyarrow.Table or a mapping of columns, not {type(table)}")
        elif schema is not None:
            table = table.cast(schema)
        info = self._claim(item, "table", f"{item}.parquet")
        pq.write_table(table, self.path / info["path"], compression="zstd")
        info.update(rows=table.num_rows, columns=table.column_names)

    def tensors(self, item: str, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None) -> None:
        """`<item>.safetensors` (safetensors.numpy): weights without pickles."""
        metadata = dict(metadata or {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise ValueError(f"safetensors metadata of {item!r} must map strings to strings: {metadata!r}")
        arrays = {str(name): np.ascontiguousarray(value) for name, value in tensors.items()}
        info = self._claim(item, "tensors", f"{item}.safetensors")
        safetensors.numpy.save_file(arrays, self.path / info["path"], metadata=metadata or None)
        info.update(count=len(arrays), bytes=sum(a.nbytes for a in arrays.values()), metadata=metadata)

    def file(self, item: str, source: str | os.PathLike[str] | bytes, filename: str | None = None) -> None:
        """An arbitrary file, named `filename` or item + the source's suffix ("mesh" + x.glb -> "mesh.glb")."""
        if isinstance(source, (bytes, bytearray, memoryview)):
            info = self._claim(item, "file", filename or item)
            (self.path / info["path"]).write_bytes(source)
        else:
            source = pathlib.Path(source)
            if not source.is_file():
                raise ValueError(f"cannot store {source} as item {item!r}: not an existing file")
            info = self._claim(item, "file", filename or f"{item}{source.suffix}")
            shutil.copyfile(source, self.path / info["path"])
        info["size"] = (self.path / info["path"]).stat().st_size

    def directory(self, item: str, source_dir: str | os.PathLike[str]) -> None:
        """A whole folder, recursively (e.g. a save_pretrained() output)."""
        source_dir = pathlib.Path(source_dir)
        if not source_dir.is_dir():
            raise ValueError(f"cannot store {source_dir} as item {item!r}: not an existing folder")
        info = self._claim(item, "directory", item)
        shutil.copytree(source_dir, self.path / info["path"])

    def new_directory(self, item: str) -> pathlib.Path:
        """An empty local folder that becomes item `item`: save large outputs straight into it (no copy)."""
        info = self._claim(item, "directory", item)
        folder = self.path / info["path"]
        folder.mkdir()
        return folder

    def json(self, item: str, obj: Any) -> None:
        try:
            text = json.dumps(to_json(obj), indent=2, allow_nan=False)
        except ValueError as error:
            raise ValueError(f"item {item!r} cannot be written as JSON: {error}") from error
        info = self._claim(item, "json", f"{item}.json")
        (self.path / info["path"]).write_text(text + "\n", encoding="utf-8")
