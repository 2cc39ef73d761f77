"""Locks that hold across machines on an S3 object store: one small object per key, written with the store's
conditional writes, and kept alive by its holder's heartbeat.

- Take: `PUT locks/<key>.lease` with `If-None-Match: *`; exactly one of many writers gets it.
- Keep: the holder rewrites it every `lease_s / 4` seconds with `If-Match: <its own ETag>`. A renewal that fails
  (the store unreachable, any error) is retried with backoff; a holder that cannot renew within `lease_s`, or
  whose ETag the store refuses (another machine took over), has lost the lease and must publish nothing:
  `Lease.check()` (or `S3Leases.check(key)`) raises `LeaseLost` right before a publish, and `hold` raises it
  when its block ends.
- Lapse: a lease whose object was last written more than `lease_s` ago (by the object store's clock: its
  `Last-Modified` against the `Date` of the same response) belongs to a holder that died or lost the store.
  A waiter takes it over with `If-Match: <that ETag>`, so of several waiters exactly one succeeds.
- Give back: `DELETE` with `If-Match: <its own ETag>`, so a holder whose lease was taken over never deletes
  the new holder's.

Amazon S3, MinIO and other S3-compatible stores support these conditions (the tests run against moto). The
record names its holder (host, pid, Prefect flow run), so that a caller waiting for a remote run can tell a
lost worker from a slow one (`LeaseInfo.lapsed`).

This module takes, reads and gives back leases (`S3Leases`); the record format and `LeaseLost` are in
storage/lease_record.py, the holder's heartbeat (`Lease`) in storage/lease_heartbeat.py.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from fsspec.asyn import sync

from storage.lease_heartbeat import Lease, held_by_this_thread
from storage.lease_record import (
    DEFAULT_LEASE_S,
    LeaseInfo,
    LeaseLost,
    decode_record,
    encode_record,
    lease_seconds,
    new_record,
)


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
        holder = decode_record(body)  # an unreadable record still ages, by the default lease
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
                "put_object", Bucket=bucket, Key=name, Body=encode_record(holder), **condition
            )
        except (FileExistsError, FileNotFoundError):
            return None  # If-None-Match failed (FileExistsError), or the object is gone (If-Match on nothing)
        except OSError as error:
            if _condition_failed(error):
                return None
            raise
        return str(response["ETag"])

    def check(self, key: str) -> None:
        """Raise LeaseLost if the calling thread holds the lease of `key` (inside `hold`) and lost it, or it could
        lapse before a publish completes; nothing when this thread holds no lease of `key`.

        The guard to call right before publishing what the lease protects (the commit record): a holder whose
        lease lapsed must not commit, since the machine that took over may have removed its files meanwhile."""
        lease = held_by_this_thread().get(self.path(key))
        if lease is not None:
            lease.check()

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
    ) -> Iterator[Lease]:
        """Exclusive right to `key` across machines while the block runs; waits for a live holder, takes over
        a lapsed one. Raises TimeoutError after `timeout` seconds of waiting.

        Yields the `Lease`: call its `check()` (or `S3Leases.check(key)`) right before publishing anything the
        lease protects. A block that ends normally after the lease was lost raises LeaseLost; a block that
        raised keeps its own exception."""
        lease = lease_s if lease_s is not None else lease_seconds()
        holder = new_record(key, owner, lease)
        etag, sent = self._acquire(key, holder, timeout, lease)
        held = Lease(self, key, holder, etag, sent, lease)
        held.start()
        held_by_this_thread()[self.path(key)] = held
        try:
            yield held
        finally:
            held_by_this_thread().pop(self.path(key), None)
            etag = held.stop()
            if etag is not None:
                self._give_back(key, etag, lease)
        if held.lost:
            raise LeaseLost(f"lost the lock of {key!r} while holding it: {held.reason}")

    def _acquire(self, key: str, holder: dict[str, Any], timeout: float | None, lease: float) -> tuple[str, float]:
        """Take the lease; its ETag and when (`time.monotonic()`) the write that took it was sent."""
        deadline = None if timeout is None else time.monotonic() + timeout
        wait = min(1.0, lease / 8)
        announced = False
        while True:
            sent = time.monotonic()
            etag = self._put(key, holder, IfNoneMatch="*")
            if etag is not None:
                return etag, sent
            current = self.info(key)
            if current is not None and current.lapsed:
                sent = time.monotonic()
                etag = self._put(key, holder, IfMatch=current.etag)
                if etag is not None:
                    who = current.holder
                    sys.stderr.write(
                        f"[lock] {key}: took over the lapsed lock of {who.get('host', '?')} (pid {who.get('pid', '?')}), "
                        f"silent for {current.age_s:.0f} s (lease {current.lease_s:.0f} s)\n"
                    )
                    return etag, sent
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

    def _give_back(self, key: str, etag: str, lease: float) -> None:
        """Remove our lease, best effort: when the store cannot be reached it lapses by itself after `lease`."""
        try:
            self.remove(key, etag)
        except Exception as error:  # never hide the block's own outcome behind a failed clean-up
            sys.stderr.write(
                f"warning: could not give back the lock of {key} ({error!r}); it lapses by itself in {lease:.0f} s\n"
            )


def _server_time(response: Mapping[str, Any]) -> dt.datetime:
    """When the object store answered, by its own clock (the response's `Date` header)."""
    return email.utils.parsedate_to_datetime(response["ResponseMetadata"]["HTTPHeaders"]["date"])


async def _get_object(fs: Any, bucket: str, name: str) -> tuple[dict[str, Any], bytes]:
    """GET on the filesystem's own event loop, body included (aiobotocore streams it)."""
    response = await fs._call_s3("get_object", Bucket=bucket, Key=name)
    async with response["Body"] as body:
        return response, await body.read()


def _condition_failed(error: BaseException) -> bool:
    """Whether an error is the store refusing a conditional write: HTTP 412 (Precondition Failed: the ETag no
    longer matches, or the object exists) or 409 (Conditional Request Conflict: a concurrent conditional write
    to the same key).

    Read from the botocore ClientError's response (its status code, or its error code), which s3fs keeps as
    the `__cause__` of the OSError it raises instead; s3fs's errno cannot tell (412 becomes EINVAL, like many
    other errors). Never from the message, where "412" may be part of a key, an ETag or an address."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        response = getattr(current, "response", None)  # botocore.exceptions.ClientError
        if isinstance(response, Mapping):
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = response.get("Error", {}).get("Code")
            if status in (409, 412) or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return True
        current = current.__cause__ or current.__context__
    return False
