"""The batch summary as a Parquet table: one row per edit (an asset that failed: one row per edit it had), in
plain columns a spreadsheet reads: the asset, the edit, the preset, the verdict, the result files, key metrics."""

from __future__ import annotations

import pyarrow as pa

from flows.batch_models import BatchSummary

SUMMARY_SCHEMA = pa.schema(
    [
        pa.field("row", pa.int64(), nullable=False),
        pa.field("asset", pa.string(), nullable=False),
        pa.field("asset_id", pa.string()),
        pa.field("edit", pa.string()),
        pa.field("preset", pa.string()),
        pa.field("status", pa.string(), nullable=False),  # completed or failed (the asset's)
        pa.field("verdict", pa.string()),  # applied, partly applied, not applied, noise: random model, not measured
        pa.field("verdict_reason", pa.string()),
        pa.field("edited_colour_share", pa.float64()),
        pa.field("preserved_psnr", pa.float64()),
        pa.field("mesh", pa.string()),  # the edited asset where the source file had it (GLB)
        pa.field("report", pa.string()),
        pa.field("error", pa.string()),
        pa.field("asset_seconds", pa.float64(), nullable=False),
    ]
)
COLUMNS = tuple(SUMMARY_SCHEMA.names)


def summary_rows(summary: BatchSummary) -> list[dict]:
    rows = []
    for asset in summary.assets:
        edits = asset.outputs.get("edits", []) if asset.status == "completed" else [{"prompt": e} for e in asset.edits]
        for edit in edits or [{"prompt": None}]:
            rows.append({
                "row": asset.row, "asset": asset.asset, "asset_id": asset.asset_id, "edit": edit.get("prompt"),
                "preset": summary.preset, "status": asset.status, "verdict": edit.get("verdict"),
                "verdict_reason": edit.get("verdict_reason"), "edited_colour_share": edit.get("edited_colour_share"),
                "preserved_psnr": edit.get("preserved_psnr"), "mesh": edit.get("mesh_source_frame") or edit.get("mesh"),
                "report": edit.get("report"), "error": asset.error, "asset_seconds": float(asset.seconds),
            })  # fmt: skip
    return rows


def summary_table(summary: BatchSummary) -> pa.Table:
    return pa.Table.from_pylist(summary_rows(summary), schema=SUMMARY_SCHEMA)
