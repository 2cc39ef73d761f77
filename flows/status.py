"""Where every asset stands, read from the run ledger and the store."""

from __future__ import annotations

import json
from typing import Any

from storage import ArtifactStore
from tasks.catalog import pipeline_of


def stage_status(store_uri: str) -> list[dict[str, Any]]:
    """One row per asset: for each stage of its pipeline (tasks/catalog.py) `done`, `failed`, `missing` or `not run`, with
    compute seconds. The pseudo-asset "world" lists the world model's stages instead of an edit's.

    A stage is `done` when its latest ledger row succeeded and that artifact is still committed,
    `failed` when its latest row failed, `missing` when its artifact was removed since, `not run` when it never
    ran (an optional stage such as `reconstruct` that is off, or one a run has not reached).
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
                state, error = "not run", None
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
        table.append({"asset_id": asset_id, "stages": stages, "edits": _edits(store, rows, asset_id)})
    return table


def _edits(store: ArtifactStore, rows: list[dict[str, Any]], asset_id: str) -> list[dict[str, Any]]:
    """The asset's edits: per prompt, the state of each per-edit stage (from its latest ledger row per key;
    the prompt comes from the artifact's metadata, or from the run's details)."""
    pipeline = pipeline_of(asset_id)
    per_edit = [stage.name for stage in pipeline.stages if stage.per_edit]
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:  # sorted by end: the last row of a key wins
        if row["asset_id"] == asset_id and row["stage"] in per_edit:
            latest[row["key"]] = row
    edits: dict[str, dict[str, Any]] = {}
    for key, row in latest.items():
        prompt = _prompt(store, key, row)
        if prompt is None:
            continue  # a failed per-edit run: its asset row shows the failure
        committed = row["status"] != "failed" and store.is_committed(key)
        state = "failed" if row["status"] == "failed" else "done" if committed else "missing"
        cell = {"state": state, "seconds": row["seconds"] if row["status"] == "computed" else None, "key": key,
                "error": row["error"]}  # fmt: skip
        edits.setdefault(prompt, {"prompt": prompt, "stages": {}})["stages"][row["stage"]] = cell
    return sorted(edits.values(), key=lambda edit: edit["prompt"])


def _prompt(store: ArtifactStore, key: str, row: dict[str, Any]) -> str | None:
    if store.is_committed(key):
        return store.get(key).metadata.get("result", {}).get("prompt")
    details = json.loads(row["details"]) if row.get("details") else {}
    return details.get("prompt")
