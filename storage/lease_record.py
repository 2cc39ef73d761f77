"""The record of a cross-machine lock (storage/leases.py): what a lease object holds, how long a lease lasts, and
what a reader makes of one.

A lease object (`locks/<key>.lease`) is a small JSON object naming its holder (a random id, host, pid, and what
the caller adds, such as the Prefect flow run), the length of its lease and a heartbeat counter. How old it is
comes from the object store's own times, never from the record, so every machine ages it the same way.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dreamedit3d_core.environment import declaration, setting

LEASE_ENV = "DREAMEDIT3D_LOCK_LEASE_S"
DEFAULT_LEASE_S: float = declaration(LEASE_ENV).default


def lease_seconds() -> float:
    """How long a lock outlives its holder's last heartbeat (`DREAMEDIT3D_LOCK_LEASE_S`, 60 s by default)."""
    return setting(LEASE_ENV)  # at least 2 s (its declaration's minimum)


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


def new_record(key: str, owner: Mapping[str, Any] | None, lease: float) -> dict[str, Any]:
    """The record of a lease this process is about to take: a fresh holder id, this host and pid, the
    caller's `owner` fields that are set, the lease length and a heartbeat count of 0."""
    return {
        "key": key,
        "holder": uuid.uuid4().hex,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        **{name: value for name, value in (owner or {}).items() if value is not None},
        "lease_s": lease,
        "beat": 0,
    }


def encode_record(holder: Mapping[str, Any]) -> bytes:
    """The body of a lease object."""
    return json.dumps(dict(holder)).encode()


def decode_record(body: bytes) -> dict[str, Any]:
    """The holder a lease object's body names; {} when unreadable (such a record still ages, by the default
    lease)."""
    try:
        holder = json.loads(body)
    except ValueError:
        holder = None
    return holder if isinstance(holder, dict) else {}

