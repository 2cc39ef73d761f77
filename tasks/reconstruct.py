"""Stage `reconstruct`: an edit's sampled views in, a textured mesh (GLB) and a turntable preview out."""

from __future__ import annotations

import tempfile
from pathlib import Path

from dreamedit3d_core.evaluate import turntable_strip, write_gif
from dreamedit3d_core.reconstruct import GLB_FRAME, reconstruct_views
from dreamedit3d_core.render import render_mesh_file
from tasks.artifacts import CAMERAS, MESH, MESH_PREVIEW, TURNTABLE, VIEWS
from tasks.running import StageInputs, StageOutputs

TURNTABLE_VIEWS = 8


def reconstruct(inputs: StageInputs, outputs: StageOutputs) -> dict:
    views = inputs.load(VIEWS)
    mesh = reconstruct_views(views.views[0], inputs.load(CAMERAS), inputs.settings("reconstruct"))  # the first sample
    turntable = inputs.settings("render").orbit(TURNTABLE_VIEWS)
    with tempfile.TemporaryDirectory() as scratch:
        glb = mesh.save_glb(Path(scratch) / "mesh.glb")
        spin = render_mesh_file(glb, turntable.camera_set(), turntable, GLB_FRAME)  # Blender, as the source
        outputs.save(MESH, glb)
        outputs.save(TURNTABLE, write_gif(spin.rgba, Path(scratch) / "turntable.gif"))
    outputs.save(MESH_PREVIEW, turntable_strip(spin.rgba))
    return {"prompt": views.prompt, "vertices": int(len(mesh.vertices)), "faces": int(len(mesh.faces)), **mesh.info}
