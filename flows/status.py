"""Where every asset stands, read from the run ledger and the store."""

from __future__ import annotations

from typing import Any

from storage import ArtifactStore
from tasks.catalog import pipeline_of


def stage_status(store_uri: str) -> list[dict[str, Any]]:
    """One row per asset: for each stage of its pipeline (tasks/catalog.py) `done`, `failed` or `missing`, with
    compute seconds. The pseudo-asset "world" lists the world model's stages instead of an edit's.

    A stage is `done` when its latest ledger row succeeded and that artifact is still committed,
    `failed` when its latest row failed, `missing` otherwise (never run, or its artifact was removed).
    """
    store = ArtifactStore(store_uri)
    rows = store.ledger.read().to_pylist()
    rows.sort(key=lambda row: row["end"])
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    computed_seconds: dict[tuple[str, str], float] = {}
    for row in rows:
        cell = (row["asset_id"], row["stage"])
        latest[cell] = row
        if row["status"] == "computed":
            computed_seconds[cell] = row["seconds"]
    table = []
    for asset_id in sorted({asset_id for asset_id, _ in latest}):
        stages: dict[str, dict[str, Any]] = {}
        for stage in pipeline_of(asset_id).stage_names:
            row = latest.get((asset_id, stage))
            if row is None:
                state, error = "missing", None
            elif row["status"] == "failed":
                state, error = "failed", row["error"]
            else:
                state, error = ("done" if store.is_committed(row["key"]) else "missing"), None
            stages[stage] = {
                "state": state,
                "seconds": computed_seconds.get((asset_id, stage)) if state == "done" else None,
                "key": None if row is None else row["key"],
                "error": error,
            }
        table.append({"asset_id": asset_id, "stages": stages})
    return table
