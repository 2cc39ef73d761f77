"""Stage `render`: the normalised asset in, V views (colour, depth, normals, part ids), cameras, a preview out."""

from __future__ import annotations

from dreamedit3d_core.render import RenderConfig, camera_table, contact_sheet, render_views
from storage import ArtifactWriter
from tasks.images import png_bytes
from tasks.prefect_task import stage_task
from tasks.stage import StagePlan, StageRef, open_artifact, run_stage, upstream_digests

CODE_VERSION = "1"
# How the renderer runs, not what it renders: left out of the artifact key.
EXECUTION_SETTINGS = {"device", "threads", "blender_executable", "timeout_s"}


def plan(store: str, asset: StageRef, config: RenderConfig) -> StagePlan:
    return StagePlan(
        store_uri=store,
        asset_id=asset.asset_id,
        stage="render",
        code_version=CODE_VERSION,
        config=config.model_dump(mode="json", exclude=EXECUTION_SETTINGS),
        inputs=upstream_digests(asset=asset),
    )


@stage_task("render", plan)
def render(store: str, asset: StageRef, config: RenderConfig) -> StageRef:
    stage_plan = plan(store, asset, config)

    def compute(writer: ArtifactWriter) -> dict:
        asset_dir = open_artifact(asset, store).local_path("asset")
        cameras = config.camera_set()
        renders = render_views(asset_dir, cameras, config)
        view_dims = ("view", "y", "x")
        writer.array("renders", "rgba", renders.rgba, dims=(*view_dims, "channel"))
        writer.array("renders", "rgb_white", renders.rgb_white, dims=(*view_dims, "channel"))
        writer.array("renders", "depth", renders.depth, dims=view_dims, attrs={"background": 0.0, "kind": "planar z"})
        writer.array("renders", "normals", renders.normals, dims=(*view_dims, "xyz"), attrs={"frame": "world"})
        writer.array("renders", "part_id", renders.part_id, dims=view_dims, attrs={"background": -1})
        writer.group_attrs("renders", {"image_size": config.image_size, "num_views": renders.num_views})
        writer.table("cameras", camera_table(cameras))
        writer.file("preview", png_bytes(contact_sheet(renders)), filename="renders.png")
        return {"views": renders.num_views, "image_size": renders.image_size, "timings": renders.stats}

    return run_stage(
        stage_plan, compute, items={"renders": "renders", "cameras": "cameras", "renders_preview": "preview"}
    )
