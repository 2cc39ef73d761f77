"""3D prompts carried into every view: one point on the asset gives a SAM point prompt wherever it is seen.

A point is visible in a view when, at the pixel it projects to, the rendered depth equals its own depth
within a tolerance; a nearer surface there means it is hidden. Seen at a grazing angle, a surface's depth
changes fast from pixel to pixel, so the tolerance grows with the local depth slope times the distance
between the pixel centre and the projected point. Where the projected pixel shows background or a farther
surface (a point on a silhouette, its pixel centre just missing the object), the 3x3 pixels around it
are tried, with the plain tolerance, for one that shows the point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import distance_transform_edt
from scipy.spatial import cKDTree

from dreamedit3d_core.geometry.cameras import CameraSet, project_points, unproject_depth
from dreamedit3d_core.masks.config import SamConfig
from dreamedit3d_core.masks.parts import PartsTable, match_parts

# Centre first, so that a point seen at its own pixel is prompted there.
_WINDOW = [(0, 0)] + [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)]


@dataclass(frozen=True)
class ProjectedPoints:
    pixels: np.ndarray  # (N, V, 2) float: (u, v) centre of the pixel that shows the point; NaN where hidden
    visible: np.ndarray  # (N, V) bool
    surface_distance: np.ndarray  # (N,) distance to the nearest surface point rendered in any view


def depth_slope(depth: np.ndarray) -> np.ndarray:
    """(H, W) depth change per pixel on the surface each pixel shows.

    Of the two one-sided differences along each axis the smaller is kept, so that a depth jump to
    another surface (an occluder's edge) does not count as slope; background neighbours are ignored.
    """

    def along(axis: int) -> np.ndarray:
        forward = np.diff(depth, axis=axis)  # (H, W-1) or (H-1, W): next minus this
        valid = (np.delete(depth, -1, axis) > 0) & (np.delete(depth, 0, axis) > 0)
        forward = np.where(valid, np.abs(forward), np.inf)
        pad_after = [(0, 0), (0, 0)]
        pad_after[axis] = (0, 1)
        pad_before = [(0, 0), (0, 0)]
        pad_before[axis] = (1, 0)
        # this pixel's difference to its next neighbour, and to its previous one
        smallest = np.minimum(
            np.pad(forward, pad_after, constant_values=np.inf), np.pad(forward, pad_before, constant_values=np.inf)
        )
        return np.where(np.isfinite(smallest), smallest, 0.0)

    return np.hypot(along(0), along(1))


def project_surface_points(
    points: np.ndarray, depth: np.ndarray, cameras: CameraSet, tolerance: float
) -> ProjectedPoints:
    """Where each world point (N, 3) is seen in each view of a planar depth render (V, H, W)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)  # (N, 3), a single point too
    num_views, height, width = depth.shape
    pixels = np.full((len(points), num_views, 2), np.nan)
    visible = np.zeros((len(points), num_views), dtype=bool)
    surface_distance = np.full(len(points), np.inf)
    for view in range(num_views):
        view_depth = depth[view].astype(np.float64)
        slope = depth_slope(view_depth)
        uv, point_depth = project_points(points, cameras.cam2world[view], cameras.K[view])
        for index in range(len(points)):
            if point_depth[index] <= 0:
                continue
            centre_row, centre_col = int(np.floor(uv[index, 1])), int(np.floor(uv[index, 0]))
            for step, (dr, dc) in enumerate(_WINDOW):
                row, col = centre_row + dr, centre_col + dc
                if not (0 <= row < height and 0 <= col < width) or view_depth[row, col] <= 0:
                    continue
                # only the pixel the point falls in may stretch the tolerance by the slope: a neighbour
                # may show another surface just beside a silhouette, where slopes are steepest
                offset = np.hypot(col + 0.5 - uv[index, 0], row + 0.5 - uv[index, 1])
                allowed = tolerance + (slope[row, col] * offset if step == 0 else 0.0)
                difference = view_depth[row, col] - point_depth[index]
                if abs(difference) <= allowed:
                    pixels[index, view] = (col + 0.5, row + 0.5)
                    visible[index, view] = True
                    break
                if step == 0 and difference < 0:
                    break  # a nearer surface covers the point: hidden, whatever the neighbours show
        surface = unproject_depth(view_depth, cameras.cam2world[view], cameras.K[view])
        surface = surface[view_depth > 0]  # (M, 3) foreground points of this view
        if len(surface):
            surface_distance = np.minimum(surface_distance, cKDTree(surface).query(points)[0])
    return ProjectedPoints(pixels, visible, surface_distance)


def part_seed_pixels(part_id: np.ndarray, parts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per view, the pixel deepest inside the given parts' mask: (V, 2) (u, v) centres and (V,) visible."""
    num_views = part_id.shape[0]
    pixels = np.full((num_views, 2), np.nan)
    visible = np.zeros(num_views, dtype=bool)
    for view in range(num_views):
        mask = np.isin(part_id[view], parts)
        if not mask.any():
            continue
        # Padding makes the image border count as outside, so the seed keeps away from it too.
        inside = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        row, col = np.unravel_index(int(np.argmax(inside)), mask.shape)
        pixels[view] = (col + 0.5, row + 0.5)
        visible[view] = True
    return pixels, visible


@dataclass(frozen=True)
class ViewPrompt:
    """What SAM gets for one component in one view, in this project's pixel convention."""

    points: np.ndarray  # (N, 2) (u, v)
    labels: np.ndarray  # (N,) 1 = on the component, 0 = not
    box: np.ndarray | None  # (4,) (u0, v0, u1, v1)

    @property
    def anchors(self) -> np.ndarray:
        """(M, 2) where the component was pointed at: its positive points, else the centre of its box."""
        positive = self.points[self.labels == 1]
        if len(positive) or self.box is None:
            return positive
        return np.array([[(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2]])


def gather_view_prompts(
    sam: SamConfig, depth: np.ndarray, part_id: np.ndarray, cameras: CameraSet, table: PartsTable
) -> tuple[list[str], list[list[ViewPrompt | None]], list[str]]:
    """Component names, `prompts[k][v]` (None where component k has nothing to show SAM in view v), warnings.

    Raises ValueError for a 3D point or part seed seen in no view and for per-view prompts that name a
    missing view or fall outside the image.
    """
    names = sam.component_names()
    if not names:
        raise ValueError("mask mode 'sam' needs prompts: set sam.prompts or sam.view_prompts")
    num_views, height, width = depth.shape
    # positives[k][v]: (u, v) points on component k in view v from its 3D points and part seeds; these also
    # serve as negatives for the other components (per-view prompts stay with their own component)
    positives: list[list[list[np.ndarray]]] = [[[] for _ in range(num_views)] for _ in names]
    for k, name in enumerate(names):
        for entry in sam.prompts.get(name, []):
            if isinstance(entry, str):
                pixels, visible = _seed_pixels(name, entry, part_id, table)
            else:
                pixels, visible = _surface_point_pixels(name, entry, depth, cameras, sam.depth_tolerance)
            for view in np.flatnonzero(visible):
                positives[k][view].append(pixels[view])

    prompts: list[list[ViewPrompt | None]] = [[None] * num_views for _ in names]
    warnings: list[str] = []
    for k, name in enumerate(names):
        per_view = sam.view_prompts.get(name, {})
        for view in per_view:
            if view >= num_views:
                raise ValueError(f"SAM view prompt for '{name}' names view {view}, the renders have {num_views}")
        for view in range(num_views):
            points = list(positives[k][view])
            labels = [1] * len(points)
            box = None
            if view in per_view:
                given = per_view[view]
                for u, v in given.points + ([given.box[:2], given.box[2:]] if given.box else []):
                    if not (0 <= u <= width and 0 <= v <= height):
                        raise ValueError(
                            f"SAM view prompt for '{name}' in view {view}: ({u}, {v}) lies outside the "
                            f"{width}x{height} image"
                        )
                points += [np.asarray(point, dtype=np.float64) for point in given.points]
                labels += given.point_labels()
                box = None if given.box is None else np.asarray(given.box, dtype=np.float64)
            if not points and box is None:
                warnings.append(f"SAM component '{name}' has no visible prompt in view {view}: its mask there is empty")
                continue
            if sam.negatives_from_other_components:
                others = [p for other in range(len(names)) if other != k for p in positives[other][view]]
                points += others
                labels += [0] * len(others)
            prompts[k][view] = ViewPrompt(
                points=np.asarray(points, dtype=np.float64).reshape(-1, 2),  # (N, 2), N may be 0 with a box
                labels=np.asarray(labels, dtype=np.int64),
                box=box,
            )
    return names, prompts, warnings


def _surface_point_pixels(
    name: str, point: tuple[float, float, float], depth: np.ndarray, cameras: CameraSet, tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    projected = project_surface_points(np.asarray([point]), depth, cameras, tolerance)
    if not projected.visible[0].any():
        raise ValueError(
            f"SAM prompt for '{name}': point {tuple(point)} lands outside the object: it is visible in no view "
            f"(nearest rendered surface point {projected.surface_distance[0]:.3f} away, tolerance {tolerance})"
        )
    return projected.pixels[0], projected.visible[0]


def _seed_pixels(name: str, pattern: str, part_id: np.ndarray, table: PartsTable) -> tuple[np.ndarray, np.ndarray]:
    parts = match_parts(pattern, table)
    if not parts:
        raise ValueError(f"SAM prompt for '{name}': part {pattern!r} matches no part; the parts are {table.names}")
    pixels, visible = part_seed_pixels(part_id, parts)
    if not visible.any():
        raise ValueError(f"SAM prompt for '{name}': part {pattern!r} is visible in no view")
    return pixels, visible
