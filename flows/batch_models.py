"""What a batch returns: one outcome per manifest row, the batch summary, and the failure that carries it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

from prefect.states import State
from pydantic import BaseModel, Field


class AssetOutcome(BaseModel):
    """What happened to one manifest row."""

    row: int
    asset: str
    asset_id: str | None = None
    status: Literal["completed", "failed"]
    error: str | None = None
    seconds: float = 0.0
    edits: list[str] = Field(default_factory=list)
    stages: list[dict[str, Any]] = Field(default_factory=list)  # {stage, key, status, seconds}, as for `edit`
    outputs: dict[str, Any] = Field(default_factory=dict)

    @property
    def verdicts(self) -> list[str | None]:
        """Each edit's verdict (applied, partly applied, not applied, ...; None where there is none)."""
        return [edit.get("verdict") for edit in self.outputs.get("edits", [])]

    def line(self) -> str:
        """One line for the terminal."""
        name = self.asset_id or Path(self.asset).name
        if self.status == "failed":
            return f"{name}: failed after {self.seconds:.1f} s: {self.error}"
        counts = {status: sum(s["status"] == status for s in self.stages) for status in ("computed", "cached")}
        verdicts = ", ".join(v for v in self.verdicts if v)
        return (
            f"{name}: completed in {self.seconds:.1f} s ({counts['computed']} computed, {counts['cached']} cached)"
            + (f"; {verdicts}" if verdicts else "")
        )


class BatchSummary(BaseModel):
    manifest: str
    store: str
    started: dt.datetime
    seconds: float
    assets: list[AssetOutcome]
    preset: str | None = None
    summary_uri: str | None = None  # the Parquet table in the store
    index_uri: str | None = None  # the HTML index in the store

    @property
    def completed(self) -> int:
        return sum(asset.status == "completed" for asset in self.assets)

    @property
    def failed(self) -> int:
        return sum(asset.status == "failed" for asset in self.assets)

    @property
    def message(self) -> str:
        if self.failed:
            return f"{self.failed} of {len(self.assets)} assets failed"
        return f"all {len(self.assets)} assets completed"

    def verdict_counts(self) -> dict[str, int]:
        """How many edits got each verdict, and how many edits the failed assets did not get to."""
        counts: dict[str, int] = {}
        for asset in self.assets:
            for verdict in asset.verdicts if asset.status == "completed" else ["failed"] * max(1, len(asset.edits)):
                counts[verdict or "no verdict"] = counts.get(verdict or "no verdict", 0) + 1
        return counts

    def verdict_line(self) -> str:
        """`edits: 3 applied, 1 not applied, 1 failed`."""
        order = ["applied", "partly applied", "not applied", "noise: random model", "not measured", "no verdict", "failed"]
        counts = self.verdict_counts()
        return "edits: " + ", ".join(f"{counts[v]} {v}" for v in order if counts.get(v))

    def to_json(self) -> dict[str, Any]:
        """The CLI's `--json` object for `batch`."""
        return {
            "preset": self.preset,
            "completed": self.completed,
            "failed": self.failed,
            "verdicts": self.verdict_counts(),
            "assets": [
                {
                    "asset": a.asset,
                    "asset_id": a.asset_id,
                    "row": a.row,
                    "status": a.status,
                    "error": a.error,
                    "stages": a.stages,
                    "outputs": a.outputs,
                }
                for a in self.assets
            ],
            "summary": self.summary_uri,
            "index": self.index_uri,
            "seconds": round(self.seconds, 3),
        }

    def text(self) -> str:
        lines = [f"{self.message} ({self.seconds:.1f} s, preset {self.preset}); {self.verdict_line()}"]
        lines += [f"  row {a.row:<4} {a.status:<9} {a.line()}" for a in self.assets]
        lines += [f"summary: {self.summary_uri}", f"index:   {self.index_uri}"]
        return "\n".join(lines)


class BatchFailed(RuntimeError):
    """Some assets failed: the data of the flow's Failed state, carrying the whole summary."""

    def __init__(self, summary: BatchSummary) -> None:
        super().__init__(summary.message)
        self.summary = summary

    def __reduce__(self) -> tuple[Any, ...]:  # pickled with the summary, not with the message
        return (BatchFailed, (self.summary,))


def batch_summary(state: State) -> BatchSummary:
    """The summary from the final state of an `edit_library` run; re-raises when the batch itself broke."""
    value = state.result(raise_on_failure=False)
    if isinstance(value, BatchSummary):
        return value
    if isinstance(value, BatchFailed):
        return value.summary
    if isinstance(value, BaseException):
        raise value
    raise RuntimeError(f"edit-library ended {state.name} without a summary: {state.message}")
