"""Synthetic renders with exact geometry: boxes and spheres ray-cast through the project's cameras.

Every pixel's depth and part id is computed analytically, so the tests know the ground truth the mask
stage must reproduce (and where a 3D point is seen or hidden).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dreamedit3d_core.geometry.cameras import CameraSet, mvdream_orbit, pixel_rays

IMAGE_SIZE = 64


@dataclass(frozen=True)
class Box:
    low: tuple[float, float, float]
    high: tuple[float, float, float]
    part: int

    def hit(self, origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (np.asarray(self.low) - origins) / directions  # (N, 3)
            t2 = (np.asarray(self.high) - origins) / directions
        near = np.nanmax(np.minimum(t1, t2), axis=1)
        far = np.nanmin(np.maximum(t1, t2), axis=1)
        return np.where((near <= far) & (near > 0), near, np.inf)


@dataclass(frozen=True)
class Sphere:
    centre: tuple[float, float, float]
    radius: float
    part: int

    def hit(self, origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
        offset = origins - np.asarray(self.centre)
        b = np.einsum("ij,ij->i", offset, directions)
        c = np.einsum("ij,ij->i", offset, offset) - self.radius**2
        disc = b**2 - c
        t = -b - np.sqrt(np.maximum(disc, 0.0))
        return np.where((disc >= 0) & (t > 0), t, np.inf)


@dataclass(frozen=True)
class Scene:
    rgb: np.ndarray  # (V, H, W, 3) uint8, white background
    depth: np.ndarray  # (V, H, W) float32 planar, 0 background
    part_id: np.ndarray  # (V, H, W) int32, -1 background
    cameras: CameraSet
    parts_table: dict[str, list]


PART_COLOURS = np.array([[200, 40, 40], [40, 160, 40], [40, 40, 200], [200, 160, 40], [120, 40, 160]], np.uint8)


def ray_cast(primitives: list, names: list[str], materials: list[str], image_size: int = IMAGE_SIZE) -> Scene:
    cameras = mvdream_orbit(4, 15.0, 0.0, fov_deg=40.0, image_size=image_size)
    num_views = cameras.num_views
    depth = np.zeros((num_views, image_size, image_size), np.float32)
    part_id = np.full((num_views, image_size, image_size), -1, np.int32)
    for view in range(num_views):
        origins, directions = pixel_rays(cameras.cam2world[view], cameras.K[view], image_size)
        hits = np.stack([primitive.hit(origins, directions) for primitive in primitives])  # (P, H*W)
        nearest = np.argmin(hits, axis=0)
        t = hits[nearest, np.arange(hits.shape[1])]
        seen = np.isfinite(t)
        forward = -cameras.cam2world[view][:3, 2]
        planar = t * (directions @ forward)  # ray length -> distance along the viewing axis
        parts = np.array([primitive.part for primitive in primitives])[nearest]
        depth[view] = np.where(seen, planar, 0.0).reshape(image_size, image_size)  # (H*W,) -> (H, W)
        part_id[view] = np.where(seen, parts, -1).reshape(image_size, image_size)  # (H*W,) -> (H, W)
    rgb = np.where(part_id[..., None] >= 0, PART_COLOURS[np.maximum(part_id, 0) % 5], 255).astype(np.uint8)
    table = {
        "part_id": list(range(len(names))),
        "name": names,
        "num_vertices": [8] * len(names),
        "num_faces": [12] * len(names),
        "surface_area": [1.0] * len(names),
        "bbox_min": [[-1.0, -1.0, -1.0]] * len(names),
        "bbox_max": [[1.0, 1.0, 1.0]] * len(names),
        "material": materials,
    }
    return Scene(rgb, depth, part_id, cameras, table)


# A body box, a head sphere on top, an arm on +X, a small die half sunk into the -X side, and a
# part hidden inside the body.
BODY = Box((-0.45, -0.45, -0.6), (0.45, 0.45, 0.0), part=0)
HEAD = Sphere((0.0, 0.0, 0.3), 0.3, part=1)
ARM = Box((0.45, -0.1, -0.3), (0.75, 0.1, -0.1), part=2)
DIE = Sphere((-0.52, 0.0, -0.45), 0.1, part=3)
HIDDEN = Sphere((0.0, 0.0, -0.3), 0.1, part=4)
PART_NAMES = ["Cube", "Sphere", "Cylinder.001", "d8_die", "fuze_uv"]
