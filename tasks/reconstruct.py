"""Stage `reconstruct`: an edit's sampled views in, a textured mesh (GLB) and a turntable preview out."""

from __future__ import annotations

import tempfile
from pathlib import Path

from dreamedit3d_core.evaluate import turntable_strip, write_gif
from dreamedit3d_core.geometry.cameras import CameraSet, orbit_cameras
from dreamedit3d_core.ingest import IngestConfig
from dreamedit3d_core.reconstruct import ReconstructConfig, reconstruct as reconstruct_mesh
from dreamedit3d_core.render import RenderConfig, render_mesh_file
from storage import ArtifactWriter
from tasks.images import png_bytes
from tasks.prefect_task import stage_task
from tasks.stage import StagePlan, StageRef, open_artifact, run_stage, upstream_digests

CODE_VERSION = "1"
TURNTABLE_VIEWS = 8
# The GLB holds the normalised frame as glTF wants it (+Y up); read it back without re-normalising.
GLB_FRAME = IngestConfig(up_axis="+y", normalize=False)


def plan(store: str, renders: StageRef, views: StageRef, config: ReconstructConfig, render_config: RenderConfig) -> StagePlan:
    return StagePlan(
        store_uri=store,
        asset_id=views.asset_id,
        stage="reconstruct",
        code_version=CODE_VERSION,
        config={"reconstruct": config.model_dump(mode="json"), "turntable": _turntable_config(render_config).model_dump(mode="json")},
        inputs=upstream_digests(renders=renders, views=views),
    )


def _turntable_config(render_config: RenderConfig) -> RenderConfig:
    azimuths = [index * 360.0 / TURNTABLE_VIEWS for index in range(TURNTABLE_VIEWS)]
    return render_config.model_copy(update={"azimuths": azimuths})


@stage_task("reconstruct", plan)
def reconstruct(
    store: str, renders: StageRef, views: StageRef, config: ReconstructConfig, render_config: RenderConfig
) -> StageRef:
    stage_plan = plan(store, renders, views, config, render_config)

    def compute(writer: ArtifactWriter) -> dict:
        cameras = CameraSet.from_columns(open_artifact(renders, store).table("cameras").to_pydict())
        sampled_artifact = open_artifact(views, store)
        sampled = sampled_artifact.array("views", "views")[0]  # the first sample: (V, H, W, 3)
        cameras = orbit_cameras(cameras.azimuths, cameras.elevations, fov_deg=cameras.fov_deg, image_size=sampled.shape[1])
        mesh = reconstruct_mesh(sampled, cameras, config)
        turntable = _turntable_config(render_config)
        with tempfile.TemporaryDirectory() as scratch:
            glb = mesh.save_glb(Path(scratch) / "mesh.glb")
            spin = render_mesh_file(glb, turntable.camera_set(), turntable, GLB_FRAME)  # Blender, as the source
            writer.file("mesh", glb, filename="mesh.glb")
            writer.file("turntable", write_gif(spin.rgba, Path(scratch) / "turntable.gif"), filename="turntable.gif")
        writer.file("preview", png_bytes(turntable_strip(spin.rgba)), filename="turntable.png")
        prompt = sampled_artifact.zarr_group("views").attrs["prompt"]
        return {"prompt": prompt, "vertices": int(len(mesh.vertices)), "faces": int(len(mesh.faces)), **mesh.info}

    return run_stage(
        stage_plan, compute, items={"mesh": "mesh", "preview": "preview", "turntable": "turntable"}
    )
