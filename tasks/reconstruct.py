"""Stage `reconstruct` (optional, `reconstruct.enabled`): the paper's last step, the whole object lifted from an
edit's sampled views to a new textured mesh (GLB), and its turntable. The edit's own `mesh` is the merge stage's."""

from __future__ import annotations

import tempfile
from pathlib import Path

from dreamedit3d_core.reconstruct import reconstruct_views
from tasks.artifacts import CAMERAS, RECONSTRUCTION, RECONSTRUCTION_PREVIEW, RECONSTRUCTION_TURNTABLE, VIEWS
from tasks.running import StageInputs, StageOutputs
from tasks.turntable import turntable


def reconstruct(inputs: StageInputs, outputs: StageOutputs) -> dict:
    views = inputs.load(VIEWS)
    mesh = reconstruct_views(views.views[0], inputs.load(CAMERAS), inputs.settings("reconstruct"))  # the first sample
    with tempfile.TemporaryDirectory() as scratch:
        glb = mesh.save_glb(Path(scratch) / "mesh.glb")
        gif, strip = turntable(glb, inputs.settings("render"), Path(scratch))
        outputs.save(RECONSTRUCTION, glb)
        outputs.save(RECONSTRUCTION_TURNTABLE, gif)
    outputs.save(RECONSTRUCTION_PREVIEW, strip)
    return {"prompt": views.prompt, "vertices": int(len(mesh.vertices)), "faces": int(len(mesh.faces)), **mesh.info}
