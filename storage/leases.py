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


class LeaseLost(RuntimeError):
    """The holder of a lease lost it (another machine took it over, or it could not be renewed in time), so
    another machine may be computing the same key and removing this holder's upload: publish nothing."""


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

    def check(self, key: str) -> None:
        """Raise LeaseLost if the calling thread holds the lease of `key` (inside `hold`) and lost it, or it could
        lapse before a publish completes; nothing when this thread holds no lease of `key`.

        The guard to call right before publishing what the lease protects (the commit record): a holder whose
        lease lapsed must not commit, since the machine that took over may have removed its files meanwhile."""
        lease = _held_by_this_thread().get(self.path(key))
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
        holder = {
            "key": key,
            "holder": uuid.uuid4().hex,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            **{name: value for name, value in (owner or {}).items() if value is not None},
            "lease_s": lease,
            "beat": 0,
        }
        etag, sent = self._acquire(key, holder, timeout, lease)
        held = Lease(self, key, holder, etag, sent, lease)
        held.start()
        _held_by_this_thread()[self.path(key)] = held
        try:
            yield held
        finally:
            _held_by_this_thread().pop(self.path(key), None)
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


class Lease:
    """A lease this process holds: a heartbeat thread rewrites it every `lease / 4` seconds (If-Match its own
    ETag) until stopped, and `check()` tells, right before a publish, whether it is still ours.

    A renewal may fail with any error: an OSError from s3fs, a botocore error s3fs passes through untranslated
    (`EndpointConnectionError` when the network is down), anything else. The heartbeat then warns and retries
    with a growing wait (from `lease / 32`, doubling, at most `lease / 8`, so several tries fit in a lease).
    The lease is lost when no renewal succeeded for a whole lease, counted from when the last successful
    write was *sent*: never later than the store counts, which starts when it receives the write. It is lost
    at once when the store refuses our ETag and the record is another holder's (a waiter took it over), or is
    gone. A lost lease stays lost, and its holder must publish nothing.
    """

    def __init__(
        self, leases: S3Leases, key: str, holder: dict[str, Any], etag: str, renewed: float, lease: float
    ) -> None:
        self.leases, self.key, self.holder, self.lease = leases, key, dict(holder), lease
        self.etag: str | None = etag  # None once the record is another holder's, or gone: nothing of ours to remove
        self._renewed = renewed  # time.monotonic() when the last successful write of the lease was sent
        self._why_lost = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{key}", daemon=True)

    @property
    def lost(self) -> bool:
        return bool(self.reason)

    @property
    def reason(self) -> str:
        """Why the lease was lost, or "" while it is ours. Counts the time itself, since the heartbeat may be
        stuck in a renewal call that outlasts the lease."""
        if not self._why_lost and not self._stop.is_set() and self._silent_s() > self.lease:
            return self._unrenewed()
        return self._why_lost

    def check(self) -> None:
        """Raise LeaseLost unless the lease is still ours, with time to spare for a publish.

        Refused: a lost lease; one not renewed for over 3/4 of the lease (a healthy heartbeat renews every
        quarter, so renewals have been failing and it may lapse during the publish); and one the store itself
        says is another holder's, gone, or lapsed (one GET), which also stops a holder whose clock stood still
        while the lease ran out on the store (a suspended machine). When the store cannot be read, its error
        propagates: nothing could be published then either."""
        if self.lost:
            raise LeaseLost(f"lost the lock of {self.key!r}: {self.reason}; not publishing")
        silent = self._silent_s()
        if silent > self.lease * 3 / 4:
            raise LeaseLost(
                f"the lock of {self.key!r} was not renewed for {silent:.1f} s of its {self.lease:.0f} s lease and "
                "may lapse before a publish completes; not publishing"
            )
        current = self.leases.info(self.key)
        if current is None or current.holder.get("holder") != self.holder["holder"]:
            self._lose("another machine took it over" if current else "it was removed", taken=True)
            raise LeaseLost(f"lost the lock of {self.key!r}: {self.reason}; not publishing")
        if current.lapsed:
            raise LeaseLost(
                f"the lock of {self.key!r} lapsed on the store (silent for {current.age_s:.0f} s by its clock, "
                f"lease {current.lease_s:.0f} s) and another machine may take it over; not publishing"
            )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> str | None:
        """Stop beating; the ETag to give back (If-Match: removed only if nobody took it over since), or None
        when the record is another holder's or gone, or a renewal is still in flight (it lapses by itself then).
        A lease that went unrenewed past its length stays lost."""
        self._stop.set()
        self._thread.join(self.lease / 4)
        if not self._why_lost and self._silent_s() > self.lease:
            self._why_lost = self._unrenewed()
        return None if self._thread.is_alive() else self.etag

    def _run(self) -> None:
        wait, failures = self.lease / 4, 0
        while not self._stop.wait(wait):
            sent = time.monotonic()
            try:
                etag = self._renew()
            except Exception as error:  # anything: a failed renewal must never end the heartbeat silently
                failures += 1
                left = self._renewed + self.lease - time.monotonic()
                if left <= 0:
                    self._lose(f"{self._unrenewed()} (last error: {error!r})")
                    return
                wait = min(self.lease / 32 * 2 ** (failures - 1), self.lease / 8, left)
                sys.stderr.write(
                    f"warning: could not renew the lock of {self.key} ({error!r}); retrying in {wait:.2f} s, "
                    f"{left:.1f} s before it lapses\n"
                )
                continue
            if etag is None:
                self._lose("another machine took it over, or it was removed (the store refused our ETag)", taken=True)
                return
            self.etag, self._renewed, wait, failures = etag, sent, self.lease / 4, 0

    def _renew(self) -> str | None:
        """One conditional rewrite: the new ETag, or None when the record is another holder's or gone."""
        assert self.etag is not None
        self.holder["beat"] += 1
        etag = self.leases._put(self.key, self.holder, IfMatch=self.etag)
        if etag is None:
            # An earlier renewal may have reached the store and lost only its answer (the connection dropped):
            # the record is still ours under a new ETag. Take that ETag and retry, as after any failure.
            current = self.leases.info(self.key)
            if current is not None and current.holder.get("holder") == self.holder["holder"]:
                self.etag = current.etag
                raise RuntimeError("the store refused our ETag, but the record is still ours: retrying with its ETag")
        return etag

    def _silent_s(self) -> float:
        """Seconds since the last successful write of the lease was sent."""
        return time.monotonic() - self._renewed

    def _unrenewed(self) -> str:
        return f"could not renew it for {self._silent_s():.1f} s, longer than its {self.lease:.0f} s lease"

    def _lose(self, why: str, *, taken: bool = False) -> None:
        """Mark the lease lost for good; `taken`: the record is another holder's or gone, so never remove it."""
        if taken:
            self.etag = None
        if not self._why_lost:
            self._why_lost = why
            sys.stderr.write(
                f"warning: lost the lock of {self.key}: {why}; another machine may compute it, "
                "so this one publishes nothing\n"
            )


_HELD = threading.local()  # the leases the calling thread holds (inside `hold`), by path: for S3Leases.check


def _held_by_this_thread() -> dict[str, Lease]:
    if not hasattr(_HELD, "leases"):
        _HELD.leases = {}
    held: dict[str, Lease] = _HELD.leases
    return held


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
