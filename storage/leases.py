"""Locks that hold across machines on an S3 object store: one small object per key, written with the store's
conditional writes, and kept alive by its holder's heartbeat.

- Take: `PUT locks/<key>.lease` with `If-None-Match: *`; exactly one of many writers gets it.
- Keep: the holder rewrites it every `lease_s / 4` seconds with `If-Match: <its own ETag>`.
- Lapse: a lease whose object was last written more than `lease_s` ago (by the object store's clock: its
  `Last-Modified` against the `Date` of the same response) belongs to a holder that died or lost the store.
  A waiter takes it over with `If-Match: <that ETag>`, so of several waiters exactly one succeeds.
- Give back: `DELETE` with `If-Match: <its own ETag>`, so a holder whose lease was taken over never deletes
  the new holder's.

Amazon S3, MinIO and other S3-compatible stores support these conditions (the tests run against moto). The
record names its holder (host, pid, Prefect flow run), so that a caller waiting for a remote run can tell a
lost worker from a slow one (`LeaseInfo.lapsed`).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fsspec.asyn import sync

LEASE_ENV = "DREAMEDIT3D_LOCK_LEASE_S"
DEFAULT_LEASE_S = 60.0


def lease_seconds() -> float:
    """How long a lock outlives its holder's last heartbeat (`DREAMEDIT3D_LOCK_LEASE_S`, 60 s by default)."""
    value = float(os.environ.get(LEASE_ENV, DEFAULT_LEASE_S))
    if value < 2:
        raise ValueError(f"{LEASE_ENV} must be at least 2 seconds, got {value}")
    return value


@dataclass(frozen=True)
class LeaseInfo:
    """Who holds a lease, and whether it has lapsed, as the object store sees it now."""

    holder: dict[str, Any]
    etag: str
    age_s: float  # since its last heartbeat, by the store's clock
    lease_s: float

    @property
    def lapsed(self) -> bool:
        return self.age_s > self.lease_s


def supports_leases(fs: Any) -> bool:
    """Whether `fs` is an S3 filesystem (s3fs), whose conditional writes leases are built on."""
    return type(fs).__module__.startswith("s3fs")


class S3Leases:
    """Leases under one folder (`<root>/locks`) of an S3 filesystem (`s3fs.S3FileSystem`)."""

    def __init__(self, fs: Any, folder: str) -> None:
        self.fs = fs
        self.folder = folder.rstrip("/")

    def path(self, key: str) -> str:
        return f"{self.folder}/{key}.lease"

    def _split(self, key: str) -> tuple[str, str]:
        bucket, name, _ = self.fs.split_path(self.path(key))
        return bucket, name

    # -- reading -----------------------------------------------------------------------------------------

    def info(self, key: str) -> LeaseInfo | None:
        """The lease of `key` as the store has it now, or None when nobody holds it."""
        bucket, name = self._split(key)
        try:
            response, body = sync(self.fs.loop, _get_object, self.fs, bucket, name)
        except FileNotFoundError:
            return None
        try:
            holder = json.loads(body)
        except ValueError:
            holder = None
        holder = holder if isinstance(holder, dict) else {}  # an unreadable record still ages, by the default lease
        modified = response["LastModified"]
        modified = modified if modified.tzinfo else modified.replace(tzinfo=dt.UTC)
        return LeaseInfo(
            holder=holder,
            etag=response["ETag"],
            age_s=(_server_time(response) - modified).total_seconds(),
            lease_s=float(holder.get("lease_s", DEFAULT_LEASE_S)),
        )

    def now(self) -> dt.datetime:
        """The object store's own time (the `Date` of a response), to age its objects without this host's clock."""
        bucket = self.fs.split_path(self.folder)[0]
        return _server_time(self.fs.call_s3("head_bucket", Bucket=bucket))

    def list(self) -> Iterator[tuple[str, LeaseInfo]]:
        """Every lease in the folder, by key."""
        try:
            names = self.fs.ls(self.folder, detail=False, refresh=True)
        except FileNotFoundError:
            return
        for path in sorted(names):
            if path.endswith(".lease"):
                key = path.rsplit("/", 1)[-1].removesuffix(".lease")
                info = self.info(key)
                if info is not None:
                    yield key, info

    # -- writing -----------------------------------------------------------------------------------------

    def _put(self, key: str, holder: Mapping[str, Any], **condition: str) -> str | None:
        """A conditional PUT of the lease record; its new ETag, or None when the condition failed."""
        bucket, name = self._split(key)
        try:
            response = self.fs.call_s3(
                "put_object", Bucket=bucket, Key=name, Body=json.dumps(dict(holder)).encode(), **condition
            )
        except (FileExistsError, FileNotFoundError):
            return None  # If-None-Match failed (FileExistsError), or the object is gone (If-Match on nothing)
        except OSError as error:
            if _condition_failed(error):
                return None
            raise
        return str(response["ETag"])

    def remove(self, key: str, etag: str) -> bool:
        """Delete the lease if it is still the one with `etag` (its holder's, or a lapsed one)."""
        bucket, name = self._split(key)
        try:
            self.fs.call_s3("delete_object", Bucket=bucket, Key=name, IfMatch=etag)
        except FileNotFoundError:
            return False
        except OSError as error:
            if _condition_failed(error):
                return False
            raise
        self.fs.invalidate_cache(self.path(key))
        return True

    @contextmanager
    def hold(
        self,
        key: str,
        *,
        timeout: float | None = None,
        owner: Mapping[str, Any] | None = None,
        lease_s: float | None = None,
    ) -> Iterator[None]:
        """Exclusive right to `key` across machines while the block runs; waits for a live holder, takes over
        a lapsed one. Raises TimeoutError after `timeout` seconds of waiting."""
        lease = lease_s if lease_s is not None else lease_seconds()
        holder = {
            "key": key,
            "holder": uuid.uuid4().hex,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            **{name: value for name, value in (owner or {}).items() if value is not None},
            "lease_s": lease,
            "beat": 0,
        }
        etag = self._acquire(key, holder, timeout, lease)
        beat = _Heartbeat(self, key, holder, etag, lease)
        beat.start()
        try:
            yield
        finally:
            etag = beat.stop()
            if etag is not None:
                self.remove(key, etag)

    def _acquire(self, key: str, holder: dict[str, Any], timeout: float | None, lease: float) -> str:
        deadline = None if timeout is None else time.monotonic() + timeout
        wait = min(1.0, lease / 8)
        announced = False
        while True:
            etag = self._put(key, holder, IfNoneMatch="*")
            if etag is not None:
                return etag
            current = self.info(key)
            if current is not None and current.lapsed:
                etag = self._put(key, holder, IfMatch=current.etag)
                if etag is not None:
                    who = current.holder
                    sys.stderr.write(
                        f"[lock] {key}: took over the lapsed lock of {who.get('host', '?')} (pid {who.get('pid', '?')}), "
                        f"silent for {current.age_s:.0f} s (lease {current.lease_s:.0f} s)\n"
                    )
                    return etag
                continue  # another waiter took it over first, or the holder beat just now: look again
            if current is not None and not announced:
                who = current.holder
                sys.stderr.write(
                    f"[lock] {key}: held by {who.get('host', '?')} (pid {who.get('pid', '?')}); waiting "
                    f"(a holder silent for {current.lease_s:.0f} s is taken for dead)\n"
                )
                announced = True
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"artifact {key!r} stayed locked by another machine for {timeout} s")
            time.sleep(wait)


class _Heartbeat:
    """Rewrites the holder's lease every `lease / 4` seconds (If-Match its own ETag) until stopped."""

    def __init__(self, leases: S3Leases, key: str, holder: dict[str, Any], etag: str, lease: float) -> None:
        self.leases, self.key, self.holder, self.etag, self.lease = leases, key, dict(holder), etag, lease
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{key}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.lease / 4):
            self.holder["beat"] += 1
            try:
                etag = self.leases._put(self.key, self.holder, IfMatch=self.etag)
            except OSError as error:  # the store is unreachable for now: try again at the next beat
                sys.stderr.write(f"warning: could not renew the lock of {self.key}: {error}\n")
                continue
            if etag is None:
                self.lost = True
                sys.stderr.write(
                    f"warning: the lock of {self.key} lapsed and another machine took it over; "
                    "both may compute it (the last identical commit wins)\n"
                )
                return
            self.etag = etag

    def stop(self) -> str | None:
        """Stop beating; the ETag to give back, or None when the lease was lost."""
        self._stop.set()
        self._thread.join()
        return None if self.lost else self.etag


def _server_time(response: Mapping[str, Any]) -> dt.datetime:
    """When the object store answered, by its own clock (the response's `Date` header)."""
    return email.utils.parsedate_to_datetime(response["ResponseMetadata"]["HTTPHeaders"]["date"])


async def _get_object(fs: Any, bucket: str, name: str) -> tuple[dict[str, Any], bytes]:
    """GET on the filesystem's own event loop, body included (aiobotocore streams it)."""
    response = await fs._call_s3("get_object", Bucket=bucket, Key=name)
    async with response["Body"] as body:
        return response, await body.read()


def _condition_failed(error: OSError) -> bool:
    """Whether an s3fs error is a failed precondition (412) or a conflicting conditional write (409)."""
    text = f"{error} {error.__cause__}"
    return any(marker in text for marker in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"))
