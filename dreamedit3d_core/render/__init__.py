"""Render stage: Cycles renders (colour, planar depth, normals, part ids) of an ingested asset, in a subprocess."""

from dreamedit3d_core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "config": ("RenderConfig",),
        "render": ("RenderError", "render_many", "render_mesh_file", "render_views"),
        "renders": ("Renders", "camera_table", "contact_sheet"),
    },
)
