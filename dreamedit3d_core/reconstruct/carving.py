"""Visual hull by voxel carving: the set of points whose projection falls inside every view's silhouette.

Rather than a 0/1 occupancy, each voxel holds a signed distance: for every view, the pixel distance from the
voxel's projection to the silhouette edge, converted to world units at the voxel's depth; the hull is where
the largest of them (the most restrictive view) is negative. Marching cubes on that continuous field puts
the surface between voxels, so a coarse grid still gives sub-voxel silhouettes.

The field is evaluated on a grid `coarse_factor` times coarser first, upsampled, and recomputed exactly only
near its zero level: the surface band is a few percent of a fine grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dreamedit3d_core.geometry.cameras import CameraSet, project_points
from dreamedit3d_core.reconstruct.views import silhouette_distance

_CHUNK = 1 << 20  # points projected at once: bounds the float64 temporaries of project_points


@dataclass(frozen=True)
class CarveField:
    """Signed distance-like field on a regular grid: negative inside the hull, in world units."""

    values: np.ndarray  # (N, N, N) float32, indexed [x, y, z]
    bound: float  # the grid spans [-bound, bound] on every axis

    @property
    def resolution(self) -> int:
        return int(self.values.shape[0])

    @property
    def spacing(self) -> float:
        return 2.0 * self.bound / (self.resolution - 1)

    def points(self, index: np.ndarray) -> np.ndarray:
        """Grid indices (..., 3) -> world coordinates (..., 3)."""
        return -self.bound + index * self.spacing


class ViewDistances:
    """Per-view signed distances to the silhouette edges, evaluated at any world points."""

    def __init__(self, masks: np.ndarray, cameras: CameraSet) -> None:
        self.cameras = cameras
        self.distance_maps = [silhouette_distance(mask) for mask in masks]

    def per_view(self, points: np.ndarray) -> np.ndarray:
        """(V, N) distances in world units, positive outside the view's silhouette."""
        distances = np.empty((self.cameras.num_views, len(points)), np.float32)
        for start in range(0, len(points), _CHUNK):
            chunk = points[start : start + _CHUNK]
            for view, distance_map in enumerate(self.distance_maps):
                distances[view, start : start + len(chunk)] = self._view(view, distance_map, chunk)
        return distances

    def _view(self, view: int, distance_map: np.ndarray, points: np.ndarray) -> np.ndarray:
        uv, depth = project_points(points, self.cameras.cam2world[view], self.cameras.K[view])
        height, width = distance_map.shape
        cols, rows = uv[:, 0] - 0.5, uv[:, 1] - 0.5  # pixel centres sit at half-integers
        clamped_cols, clamped_rows = np.clip(cols, 0, width - 1), np.clip(rows, 0, height - 1)
        pixels = ndimage.map_coordinates(distance_map, [clamped_rows, clamped_cols], order=1, mode="nearest")
        beyond = np.hypot(cols - clamped_cols, rows - clamped_rows)  # outside the image: keep counting
        focal = self.cameras.K[view][0, 0]
        world = (pixels + beyond) * np.maximum(depth, 1e-6) / focal
        return np.where(depth > 0, world, np.float32(1e3)).astype(np.float32)

    def field(self, points: np.ndarray) -> np.ndarray:
        """(N,) the hull's field: the distance of the most restrictive view."""
        return self.per_view(points).max(axis=0)


def carve(
    masks: np.ndarray,
    cameras: CameraSet,
    resolution: int = 128,
    bound: float = 1.05,
    coarse_factor: int = 4,
) -> CarveField:
    """The visual hull of the silhouettes `masks` (V, H, W) seen by `cameras`, as a field on an N^3 grid."""
    if masks.ndim != 3 or masks.shape[0] != cameras.num_views:
        raise ValueError(f"masks must be (V, H, W) with V = {cameras.num_views}, got shape {masks.shape}")
    distances = ViewDistances(masks, cameras)
    coarse_resolution = max(8, resolution // coarse_factor)
    if coarse_factor == 1 or coarse_resolution >= resolution:
        return CarveField(_evaluate_grid(distances, resolution, bound), bound)
    coarse = _evaluate_grid(distances, coarse_resolution, bound)
    # trilinear upsampling to the fine grid; the field is ~1-Lipschitz, so away from the band its sign is right
    zoom = (resolution - 1) / (coarse_resolution - 1)
    fine_index = np.arange(resolution) / zoom
    grid = np.meshgrid(fine_index, fine_index, fine_index, indexing="ij")
    values = ndimage.map_coordinates(coarse, grid, order=1, mode="nearest").astype(np.float32)
    coarse_spacing = 2.0 * bound / (coarse_resolution - 1)
    band = np.abs(values) < 1.5 * np.sqrt(3.0) * coarse_spacing
    index = np.argwhere(band)  # (M, 3)
    points = -bound + index * (2.0 * bound / (resolution - 1))
    values[band] = distances.field(points)
    return CarveField(values, bound)


def _evaluate_grid(distances: ViewDistances, resolution: int, bound: float) -> np.ndarray:
    axis = np.linspace(-bound, bound, resolution)
    points = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)  # (N^3, 3)
    return distances.field(points).reshape(resolution, resolution, resolution)  # (N^3,) -> (N, N, N)
