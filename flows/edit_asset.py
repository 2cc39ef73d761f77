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

from dreamedit3d_core.config import GPU_STAGES, PER_EDIT_STAGES, STAGES, PipelineConfig
from dreamedit3d_core.mvdiffusion.prompts import check_prompt_tokens
from tasks.evaluate import evaluate
from tasks.finetune import finetune
from tasks.ingest import ingest
from tasks.invert import invert
from tasks.mask import mask
from tasks.reconstruct import reconstruct
from tasks.render import render
from tasks.sample import EditConfig, sample
from tasks.stage import StageRef


class EditResult(BaseModel):
    asset_id: str
    stages: list[StageRef]
    outputs: dict[str, Any]

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


def run_stage_task(stage_task: Any, **kwargs: Any) -> StageRef:
    """Run a stage task here; a result Prefect served from its cache is reported `cached`."""
    state = stage_task(**kwargs, return_state=True)
    ref: StageRef = state.result()
    return ref.as_cached() if state.name == "Cached" else ref


def _run(stage_task: Any, distributed: bool, **kwargs: Any) -> StageRef:
    """Run a stage in this process, or, when distributed, a GPU stage as its own deployment on the gpu pool."""
    if distributed and stage_task.name in GPU_STAGES:
        from flows.deployments import run_stage_remotely

        ref = run_stage_remotely(stage_task.name, kwargs)
    else:
        ref = run_stage_task(stage_task, **kwargs)
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
    seed: int = 0,
    distributed: bool = False,
) -> EditResult:
    """Every stage for one asset, then the per-edit stages once per prompt; stop after `until`.

    `distributed`: the GPU stages run as their own deployments on the `gpu` work pool (see prefect.yaml);
    otherwise everything runs in this process. Both give the same artifacts.
    """
    if until is not None and until not in STAGES:
        raise ValueError(f"unknown stage {until!r}; stages are {', '.join(STAGES)}")
    if until in PER_EDIT_STAGES and not edits:
        raise ValueError(f"stage {until!r} needs at least one edit prompt")
    refs: list[StageRef] = []

    def stage(stage_task: Any, **kwargs: Any) -> StageRef:
        ref = _run(stage_task, distributed, **kwargs)
        refs.append(ref)
        return ref

    asset = stage(ingest, store=store, source=asset_path, config=config.ingest)
    if until == "ingest":
        return _result(refs)
    renders = stage(render, store=store, asset=asset, config=config.render)
    if until == "render":
        return _result(refs)
    masks = stage(mask, store=store, asset=asset, renders=renders, config=config.mask)
    if until == "mask":
        return _result(refs)
    for prompt in edits:  # before the expensive stages: every token an edit names must exist
        check_prompt_tokens(prompt, masks.metadata["tokens"])
    tokens = stage(invert, store=store, renders=renders, masks=masks, model_config=config.model, config=config.invert)
    if until == "invert":
        return _result(refs)
    model = stage(
        finetune,
        store=store,
        renders=renders,
        masks=masks,
        tokens=tokens,
        model_config=config.model,
        config=config.finetune,
    )
    if until == "finetune":
        return _result(refs)
    for prompt in edits:
        edit = EditConfig(prompt=prompt, seed=seed)
        views = stage(
            sample, store=store, renders=renders, model=model, model_config=config.model, edit=edit, config=config.sample,
            masks=masks,
        )
        if until == "sample":
            continue
        mesh = stage(
            reconstruct, store=store, renders=renders, views=views, config=config.reconstruct, render_config=config.render
        )
        if until == "reconstruct":
            continue
        stage(
            evaluate,
            store=store,
            asset=asset,
            renders=renders,
            masks=masks,
            tokens=tokens,
            model=model,
            views=views,
            mesh=mesh,
            config=config.evaluate,
            views_config=config.evaluation_views,
            render_config=config.render,
        )
    result = _result(refs)
    if result.outputs.get("edits") and until is None:
        _publish_summary(result)
    return result


def _publish_summary(result: EditResult) -> None:
    """A Prefect markdown artifact: each edit's metrics and where its mesh and report are."""
    from prefect.artifacts import create_markdown_artifact

    lines = [f"# {result.asset_id}", ""]
    for ref in result.stages:
        if ref.stage != "evaluate":
            continue
        edit = next(e for e in result.outputs["edits"] if e["prompt"] == ref.metadata.get("prompt"))
        lines += [f"## {ref.metadata.get('prompt')}", "", "| metric | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in ref.metadata.items() if name != "prompt"]
        lines += ["", f"mesh: `{edit.get('mesh')}`  ", f"report: `{edit.get('report')}`", ""]
    key = "".join(c if c.isalnum() else "-" for c in f"report-{result.asset_id}".lower())
    create_markdown_artifact(markdown="\n".join(lines), key=key, description=f"DreamEdit3D edits of {result.asset_id}")


def _result(refs: list[StageRef]) -> EditResult:
    """Per-asset artifacts by name; per-edit artifacts in one entry per prompt under `edits`."""
    outputs: dict[str, Any] = {}
    edits: dict[str, dict[str, Any]] = {}
    for ref in refs:
        if ref.stage in PER_EDIT_STAGES:
            prompt = ref.metadata.get("prompt", "")
            edits.setdefault(prompt, {"prompt": prompt}).update(ref.artifacts)
        else:
            outputs.update(ref.artifacts)
    if edits:
        outputs["edits"] = list(edits.values())
    return EditResult(asset_id=refs[0].asset_id, stages=refs, outputs=outputs)
