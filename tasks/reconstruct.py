"""Stage `reconstruct` (optional, `reconstruct.enabled`): the paper's last step, the whole object lifted from an
edit's sampled views to a new textured mesh (GLB), and its turntable. The edit's own `mesh` is the merge stage's."""

from __future__ import annotations

import tempfile
from pathlib import Path

from dreamedit3d_core.evaluate import turntable_strip, write_gif
from dreamedit3d_core.reconstruct import GLB_FRAME, reconstruct_views
from dreamedit3d_core.render import render_mesh_file
from tasks.artifacts import CAMERAS, RECONSTRUCTION, RECONSTRUCTION_PREVIEW, RECONSTRUCTION_TURNTABLE, VIEWS
from tasks.running import StageInputs, StageOutputs

TURNTABLE_VIEWS = 8


def reconstruct(inputs: StageInputs, outputs: StageOutputs) -> dict:
    views = inputs.load(VIEWS)
    mesh = reconstruct_views(views.views[0], inputs.load(CAMERAS), inputs.settings("reconstruct"))  # the first sample
    turntable = inputs.settings("render").orbit(TURNTABLE_VIEWS)
    with tempfile.TemporaryDirectory() as scratch:
        glb = mesh.save_glb(Path(scratch) / "mesh.glb")
        spin = render_mesh_file(glb, turntable.camera_set(), turntable, GLB_FRAME)  # Blender, as the source
        outputs.save(RECONSTRUCTION, glb)
        outputs.save(RECONSTRUCTION_TURNTABLE, write_gif(spin.rgba, Path(scratch) / "turntable.gif"))
    outputs.save(RECONSTRUCTION_PREVIEW, turntable_strip(spin.rgba))
    return {"prompt": views.prompt, "vertices": int(len(mesh.vertices)), "faces": int(len(mesh.faces)), **mesh.info}
