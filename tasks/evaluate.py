"""Stage `evaluate`: one edit's views and mesh against the source asset: a metrics table and an HTML report."""

from __future__ import annotations

import trimesh

from dreamedit3d_core.config import EvaluationViewsConfig
from dreamedit3d_core.evaluate import EvaluateConfig, edit_metrics, turntable_strip
from dreamedit3d_core.evaluate.edit_inputs import isolation_summary, keep_masks
from dreamedit3d_core.evaluate.report import html_report
from dreamedit3d_core.geometry.cameras import CameraSet, orbit_cameras
from dreamedit3d_core.ingest import IngestedAsset
from dreamedit3d_core.evaluate.colour import component_colour_shares, edit_colour_metrics, main_colours
from dreamedit3d_core.mvdiffusion.prompts import edit_phrases
from dreamedit3d_core.reconstruct import ReconstructedMesh
from dreamedit3d_core.render import RenderConfig, render_mesh_file, render_views
from storage import ArtifactWriter
from tasks.prefect_task import stage_task
from tasks.reconstruct import GLB_FRAME
from tasks.stage import StagePlan, StageRef, open_artifact, run_stage, upstream_digests
from tasks.tables import columns

# 4: a component_colours table (every hue, every component); 3: a colour's hue window ends half-way to the
# next hue (brown is not red); 2: colour share
CODE_VERSION = "4"
SOURCE_PROMPT = "a photo of an object"  # what CLIP's directional similarity measures the edit from


def plan(
    store: str,
    asset: StageRef,
    renders: StageRef,
    masks: StageRef,
    tokens: StageRef,
    model: StageRef,
    views: StageRef,
    mesh: StageRef,
    config: EvaluateConfig,
    views_config: EvaluationViewsConfig,
    render_config: RenderConfig,
) -> StagePlan:
    return StagePlan(
        store_uri=store,
        asset_id=views.asset_id,
        stage="evaluate",
        code_version=CODE_VERSION,
        config={
            "evaluate": config.model_dump(mode="json"),
            "views": views_config.model_dump(mode="json"),
            "render": _evaluation_render(render_config, views_config).model_dump(mode="json"),
        },
        inputs=upstream_digests(
            asset=asset, renders=renders, masks=masks, tokens=tokens, model=model, views=views, mesh=mesh
        ),
    )


def _evaluation_render(render_config: RenderConfig, views_config: EvaluationViewsConfig) -> RenderConfig:
    azimuths = [index * 360.0 / views_config.views for index in range(views_config.views)]
    return render_config.model_copy(update={"azimuths": azimuths, "elevation": views_config.elevation})


@stage_task("evaluate", plan)
def evaluate(
    store: str,
    asset: StageRef,
    renders: StageRef,
    masks: StageRef,
    tokens: StageRef,
    model: StageRef,
    views: StageRef,
    mesh: StageRef,
    config: EvaluateConfig,
    views_config: EvaluationViewsConfig,
    render_config: RenderConfig,
) -> StageRef:
    stage_plan = plan(store, asset, renders, masks, tokens, model, views, mesh, config, views_config, render_config)

    def compute(writer: ArtifactWriter) -> dict:
        sampled = open_artifact(views, store)
        prompt = sampled.zarr_group("views").attrs["prompt"]
        sampled_views = sampled.array("views", "views")[0]  # (V, H, W, 3), the first sample
        rendered = open_artifact(renders, store)
        cameras = CameraSet.from_columns(rendered.table("cameras").to_pydict())
        cameras = orbit_cameras(cameras.azimuths, cameras.elevations, fov_deg=cameras.fov_deg, image_size=sampled_views.shape[1])
        asset_dir = open_artifact(asset, store).local_path("asset")
        glb = open_artifact(mesh, store).local_path("mesh")
        components = open_artifact(masks, store).table("components").to_pydict()

        # Source and edit, rendered by the same Blender renderer from the same evaluation cameras.
        evaluation = _evaluation_render(render_config, views_config)
        source = render_views(asset_dir, evaluation.camera_set(), evaluation)
        edited = render_mesh_file(glb, evaluation.camera_set(), evaluation, GLB_FRAME)
        # preserved: every component the prompt does not edit ("<asset0> and <asset1> in green" keeps <asset0>)
        phrases = edit_phrases(prompt)
        edited_components = [components["token"].index(token) for token in phrases if token in components["token"]]
        keep = keep_masks(source.part_id, components["part_ids"], edited_components)
        vertices, faces, _ = IngestedAsset.read(asset_dir).mesh_arrays()
        metrics = edit_metrics(
            cameras,
            sampled_views,
            ReconstructedMesh.load_glb(glb).trimesh_world,
            config,
            source_renders=source.rgba,
            edited_renders=edited.rgba,
            keep_masks=keep,
            source_mesh=trimesh.Trimesh(vertices, faces, process=False),
            source_prompt=SOURCE_PROMPT,
            edit_prompt=prompt,
        )
        metrics.update(
            edit_colour_metrics(
                source.part_id, source.rgb_white, edited.rgba, components["part_ids"], components["token"], phrases
            )
        )
        for phase_ref, item in ((tokens, "attention_isolation"), (model, "attention_isolation")):
            metrics.update(isolation_summary(open_artifact(phase_ref, store).table(item).to_pylist()))
        writer.table("metrics", columns([{"asset_id": views.asset_id, "prompt": prompt, **metrics}]))
        colour_rows = component_colour_shares(
            source.part_id, source.rgb_white, edited.rgba, components["part_ids"], components["token"]
        )
        writer.table("component_colours", columns(colour_rows))
        report = html_report(
            f"{views.asset_id}: {prompt}",
            [
                ("source, rendered from the evaluation cameras", turntable_strip(source.rgb_white)),
                ("components (masks of the training views)", open_artifact(masks, store).local_path("preview").read_bytes()),
                ("sampled views of the edit", turntable_strip(sampled_views)),
                ("reconstructed mesh, same cameras", turntable_strip(edited.rgb_white)),
                ("turntable of the reconstructed mesh", open_artifact(mesh, store).local_path("preview").read_bytes()),
            ],
            metrics,
            notes=[
                f"kept components: {[t for i, t in enumerate(components['token']) if i not in edited_components]}",
                *(f"{token} main colour, source -> result: {change}" for token, change in main_colours(colour_rows).items()),
            ],
        )
        writer.file("report", report.encode(), filename="report.html")
        return {"prompt": prompt, **metrics}

    return run_stage(stage_plan, compute, items={"metrics": "metrics", "component_colours": "component_colours", "report": "report"})
