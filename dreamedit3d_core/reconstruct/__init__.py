"""Reconstruct stage: 4 views of the edited asset + their cameras -> a textured mesh (GLB).

    mesh = reconstruct(views, cameras, ReconstructConfig())     # views (V, H, W, 3|4) uint8
    mesh.save_glb(path)                                          # glTF 2.0, PBR base colour texture, +Y up
    render_meshes(mesh.trimesh_world, cameras)                   # unlit re-renders for the metrics

`ReconstructConfig.method`: "visual_hull" (weight-free default) or "lgm" (LGM, weights from a local file).
"""

from dreamedit3d_core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "base": ("Reconstructor",),
        "config": ("ForegroundConfig", "LGMReconstructConfig", "ReconstructConfig", "TextureConfig"),
        "carving": ("CarveField", "carve"),
        "mesh": ("GLB_FRAME", "ReconstructedMesh"),
        "raycast": ("MeshRender", "RayHits", "cast_rays", "render_meshes"),
        "reconstructors": ("make_reconstructor", "reconstruct", "reconstruct_views"),
        "surface": ("EmptyReconstructionError",),
        "views": ("check_views", "foreground_masks", "rgb_on_white"),
        "visual_hull": ("VisualHullReconstructor",),
    },
)
