"""Stage `mask`: renders and parts in, one mask per component per view and the components table out."""

from __future__ import annotations

from dreamedit3d_core.geometry.cameras import CameraSet
from dreamedit3d_core.masks import MaskConfig, build_components, mask_preview
from storage import ArtifactWriter
from tasks.images import png_bytes
from tasks.prefect_task import stage_task
from tasks.tables import columns
from tasks.stage import StagePlan, StageRef, open_artifact, run_stage, upstream_digests

CODE_VERSION = "2"


def plan(store: str, asset: StageRef, renders: StageRef, config: MaskConfig) -> StagePlan:
    return StagePlan(
        store_uri=store,
        asset_id=renders.asset_id,
        stage="mask",
        code_version=CODE_VERSION,
        config=config.model_dump(mode="json"),
        inputs=upstream_digests(asset=asset, renders=renders),
    )


@stage_task("mask", plan)
def mask(store: str, asset: StageRef, renders: StageRef, config: MaskConfig) -> StageRef:
    stage_plan = plan(store, asset, renders, config)

    def compute(writer: ArtifactWriter) -> dict:
        rendered = open_artifact(renders, store)
        rgb = rendered.array("renders", "rgb_white")
        cameras = CameraSet.from_columns(rendered.table("cameras").to_pydict())
        parts = open_artifact(asset, store).table("parts").to_pydict()
        components = build_components(
            rgb, rendered.array("renders", "depth"), rendered.array("renders", "part_id"), cameras, parts, config
        )
        writer.array("masks", "masks", components.masks, dims=("component", "view", "y", "x"))
        writer.group_attrs("masks", {"tokens": components.tokens})
        writer.table("components", columns(components.table))
        writer.file("preview", png_bytes(mask_preview(rgb, components.masks, components.tokens)), filename="masks.png")
        return {
            "components": len(components.tokens),
            "tokens": components.tokens,
            "warnings": components.warnings,
            **components.statistics,
        }

    return run_stage(
        stage_plan, compute, items={"masks": "masks", "components": "components", "masks_preview": "preview"}
    )
