"""What a run would do, before it does it: per asset and stage, cached or to compute, and how long the rest
should take (`dreamedit3d plan`, `edit --dry-run`).

A stage's key depends on the digests of the artifacts it reads, so the plan walks the stages in order: a
stage whose key is committed is cached and its artifact feeds the next key; after the first stage to compute,
every later one is to compute too (its key cannot be known before its inputs exist). Expected times are the
median of the ledger's past computed runs of the same stage with the same cost profile in the store: the same
model and the same settings of the stage (`tasks.stage.cost_profile`), so a `world` edit is never estimated from
`tiny` runs; "unknown" without such history.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dreamedit3d_core.config import PipelineConfig
from dreamedit3d_core.mvdiffusion import EditConfig
from storage import ArtifactStore
from tasks.catalog import EDIT
from tasks.running import cached_ref
from tasks.stage import StageRef, cost_profile


class PromptError(ValueError):
    """An edit names a token the asset's (cached) components do not have."""


@dataclass(frozen=True)
class PlannedStage:
    asset: str
    stage: str
    prompt: str | None  # for the per-edit stages
    status: str  # "cached" or "to compute"
    expected_seconds: float | None  # median of past runs; None: no history


def typical_seconds(store: str) -> dict[tuple[str, str], float]:
    """Median seconds of the ledger's computed runs, per stage and cost profile (rows written before profiles
    were recorded have none and are left out)."""
    rows = ArtifactStore(store).ledger.read().select(["stage", "status", "seconds", "details"]).to_pylist()
    times: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        profile = json.loads(row["details"]).get("profile") if row["details"] else None
        if row["status"] == "computed" and profile:
            times.setdefault((row["stage"], profile), []).append(row["seconds"])
    return {cell: statistics.median(seconds) for cell, seconds in times.items()}


def plan_asset(
    asset_path: str,
    edits: Sequence[str],
    store: str,
    config: PipelineConfig,
    seed: int = 0,
    typical: dict[tuple[str, str], float] | None = None,
) -> list[PlannedStage]:
    """The edit of one asset, stage by stage, as `edit_asset` would run it (nothing is computed). Where the
    components are already cached, an edit naming a token the asset does not have is refused here (ValueError)."""
    typical = typical_seconds(store) if typical is None else typical
    planned: list[PlannedStage] = []
    refs: dict[str, StageRef] = {}  # the asset's stages
    edit_refs: dict[str, dict[str, StageRef]] = {}  # per edit: the asset's stages and that edit's own
    asset_blocked = False  # an asset stage to compute: what follows cannot be keyed yet
    blocked: dict[str, bool] = {}  # per edit, the same for its own stages
    for stage, prompt in EDIT.walk(config, edits):
        call_refs = refs if prompt is None else edit_refs.setdefault(prompt, dict(refs))
        stopped = asset_blocked if prompt is None else blocked.setdefault(prompt, asset_blocked)
        edit = None if prompt is None else EditConfig(prompt=prompt, seed=seed)
        call = EDIT.call(stage, store=store, config=config, upstream=call_refs, source=asset_path, edit=edit, allow_missing=stopped)
        ref = None if stopped else cached_ref(stage, call)
        if ref is not None:
            call_refs[stage.name] = ref
        expected = 0.0 if ref else typical.get((stage.name, cost_profile(stage, call)))
        planned.append(PlannedStage(asset_path, stage.name, prompt, "cached" if ref else "to compute", expected))
        if ref is not None and stage.check_edits is not None:  # the components are known: is every token one?
            try:
                stage.check_edits(ref, edits)
            except ValueError as error:
                raise PromptError(str(error)) from None
        if ref is None:
            if prompt is None:
                asset_blocked = True
            else:
                blocked[prompt] = True
    return planned


def remaining_seconds(planned: Sequence[PlannedStage]) -> tuple[float, int]:
    """Expected seconds of the stages to compute, and how many of them have no history."""
    todo = [stage for stage in planned if stage.status == "to compute"]
    return sum(stage.expected_seconds or 0.0 for stage in todo), sum(stage.expected_seconds is None for stage in todo)


def plan_text(planned: Sequence[PlannedStage]) -> str:
    """The plan as `dreamedit3d plan` prints it: a line per asset and stage, then what is left and how long."""
    from tasks.progress import duration

    lines = [f"{'asset':<28} {'stage':<12} {'status':<11} expected   edit"]
    for entry in planned:
        expected = "-" if entry.status == "cached" else ("unknown" if entry.expected_seconds is None else duration(entry.expected_seconds))
        lines.append(f"{Path(entry.asset).name[:28]:<28} {entry.stage:<12} {entry.status:<11} {expected:<10} {entry.prompt or ''}")
    seconds, unknown = remaining_seconds(planned)
    todo = sum(entry.status == "to compute" for entry in planned)
    if todo and unknown == todo:
        estimate = "time unknown (no past runs of these stages in this store)"
    else:
        estimate = f"about {duration(seconds)}" + (f" ({unknown} without past runs to go by)" if unknown else "")
    lines.append(f"{todo} of {len(planned)} stages to compute, {estimate}")
    return "\n".join(lines)
