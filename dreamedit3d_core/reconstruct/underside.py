"""The unseen underside: what the visual hull invents below an object that all views look down on.

Cameras above the object (MVDream's 15 degrees) never see its underside, so every silhouette cone runs on
below the object's lowest visible edge, and the hull grows a keel there: a downward wedge as deep as the
object is wide times tan(elevation). No view constrains it, so nothing is lost by a prior; the one taken
here is the usual resting pose: each separate piece of the hull is cut flat at the height of its lowest
surface point that some view sees (unoccluded, and not edge-on: the cosine between its normal and the view
direction above `min_cosine`). A box gets its flat bottom back; a sphere loses only a cap below the lowest
latitude the cameras see. Raising `min_cosine` cuts higher: more of a large ground plane's slab goes, and
more of a rounded underside with it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from dreamedit3d_core.geometry.cameras import CameraSet, project_points
from dreamedit3d_core.reconstruct.carving import CarveField
from dreamedit3d_core.reconstruct.raycast import cast_rays
from dreamedit3d_core.reconstruct.surface import extract_surface


def visible_vertices(
    vertices: np.ndarray,
    normals: np.ndarray,
    depth: np.ndarray,
    cameras: CameraSet,
    min_cosine: float,
    tolerance: float,
) -> np.ndarray:
    """(N,) bool: vertices some camera sees unoccluded (depth test) and not at a grazing angle."""
    seen = np.zeros(len(vertices), bool)
    size = cameras.image_size
    for view in range(cameras.num_views):
        cam2world = cameras.cam2world[view]
        uv, point_depth = project_points(vertices, cam2world, cameras.K[view])
        to_camera = cam2world[:3, 3] - vertices
        cosine = np.einsum("ij,ij->i", normals, to_camera) / np.linalg.norm(to_camera, axis=1)
        col, row = np.floor(uv[:, 0]).astype(np.int64), np.floor(uv[:, 1]).astype(np.int64)
        inside = (col >= 0) & (col < size) & (row >= 0) & (row < size) & (cosine > min_cosine)
        surface = np.zeros(len(vertices))
        surface[inside] = depth[view][row[inside], col[inside]]
        seen |= inside & (surface > 0) & (np.abs(point_depth - surface) < tolerance)
    return seen


def cut_unseen_underside(field: CarveField, cameras: CameraSet, min_cosine: float = 0.05) -> CarveField:
    """`field` with each connected piece cut flat below its lowest seen surface point."""
    inside = field.values < 0
    labels, count = ndimage.label(inside)
    if count == 0:
        return field
    mesh = extract_surface(field)
    vertices, normals = np.asarray(mesh.vertices), np.asarray(mesh.vertex_normals)
    depth = cast_rays([mesh], cameras).depth
    seen = visible_vertices(vertices, normals, depth, cameras, min_cosine, tolerance=2.0 * field.spacing)
    # each vertex belongs to the piece of the voxel just inside it (a step against its outward normal)
    vertex_piece = np.zeros(len(vertices), np.int64)
    for step in (0.5, 1.0, 1.5, 2.0):
        probe = np.round((vertices - step * field.spacing * normals + field.bound) / field.spacing).astype(np.int64)
        probe = np.clip(probe, 0, field.resolution - 1)
        found = labels[probe[:, 0], probe[:, 1], probe[:, 2]]
        vertex_piece = np.where(vertex_piece == 0, found, vertex_piece)
    heights = field.points(np.arange(field.resolution))  # z of each grid layer
    values = field.values.copy()
    for piece in range(1, count + 1):
        seen_heights = vertices[(vertex_piece == piece) & seen, 2]
        if len(seen_heights) == 0:
            continue
        below = (seen_heights.min() - heights)[None, None, :]  # positive below the cut
        values = np.where(labels == piece, np.maximum(values, below.astype(np.float32)), values)
    return CarveField(values, field.bound)
