"""The heartbeat of a lease this process holds (storage/leases.py): a thread that keeps the lease object fresh
with conditional rewrites, retries failed renewals with backoff, and tells, right before a publish, whether the
lease is still ours (`Lease.check()`, raising `LeaseLost`).

`held_by_this_thread()` lists the leases the calling thread holds (inside `S3Leases.hold`), so that code deep in
a write can check the lease of its key without being handed it (`S3Leases.check(key)`).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from storage.lease_record import LeaseLost

if TYPE_CHECKING:
    from storage.leases import S3Leases


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


def held_by_this_thread() -> dict[str, Lease]:
    if not hasattr(_HELD, "leases"):
        _HELD.leases = {}
    held: dict[str, Lease] = _HELD.leases
    return held
