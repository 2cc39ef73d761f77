"""Stage `evaluate`: one edit's views and edited asset against the source asset: a metrics table and a report."""

from __future__ import annotations

from dreamedit3d_core.evaluate.edit_evaluation import evaluate_edit
from dreamedit3d_core.evaluate.page import viewer_script
from tasks.artifacts import (
    ASSET,
    ATTENTION_ISOLATION,
    CAMERAS,
    COMPONENT_COLOURS,
    COMPONENTS,
    FINETUNE_ATTENTION_ISOLATION,
    MASKS_PREVIEW,
    MERGE_REPORT,
    MESH,
    MESH_PREVIEW,
    METRICS,
    RECONSTRUCTION,
    REPORT,
    VIEWS,
    rows,
)
from tasks.running import StageInputs, StageOutputs

PHASE_ISOLATION = (("invert", ATTENTION_ISOLATION), ("finetune", FINETUNE_ATTENTION_ISOLATION))


def evaluate(inputs: StageInputs, outputs: StageOutputs) -> dict:
    views = inputs.load(VIEWS)
    # each personalisation phase's attention isolation (none without personalisation)
    isolation = [inputs.load(table) for phase, table in PHASE_ISOLATION if inputs.ran(phase)]
    config = inputs.settings("evaluate")
    result = evaluate_edit(
        title=inputs.asset_id,
        prompt=views.prompt,
        asset_dir=inputs.load(ASSET),
        mesh_glb=inputs.load(MESH),
        sampled_views=views.views[0],  # the first sample, as merged
        cameras=inputs.load(CAMERAS),
        components=inputs.load(COMPONENTS),
        isolation_tables=[rows(table) for table in isolation],
        config=config,
        views_config=inputs.settings("evaluation_views"),
        render_config=inputs.settings("render"),
        masks_preview=inputs.load(MASKS_PREVIEW),
        mesh_preview=inputs.load(MESH_PREVIEW),
        merge_rows=rows(inputs.load(MERGE_REPORT)),
        reconstruction_glb=inputs.load(RECONSTRUCTION) if inputs.ran("reconstruct") else None,
        viewer_js=viewer_script() if config.report_3d else None,
        random_model=inputs.settings("model").source == "tiny",
        preset=inputs.call.preset,
    )
    outputs.save(METRICS, [{"asset_id": inputs.asset_id, **result.metrics}])
    outputs.save(COMPONENT_COLOURS, result.component_colours)
    outputs.save(REPORT, result.report.encode())
    return result.metrics
