"""Render stage: Cycles renders (colour, planar depth, normals, part ids) of an ingested asset, in a subprocess."""

from dreamedit3d_core.render.config import RenderConfig
from dreamedit3d_core.render.render import RenderError, render_many, render_mesh_file, render_views
from dreamedit3d_core.render.renders import Renders, camera_table, contact_sheet

__all__ = [
    "RenderConfig",
    "RenderError",
    "Renders",
    "camera_table",
    "contact_sheet",
    "render_many",
    "render_mesh_file",
    "render_views",
]
