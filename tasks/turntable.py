"""The turntable both mesh-making stages (merge, reconstruct) show: a GLB rendered by Blender from an orbit of
8 cameras, as the source was, kept as a GIF and as a strip of frames for the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dreamedit3d_core.evaluate import turntable_strip, write_gif
from dreamedit3d_core.reconstruct import GLB_FRAME
from dreamedit3d_core.render import RenderConfig, render_mesh_file

TURNTABLE_VIEWS = 8


def turntable(glb: Path, render: RenderConfig, scratch: Path) -> tuple[Path, np.ndarray]:
    """(the GIF written under `scratch`, the frames side by side) of `glb` in the pipeline's normalised frame."""
    orbit = render.orbit(TURNTABLE_VIEWS)
    spin = render_mesh_file(glb, orbit.camera_set(), orbit, GLB_FRAME)
    return write_gif(spin.rgba, scratch / "turntable.gif"), turntable_strip(spin.rgba)
