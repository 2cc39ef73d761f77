"""Reconstruct stage: 4 views of the edited asset + their cameras -> a textured mesh (GLB).

    mesh = reconstruct(views, cameras, ReconstructConfig())     # views (V, H, W, 3|4) uint8
    mesh.save_glb(path)                                          # glTF 2.0, PBR base colour texture, +Y up
    render_meshes(mesh.trimesh_world, cameras)                   # unlit re-renders for the metrics

`ReconstructConfig.method`: "visual_hull" (weight-free default) or "lgm" (LGM, weights from a local file).
"""

from dreamedit3d_core.reconstruct.base import Reconstructor
from dreamedit3d_core.reconstruct.config import (
    ForegroundConfig,
    LGMReconstructConfig,
    ReconstructConfig,
    TextureConfig,
)
from dreamedit3d_core.reconstruct.hull import CarveField, carve
from dreamedit3d_core.reconstruct.mesh import GLB_FRAME, ReconstructedMesh
from dreamedit3d_core.reconstruct.raycast import MeshRender, RayHits, cast_rays, render_meshes
from dreamedit3d_core.reconstruct.stage import make_reconstructor, reconstruct, reconstruct_views
from dreamedit3d_core.reconstruct.surface import EmptyReconstructionError
from dreamedit3d_core.reconstruct.views import check_views, foreground_masks, rgb_on_white
from dreamedit3d_core.reconstruct.visual_hull import VisualHullReconstructor

__all__ = [
    "GLB_FRAME",
    "CarveField",
    "EmptyReconstructionError",
    "ForegroundConfig",
    "LGMReconstructConfig",
    "MeshRender",
    "RayHits",
    "ReconstructConfig",
    "ReconstructedMesh",
    "Reconstructor",
    "TextureConfig",
    "VisualHullReconstructor",
    "carve",
    "cast_rays",
    "check_views",
    "foreground_masks",
    "make_reconstructor",
    "reconstruct",
    "reconstruct_views",
    "render_meshes",
    "rgb_on_white",
]
