"""A shape edit: the sampled silhouette leaves the component's mask, so its geometry is rebuilt from the views.

Whether an edit changes shape is read from the silhouettes: the sampled views' foreground against the
component's mask and the kept components' masks from the same cameras, both grown by a margin (the sampled
views are not pixel-exact). Pixels gained beyond them, or the component's pixels lost, as a share of the
component's own pixels, decide. A gained pixel counts for the component only where it lies nearer to it than
to any kept component: a model that draws the whole object a little off does not make every part a shape edit.

The new geometry is a visual hull of the region the kept components do not explain. A kept component hides
what lies behind it, so where a point projects onto a kept component's pixel behind its surface that view
says nothing about it; elsewhere the point must fall inside the new region in every view, and at least one
view must see it there. Silhouettes cannot tell depth, so the kept components' own volume (and a voxel around
their surface) is cut out of the hull: the new part takes the room they leave, never theirs. What no view can
carve (a slab under a kept part, hidden from every camera) shows nowhere in the new region: pieces of the
surface that no view sees inside the region, in front of the kept components, are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d
import trimesh
from scipy import ndimage

from dreamedit3d_core.geometry.cameras import CameraSet, project_points
from dreamedit3d_core.merge.config import MergeConfig
from dreamedit3d_core.reconstruct.base import surface_from_field, texture_surface
from dreamedit3d_core.reconstruct.config import ReconstructConfig
from dreamedit3d_core.reconstruct.carving import CarveField
from dreamedit3d_core.reconstruct.mesh import ReconstructedMesh
from dreamedit3d_core.reconstruct.raycast import cast_rays
from dreamedit3d_core.reconstruct.views import silhouette_distance

_UNSEEN = np.float32(1e3)  # field value of a point no view sees inside the new region
_FREE = np.float32(-1e3)  # a view that cannot say anything about the point


@dataclass(frozen=True)
class SilhouetteChange:
    gained: float  # sampled foreground beyond the grown component and kept masks, per component pixel
    lost: float  # component pixels beyond the grown sampled foreground, per component pixel

    @property
    def change(self) -> float:
        return max(self.gained, self.lost)


def silhouette_change(
    foreground: np.ndarray, component: np.ndarray, kept: np.ndarray, margin_px: int
) -> SilhouetteChange:
    """How far the sampled `foreground` (V, H, W) leaves the `component`'s mask (V, H, W), all bool; `kept` is
    the union of the kept components' masks."""
    own = max(int(component.sum()), 1)
    structure = ndimage.generate_binary_structure(3, 1)
    structure[0] = structure[2] = False  # grow within each view, never across views
    grow = (lambda m: ndimage.binary_dilation(m, structure, iterations=margin_px)) if margin_px > 0 else (lambda m: m)
    gained = foreground & ~grow(component | kept)
    if kept.any():  # only what lies nearer to this component than to a kept one is its own
        nearer = np.stack([ndimage.distance_transform_edt(~c) < ndimage.distance_transform_edt(~k) if k.any() else np.ones_like(c)
                           for c, k in zip(component, kept, strict=True)])
        gained &= nearer
    lost = component & ~grow(foreground)
    return SilhouetteChange(gained=float(gained.sum()) / own, lost=float(lost.sum()) / own)


def new_region_field(
    region: np.ndarray,
    kept: np.ndarray,
    kept_depth: np.ndarray,
    cameras: CameraSet,
    resolution: int,
    bound: float,
    tolerance: float,
    kept_mesh: trimesh.Trimesh | None = None,
) -> CarveField:
    """Signed field (negative inside) of the visual hull of `region` (V, H, W), with `kept` pixels (V, H, W)
    hiding what lies behind their surface (planar depth `kept_depth`, V x H x W), outside `kept_mesh`."""
    axis = np.linspace(-bound, bound, resolution)
    points = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)  # (N^3, 3)
    field = np.full(len(points), _FREE, dtype=np.float32)
    seen = np.zeros(len(points), dtype=bool)
    size = region.shape[1]
    for view in range(cameras.num_views):
        distance_map = silhouette_distance(region[view])
        uv, depth = project_points(points, cameras.cam2world[view], cameras.K[view])
        cols = np.clip(np.floor(uv[:, 0]).astype(np.int64), 0, size - 1)
        rows = np.clip(np.floor(uv[:, 1]).astype(np.int64), 0, size - 1)
        pixels = ndimage.map_coordinates(distance_map, [uv[:, 1] - 0.5, uv[:, 0] - 0.5], order=1, mode="nearest")
        world = pixels * np.maximum(depth, 1e-6) / cameras.K[view][0, 0]  # pixels -> world units at that depth
        hidden = kept[view][rows, cols] & (depth > kept_depth[view][rows, cols] - tolerance)
        value = np.where(hidden, _FREE, world).astype(np.float32)
        field = np.maximum(field, value)
        seen |= ~hidden & (world < 0)
    field[~seen] = _UNSEEN
    if kept_mesh is not None and len(kept_mesh.faces):
        field[_inside_or_near(kept_mesh, points, margin=axis[1] - axis[0])] = _UNSEEN
    return CarveField(field.reshape(resolution, resolution, resolution), bound)


def _inside_or_near(mesh: trimesh.Trimesh, points: np.ndarray, margin: float) -> np.ndarray:
    """(N,) bool: points inside the mesh (ray parity, voted over 3 rays) or within `margin` of its surface."""
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.asarray(mesh.vertices, np.float32)), o3d.core.Tensor(np.asarray(mesh.faces, np.uint32))
    )
    query = o3d.core.Tensor(points.astype(np.float32))
    inside = scene.compute_occupancy(query, nsamples=3).numpy() > 0.5
    return inside | (scene.compute_distance(query).numpy() < margin)


def rebuild_surface(
    views_rgb: np.ndarray,
    region: np.ndarray,
    kept: np.ndarray,
    kept_depth: np.ndarray,
    cameras: CameraSet,
    config: MergeConfig,
    kept_mesh: trimesh.Trimesh | None = None,
) -> ReconstructedMesh | None:
    """The new geometry of a shape edit, textured from the views (float RGB on white), or None when the views
    leave nothing of it (the component was removed). `kept_mesh` is the kept components' geometry."""
    if not region.any():
        return None
    reconstruct = ReconstructConfig(
        grid_resolution=config.grid_resolution, target_faces=config.target_faces, texture=config.texture
    )
    field = new_region_field(
        region, kept, kept_depth, cameras, config.grid_resolution, reconstruct.bound, config.depth_tolerance, kept_mesh
    )
    if not (field.values < 0).any():
        return None
    surface: trimesh.Trimesh = surface_from_field(field, reconstruct, {})
    surface = _pieces_the_views_show(surface, region, kept, kept_depth, cameras, config.depth_tolerance)
    if surface is None:
        return None
    return texture_surface(surface, views_rgb, region, cameras, reconstruct, {"method": "merge shape edit"})


def _pieces_the_views_show(
    mesh: trimesh.Trimesh, region: np.ndarray, kept: np.ndarray, kept_depth: np.ndarray, cameras: CameraSet, tolerance: float
) -> trimesh.Trimesh | None:
    """The connected pieces of `mesh` of which some view shows at least a fifth inside the new region (in front
    of the kept components and of the rest of the new surface)."""
    pieces = mesh.split(only_watertight=False)
    own_depth = cast_rays([mesh], cameras).depth  # (V, H, W) the new surface hides itself too
    shown = []
    size = region.shape[1]
    for piece in pieces:
        vertices = np.asarray(piece.vertices)
        visible = np.zeros(len(vertices), bool)
        for view in range(cameras.num_views):
            uv, depth = project_points(vertices, cameras.cam2world[view], cameras.K[view])
            cols = np.clip(np.floor(uv[:, 0]).astype(np.int64), 0, size - 1)
            rows = np.clip(np.floor(uv[:, 1]).astype(np.int64), 0, size - 1)
            behind = kept[view][rows, cols] & (depth > kept_depth[view][rows, cols] - tolerance)
            front = np.abs(depth - own_depth[view][rows, cols]) < tolerance
            visible |= region[view][rows, cols] & ~behind & front
        if visible.mean() >= 0.2:
            shown.append(piece)
    return trimesh.util.concatenate(shown) if shown else None


def agreement(
    mesh: ReconstructedMesh, region: np.ndarray, kept: np.ndarray, kept_depth: np.ndarray, cameras: CameraSet
) -> float:
    """How well a rebuilt surface explains the new region: per view the intersection over union of the region
    and the surface's own silhouette where no kept component hides it, averaged over the views."""
    depth = cast_rays([trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)], cameras).depth  # (V, H, W)
    shown = (depth > 0) & ~(kept & (kept_depth > 0) & (kept_depth < depth))
    scores = []
    for view in range(cameras.num_views):
        union = (shown[view] | region[view]).sum()
        scores.append((shown[view] & region[view]).sum() / union if union else 1.0)
    return float(np.mean(scores))
