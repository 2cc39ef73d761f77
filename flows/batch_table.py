"""The batch summary as a Parquet table: one row per asset, its stages as a list of structs."""

from __future__ import annotations

import json

import pyarrow as pa

from flows.batch_models import BatchSummary

SUMMARY_SCHEMA = pa.schema(
    [
        pa.field("row", pa.int64(), nullable=False),
        pa.field("asset", pa.string(), nullable=False),
        pa.field("asset_id", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("seconds", pa.float64(), nullable=False),
        pa.field("edits", pa.list_(pa.string())),
        pa.field(
            "stages",
            pa.list_(
                pa.struct(
                    [("stage", pa.string()), ("key", pa.string()), ("status", pa.string()), ("seconds", pa.float64())]
                )
            ),
        ),
        pa.field("outputs", pa.string()),  # JSON: artifact noun -> URI, per-edit ones under "edits"
    ]
)


def summary_table(summary: BatchSummary) -> pa.Table:
    """One row per asset, with the stages as a list of structs and the outputs as JSON."""
    rows = [
        {
            "row": a.row,
            "asset": a.asset,
            "asset_id": a.asset_id,
            "status": a.status,
            "error": a.error,
            "seconds": float(a.seconds),
            "edits": a.edits,
            "stages": [{**s, "seconds": float(s["seconds"])} for s in a.stages],
            "outputs": json.dumps(a.outputs),
        }
        for a in summary.assets
    ]
    return pa.Table.from_pylist(rows, schema=SUMMARY_SCHEMA)
