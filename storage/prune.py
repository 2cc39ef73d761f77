"""Give space back: the files of writes that never committed, and artifacts no run has used for a while.

An artifact is in use when a ledger row (computed or cached) names its key after the cut-off, or when it was
committed after it. Batch summaries are history and are kept. Nothing is removed unless asked (`apply`);
a write in progress (its liveness lock held) is never touched.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING

from storage.verify import orphan_attempts

if TYPE_CHECKING:
    from storage.store import ArtifactStore

KEPT_STAGES = ("batch",)


@dataclasses.dataclass(frozen=True)
class PruneCandidate:
    what: str  # an artifact key, or objects/<key>/<attempt> for a dead write
    reason: str
    size_bytes: int


@dataclasses.dataclass
class PruneReport:
    candidates: list[PruneCandidate]
    applied: bool

    @property
    def size_bytes(self) -> int:
        return sum(candidate.size_bytes for candidate in self.candidates)

    def __str__(self) -> str:
        verb = "removed" if self.applied else "would remove (run with --apply to remove them)"
        lines = [f"{_size(c.size_bytes):>9}  {c.what}  ({c.reason})" for c in self.candidates]
        lines.append(f"{verb}: {len(self.candidates)} item(s), {_size(self.size_bytes)}")
        return "\n".join(lines)


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} B"


def prune_store(
    store: ArtifactStore, unused_days: float = 30.0, apply: bool = False, now: dt.datetime | None = None
) -> PruneReport:
    now = now or dt.datetime.now(dt.UTC)
    cutoff = now - dt.timedelta(days=unused_days)
    candidates: list[PruneCandidate] = []
    removals = []

    committed = {artifact.key: artifact for artifact in store.list()}
    referenced = {(key, artifact.record["attempt"]) for key, artifact in committed.items()}
    for key, attempt, why in orphan_attempts(store, referenced):
        size = int(store.fs.du(store.attempt_path(key, attempt)))
        candidates.append(PruneCandidate(f"objects/{key}/{attempt}", why, size))
        removals.append(lambda key=key, attempt=attempt: store.remove_attempt(key, attempt))

    last_used: dict[str, dt.datetime] = {}
    for row in store.ledger.read().select(["key", "status", "end"]).to_pylist():
        if row["status"] in ("computed", "cached"):
            last_used[row["key"]] = max(row["end"], last_used.get(row["key"], row["end"]))
    for key, artifact in sorted(committed.items()):
        if artifact.record["stage"] in KEPT_STAGES:
            continue
        created = dt.datetime.fromisoformat(str(artifact.record["created"]))
        created = created if created.tzinfo else created.replace(tzinfo=dt.UTC)
        used = max(created, last_used.get(key, created))
        if used >= cutoff:
            continue
        size = sum(int(file.get("size", 0)) for file in artifact.record["files"])
        candidates.append(PruneCandidate(key, f"not used since {used:%Y-%m-%d}", size))
        removals.append(lambda key=key: store.delete(key))

    if apply:
        for remove in removals:
            remove()
    return PruneReport(candidates, applied=apply)
