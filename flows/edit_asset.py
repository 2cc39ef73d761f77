"""`edit_asset`: one asset and a list of edit prompts through every stage, as a Prefect flow.

Plain Python wiring: each stage is a task returning a `StageRef`; a stage whose artifact is committed
returns at once (Prefect reports it Cached), so a second run costs nothing and a crashed run resumes at
the stage that crashed. `until` stops after a stage (the CLI's per-stage commands use it).
"""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow
from pydantic import BaseModel

from dreamedit3d_core.config import STAGES, PipelineConfig
from tasks.ingest import ingest
from tasks.mask import mask
from tasks.render import render
from tasks.stage import StageRef


class EditResult(BaseModel):
    asset_id: str
    stages: list[StageRef]
    outputs: dict[str, str]

    def summary(self) -> dict[str, Any]:
        """The CLI's `--json` object for `edit`."""
        return {
            "asset_id": self.asset_id,
            "stages": [
                {"stage": ref.stage, "key": ref.key, "status": ref.status, "seconds": ref.seconds}
                for ref in self.stages
            ],
            "outputs": self.outputs,
        }


def _run(stage_task: Any, **kwargs: Any) -> StageRef:
    """Run a stage task; a result Prefect served from its cache is reported `cached`."""
    state = stage_task(**kwargs, return_state=True)
    ref: StageRef = state.result()
    ref = ref.as_cached() if state.name == "Cached" else ref
    # One line per stage on stderr, so a person can follow a long run; stdout stays for --json.
    sys.stderr.write(f"[{ref.asset_id}] {ref.stage:<11} {ref.status:<8} {ref.seconds:6.1f} s\n")
    sys.stderr.flush()
    return ref


@flow(name="edit-asset", log_prints=True)
def edit_asset(
    asset_path: str,
    edits: list[str],
    store: str,
    config: PipelineConfig,
    until: str | None = None,
) -> EditResult:
    if until is not None and until not in STAGES:
        raise ValueError(f"unknown stage {until!r}; stages are {', '.join(STAGES)}")
    refs: list[StageRef] = []

    def done(ref: StageRef) -> bool:
        refs.append(ref)
        return ref.stage == until

    asset = _run(ingest, store=store, source=asset_path, config=config.ingest)
    if done(asset):
        return _result(refs)
    renders = _run(render, store=store, asset=asset, config=config.render)
    if done(renders):
        return _result(refs)
    masks = _run(mask, store=store, asset=asset, renders=renders, config=config.mask)
    done(masks)
    return _result(refs)


def _result(refs: list[StageRef]) -> EditResult:
    outputs: dict[str, str] = {}
    for ref in refs:
        outputs.update(ref.artifacts)
    return EditResult(asset_id=refs[0].asset_id, stages=refs, outputs=outputs)
