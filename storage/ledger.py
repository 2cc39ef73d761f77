"""Run ledger: one row per stage execution, appended as small Parquet files.

Appends never collide: each is a file of its own. After months of nightly runs those files are many, so the
ledger compacts itself past `COMPACT_AFTER` files (and on `dreamedit3d ledger compact`): all rows are written
as one file first, then the small files are removed. A reader between the two steps sees every row twice, so
reading drops exact duplicates (two real executions never share their start and end to the microsecond).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import posixpath
import socket
import uuid
from collections.abc import Iterable

import fsspec
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

STATUSES = ("computed", "cached", "failed")
COMPACT_AFTER = 256  # part files: past this many, an append compacts the ledger

SCHEMA = pa.schema(
    [
        pa.field("asset_id", pa.string(), nullable=False),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("start", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("end", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("seconds", pa.float64(), nullable=False),
        pa.field("peak_rss_bytes", pa.int64(), nullable=False),
        pa.field("peak_gpu_bytes", pa.int64(), nullable=True),
        pa.field("host", pa.string(), nullable=False),
        pa.field("error", pa.string(), nullable=True),
        pa.field("run_id", pa.string(), nullable=True),
        pa.field("details", pa.string(), nullable=True),  # JSON: what the stage measured (e.g. mask coverage)
    ]
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LedgerRecord:
    """One stage execution. `seconds` defaults to end - start; times must be timezone-aware."""

    asset_id: str
    stage: str
    key: str
    status: str
    start: dt.datetime
    end: dt.datetime
    peak_rss_bytes: int
    peak_gpu_bytes: int | None = None
    error: str | None = None
    host: str = dataclasses.field(default_factory=socket.gethostname)
    run_id: str | None = None
    seconds: float | None = None
    details: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"ledger status must be one of {STATUSES}, not {self.status!r}")
        for name in ("start", "end"):
            if getattr(self, name).tzinfo is None:
                raise ValueError(f"ledger {name} must be timezone-aware, e.g. datetime.now(datetime.UTC)")
        if self.end < self.start:
            raise ValueError(f"ledger end {self.end} is before start {self.start}")
        if self.seconds is None:
            object.__setattr__(self, "seconds", (self.end - self.start).total_seconds())


class Ledger:
    """Append-only Parquet dataset at `<root>/ledger/`: each append is one new file, so writers never collide."""

    def __init__(self, fs: fsspec.AbstractFileSystem, path: str, *, local: bool) -> None:
        self.fs = fs
        self.path = path
        self._local = local

    def append(self, record: LedgerRecord) -> None:
        self.extend([record])

    def extend(self, records: Iterable[LedgerRecord]) -> None:
        """Append several records as one file."""
        rows = [dataclasses.asdict(r) for r in records]
        if not rows:
            return
        name = f"part-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:12]}.parquet"
        self._write(name, pa.Table.from_pylist(rows, schema=SCHEMA))
        if len(self.parts()) > COMPACT_AFTER:
            self.compact()

    def _write(self, name: str, table: pa.Table) -> None:
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        data = sink.getvalue().to_pybytes()
        if self._local:
            os.makedirs(self.path, exist_ok=True)
            temp = os.path.join(self.path, f".{name}.tmp")  # dot files are invisible to read()
            with open(temp, "wb") as f:
                f.write(data)
                os.fsync(f.fileno())
            os.replace(temp, os.path.join(self.path, name))
        else:
            self.fs.pipe_file(f"{self.path}/{name}", data)  # one PUT: atomic on object stores

    def compact(self) -> int:
        """Rewrite all rows as one file, then remove the files they came from; returns how many were removed."""
        parts = self.parts()
        if len(parts) < 2:
            return 0
        table = self._read(parts)
        self._write(f"part-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:12]}-compacted.parquet", table)
        removed = 0
        for part in parts:
            try:
                self.fs.rm_file(part)
                removed += 1
            except FileNotFoundError:  # another process compacted it away first
                continue
        return removed

    def parts(self) -> list[str]:
        try:
            names = self.fs.ls(self.path, detail=False)
        except FileNotFoundError:
            return []
        return sorted(p for p in names if posixpath.basename(p).startswith("part-") and p.endswith(".parquet"))

    def read(self) -> pa.Table:
        """Every record so far, oldest start first (an empty table with the schema when there is none)."""
        parts = self.parts()
        if not parts:
            return SCHEMA.empty_table()
        return self._read(parts)

    def _read(self, parts: list[str]) -> pa.Table:
        table = ds.dataset(parts, schema=SCHEMA, format="parquet", filesystem=self.fs).to_table()
        table = table.group_by(table.column_names, use_threads=False).aggregate([])  # exact duplicates once
        return table.select(SCHEMA.names).cast(SCHEMA).sort_by([("start", "ascending"), ("end", "ascending")])
