"""Where every asset stands, read from the run ledger and the store."""

from __future__ import annotations

import json
from typing import Any

from storage import ArtifactStore
from tasks.catalog import EDIT, pipeline_of
from tasks.running import INTERRUPTED_ERROR, SHARED_ASSET
from tasks.stage import edit_prompt


def stage_status(store_uri: str) -> list[dict[str, Any]]:
    """One row per asset: for each stage of its pipeline (tasks/catalog.py) `done`, `failed`, `interrupted`,
    `missing` or `not run`, with compute seconds and, for a failure, why; the preset of the asset's latest run;
    per edit the verdict (applied, partly applied, not applied). The pseudo-asset "world" lists the world model's
    stages instead of an edit's.

    A stage is `done` when its latest ledger row succeeded and that artifact is still committed,
    `failed` when its latest row failed (`interrupted` when that was Ctrl-C or a stop signal), `missing` when
    its artifact was removed since, `not run` when it never ran (an optional stage such as `reconstruct` that is
    off, or one a run has not reached).
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
        # work every asset shares (the prior samples) is listed under its own pseudo-asset, by what ran
        names = sorted({s for a, s in latest if a == asset_id}) if asset_id == SHARED_ASSET else pipeline_of(asset_id).stage_names
        for stage in names:
            row = latest.get((asset_id, stage))
            if row is None:
                state, error = "not run", None
            elif row["status"] == "failed":
                state, error = _failed_state(row), row["error"]
            else:
                state, error = ("done" if store.is_committed(row["key"]) else "missing"), None
            stages[stage] = {
                "state": state,
                "seconds": computed_seconds.get((asset_id, stage)) if state == "done" else None,
                "key": None if row is None else row["key"],
                "error": error,
            }
        presets = [_details(row).get("preset") for row in rows if row["asset_id"] == asset_id]
        preset = next((p for p in reversed(presets) if p), None)
        table.append({"asset_id": asset_id, "preset": preset, "stages": stages, "edits": _edits(store, rows, asset_id)})
    return table


def _details(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(row["details"]) if row.get("details") else {}


def _failed_state(row: dict[str, Any]) -> str:
    return "interrupted" if row.get("error") == INTERRUPTED_ERROR else "failed"


def _edits(store: ArtifactStore, rows: list[dict[str, Any]], asset_id: str) -> list[dict[str, Any]]:
    """The asset's edits: per prompt, the state of each per-edit stage (from its latest ledger row per key;
    the prompt comes from the stage's plan, see `_prompt`)."""
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
        state = _failed_state(row) if row["status"] == "failed" else "done" if committed else "missing"
        cell = {"state": state, "seconds": row["seconds"] if row["status"] == "computed" else None, "key": key,
                "error": row["error"]}  # fmt: skip
        entry = edits.setdefault(prompt, {"prompt": prompt, "stages": {}, "verdict": None, "verdict_reason": None})
        entry["stages"][row["stage"]] = cell
        if row["stage"] == "evaluate" and committed:
            result = store.get(key).metadata.get("result", {})
            entry.update(verdict=result.get("verdict"), verdict_reason=result.get("verdict_reason"))
    return sorted(edits.values(), key=lambda edit: edit["prompt"])


def _prompt(store: ArtifactStore, key: str, row: dict[str, Any]) -> str | None:
    """The edit a per-edit run belongs to: its plan's (the commit's settings, or the run's ledger details); runs
    recorded before the plan said so named it in what the stage returned."""
    if store.is_committed(key):
        metadata = store.get(key).metadata
        return edit_prompt(metadata.get("config", {})) or metadata.get("result", {}).get("prompt")
    if row["status"] == "failed":
        return None  # shown on the asset's row, with its error
    details = _details(row)
    return details.get("edit") or details.get("prompt")


def status_text(table: list[dict[str, Any]]) -> str:
    """`stage_status`'s table as `dreamedit3d status` prints it: a row per asset, a column per stage with its
    compute time, failures and each edit on lines of their own (the world model's stages on one line)."""
    if not table:
        return "no assets in this store yet"
    header = f"{'asset':<28}{'preset':>8}" + "".join(f"{stage:>12}" for stage in EDIT.stage_names)
    rows = [header]
    for row in table:
        if tuple(row["stages"]) != EDIT.stage_names:  # the world model's stages: a line of their own
            cells = [f"{stage} {cell['state']}" + ("" if cell["seconds"] is None else f" {cell['seconds']:.1f}s")
                     for stage, cell in row["stages"].items()]
            rows.append(f"{row['asset_id']:<28}" + ", ".join(cells))
            continue
        cells = []
        for stage in EDIT.stage_names:
            cell = row["stages"][stage]
            text = cell["state"] if cell["seconds"] is None else f"{cell['state']} {cell['seconds']:.1f}s"
            cells.append(f"{text:>12}")
        rows.append(f"{row['asset_id']:<28}{row.get('preset') or '-':>8}" + "".join(cells))
        rows += [f"  {stage} {cell['state']}: {cell['error']}" for stage, cell in row["stages"].items() if cell["error"]]
        for edit in row.get("edits", []):
            cells = [f"{stage} {cell['state']}" + ("" if cell["seconds"] is None else f" {cell['seconds']:.1f}s")
                     for stage, cell in edit["stages"].items()]  # fmt: skip
            verdict = f" -> {edit['verdict']} ({edit['verdict_reason']})" if edit.get("verdict") else ""
            rows.append(f"  edit {edit['prompt']!r}: " + ", ".join(cells) + verdict)
            rows += [f"    {stage} {cell['state']}: {cell['error']}" for stage, cell in edit["stages"].items() if cell["error"]]
    return "\n".join(rows)
