"""Which component every face of the source asset belongs to.

Components made of parts (the `parts` mask mode, or parts grouped by the config) own their parts' faces.
Components that are regions of a mesh (Segment Anything masks) own the faces whose centres they see: every
face centre is projected into the views that see it (its depth agrees with the render's depth there) and
votes for the component whose mask holds that pixel; faces no view sees take the component of the nearest
voted face of their part.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial import cKDTree

from dreamedit3d_core.geometry.cameras import CameraSet, project_points
from dreamedit3d_core.ingest import IngestedAsset

NO_COMPONENT = -1


def face_components(
    asset: IngestedAsset,
    component_parts: Sequence[Sequence[int]],
    cameras: CameraSet,
    depth: np.ndarray,
    masks: np.ndarray,
    depth_tolerance: float = 0.02,
) -> list[np.ndarray]:
    """Per part, (F,) int component index of each face (-1: none).

    `component_parts[k]` lists the part ids of component k (empty for a region component); `depth` (V, H, W)
    is the render's planar depth (0 on background) and `masks` (K, V, H, W) the components' masks, both seen
    by `cameras`."""
    owners = [np.full(len(part.faces), NO_COMPONENT, dtype=np.int64) for part in asset.parts]
    for component, parts in enumerate(component_parts):
        for part in parts:
            owners[part][:] = component
    regions = [k for k, parts in enumerate(component_parts) if not parts]
    if not regions:
        return owners
    for part_index, part in enumerate(asset.parts):
        free = owners[part_index] == NO_COMPONENT
        if free.any():
            owners[part_index][free] = _vote(part.vertices, part.faces[free], cameras, depth, masks, regions, depth_tolerance)
    return owners


def _vote(
    vertices: np.ndarray,
    faces: np.ndarray,
    cameras: CameraSet,
    depth: np.ndarray,
    masks: np.ndarray,
    regions: Sequence[int],
    tolerance: float,
) -> np.ndarray:
    centres = vertices[faces].astype(np.float64).mean(axis=1)  # (F, 3)
    votes = np.zeros((len(faces), len(regions)), dtype=np.int64)
    size = depth.shape[1]
    for view in range(cameras.num_views):
        uv, z = project_points(centres, cameras.cam2world[view], cameras.K[view])
        col, row = np.floor(uv[:, 0]).astype(np.int64), np.floor(uv[:, 1]).astype(np.int64)
        inside = (col >= 0) & (col < size) & (row >= 0) & (row < size) & (z > 0)
        index = np.flatnonzero(inside)
        surface = depth[view][row[index], col[index]]
        seen = index[(surface > 0) & (np.abs(z[index] - surface) < tolerance)]
        for slot, component in enumerate(regions):
            votes[seen, slot] += masks[component, view][row[seen], col[seen]]
    voted = votes.sum(axis=1) > 0
    result = np.full(len(faces), NO_COMPONENT, dtype=np.int64)
    result[voted] = np.asarray(regions)[votes[voted].argmax(axis=1)]
    if voted.any() and not voted.all():  # unseen faces: the component of the nearest seen face
        _, nearest = cKDTree(centres[voted]).query(centres[~voted])
        result[~voted] = result[voted][nearest]
    return result
