"""Stage `render`: the normalised asset in, V views (colour, depth, normals, part ids), cameras, a preview out."""

from __future__ import annotations

from dreamedit3d_core.render import contact_sheet, render_views
from tasks.artifacts import ASSET, CAMERAS, RENDERS, RENDERS_PREVIEW
from tasks.running import StageInputs, StageOutputs


def render(inputs: StageInputs, outputs: StageOutputs) -> dict:
    config = inputs.settings("render")
    cameras = config.camera_set()
    renders = render_views(inputs.load(ASSET), cameras, config)
    outputs.save(RENDERS, renders)
    outputs.save(CAMERAS, cameras)
    outputs.save(RENDERS_PREVIEW, contact_sheet(renders))
    return {"views": renders.num_views, "image_size": renders.image_size, "timings": renders.stats}
