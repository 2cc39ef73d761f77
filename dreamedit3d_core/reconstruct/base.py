"""The reconstructor interface, and the steps every reconstructor shares once it has a 3D field.

A reconstructor turns V views and their cameras into a `ReconstructedMesh`. Learned ones (LGM, GTR,
InstantMesh) predict a field or a surface differently but finish the same way: marching cubes, debris
removal, smoothing, decimation, UV unwrap and a texture baked from the views themselves (the views are the
sharpest colour evidence there is).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

import numpy as np
import trimesh

from dreamedit3d_core.geometry.cameras import CameraSet
from dreamedit3d_core.reconstruct.config import ReconstructConfig
from dreamedit3d_core.reconstruct.carving import CarveField
from dreamedit3d_core.reconstruct.mesh import ReconstructedMesh
from dreamedit3d_core.reconstruct.surface import (
    decimate,
    drop_degenerate_faces,
    extract_surface,
    keep_large_components,
    smooth,
)
from dreamedit3d_core.reconstruct.texture import FallbackColours, bake_texture, unwrap


class Reconstructor(ABC):
    """Views (V, H, W, 3|4) + cameras -> textured mesh."""

    name: str = "reconstructor"

    @abstractmethod
    def reconstruct(
        self, views: np.ndarray, cameras: CameraSet, config: ReconstructConfig | None = None
    ) -> ReconstructedMesh:
        """Views are uint8 (or float in [0, 1]) RGB on white or RGBA; bad input raises ValueError."""


def surface_from_field(field: CarveField, config: ReconstructConfig, timings: dict[str, float]) -> trimesh.Trimesh:
    """Marching cubes, then debris removal, decimation to `config.target_faces` and Taubin smoothing."""
    start = time.perf_counter()
    mesh = extract_surface(field)
    mesh = keep_large_components(mesh, config.min_component_fraction)
    timings["marching_cubes_s"] = time.perf_counter() - start
    start = time.perf_counter()
    # decimate first: open3d's quadric decimation can take minutes on a smoothed thin slab (TestScene's
    # ground plane), while on the marching-cubes mesh it takes a fraction of a second
    mesh = decimate(mesh, config.target_faces)
    mesh = smooth(mesh, config.smoothing_iterations)
    mesh = drop_degenerate_faces(mesh)
    mesh.fix_normals()
    timings["clean_up_s"] = time.perf_counter() - start
    return mesh


def texture_surface(
    mesh: trimesh.Trimesh,
    views_rgb: np.ndarray,
    masks: np.ndarray,
    cameras: CameraSet,
    config: ReconstructConfig,
    info: dict[str, float | int | str],
    fallback: FallbackColours | None = None,
) -> ReconstructedMesh:
    """UV-unwraps `mesh` and bakes the views (float RGB on white) into its texture."""
    start = time.perf_counter()
    unwrapped = unwrap(mesh, config.texture.size)
    info["unwrap_s"] = time.perf_counter() - start
    start = time.perf_counter()
    tolerance = config.texture.depth_tolerance_voxels * config.voxel_size
    baked = bake_texture(mesh, unwrapped, views_rgb, masks, cameras, config.texture, tolerance, fallback)
    info["bake_s"] = time.perf_counter() - start
    info["texture_seen_fraction"] = baked.seen_fraction
    info["num_faces"] = int(len(unwrapped.faces))
    info["num_vertices"] = int(len(unwrapped.vertices))
    info["watertight"] = str(bool(mesh.is_watertight))
    return ReconstructedMesh(
        vertices=unwrapped.vertices.astype(np.float32),
        faces=unwrapped.faces,
        uvs=unwrapped.uvs.astype(np.float32),
        normals=unwrapped.normals.astype(np.float32),
        texture=baked.texture,
        info=info,
    )
