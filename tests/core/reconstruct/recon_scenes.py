"""Synthetic views with exact geometry: analytic spheres and boxes, coloured by position, ray cast through
the project's cameras (cameras.pixel_rays). The same shapes as trimesh meshes serve as ground truth."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import trimesh

from dreamedit3d_core.geometry.cameras import CameraSet, mvdream_orbit, orbit_cameras, pixel_rays

RED = np.array([220, 40, 40], np.uint8)
BLUE = np.array([40, 40, 220], np.uint8)
Colouring = Callable[[np.ndarray], np.ndarray]  # (N, 3) surface points -> (N, 3) uint8 colours


def red_plus_x(points: np.ndarray) -> np.ndarray:
    """Red where x > 0, blue elsewhere."""
    return np.where(points[:, :1] > 0, RED, BLUE)


def grey(points: np.ndarray) -> np.ndarray:
    return np.full((len(points), 3), 150, np.uint8)


@dataclass(frozen=True)
class Sphere:
    centre: tuple[float, float, float]
    radius: float

    def hit(self, origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
        offset = origins - np.asarray(self.centre)
        b = np.einsum("ij,ij->i", offset, directions)
        c = np.einsum("ij,ij->i", offset, offset) - self.radius**2
        disc = b**2 - c
        t = -b - np.sqrt(np.maximum(disc, 0.0))
        return np.where((disc >= 0) & (t > 0), t, np.inf)

    def mesh(self) -> trimesh.Trimesh:
        return trimesh.creation.icosphere(subdivisions=5, radius=self.radius).apply_translation(self.centre)


@dataclass(frozen=True)
class Box:
    low: tuple[float, float, float]
    high: tuple[float, float, float]

    def hit(self, origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (np.asarray(self.low) - origins) / directions  # (N, 3)
            t2 = (np.asarray(self.high) - origins) / directions
        near = np.nanmax(np.minimum(t1, t2), axis=1)
        far = np.nanmin(np.maximum(t1, t2), axis=1)
        return np.where((near <= far) & (near > 0), near, np.inf)

    def mesh(self) -> trimesh.Trimesh:
        low, high = np.asarray(self.low), np.asarray(self.high)
        return trimesh.creation.box(extents=high - low).apply_translation((low + high) / 2)


@dataclass(frozen=True)
class Views:
    rgb: np.ndarray  # (V, H, W, 3) uint8 on white
    alpha: np.ndarray  # (V, H, W) bool
    depth: np.ndarray  # (V, H, W) planar, 0 background
    cameras: CameraSet

    @property
    def rgba(self) -> np.ndarray:
        return np.concatenate([self.rgb, (self.alpha * 255).astype(np.uint8)[..., None]], axis=-1)


def ray_cast(shapes: list, cameras: CameraSet, colouring: Colouring = grey) -> Views:
    size = cameras.image_size
    shape = (cameras.num_views, size, size)
    rgb = np.full((*shape, 3), 255, np.uint8)
    depth = np.zeros(shape, np.float32)
    for view in range(cameras.num_views):
        origins, directions = pixel_rays(cameras.cam2world[view], cameras.K[view], size)
        t = np.min(np.stack([s.hit(origins, directions) for s in shapes]), axis=0)  # (H*W,)
        seen = np.isfinite(t)
        points = origins[seen] + t[seen, None] * directions[seen]
        colours = np.full((size * size, 3), 255, np.uint8)
        colours[seen] = colouring(points)
        forward = -cameras.cam2world[view][:3, 2]
        planar = np.where(seen, t * (directions @ forward), 0.0)
        rgb[view] = colours.reshape(size, size, 3)  # (H*W, 3) -> (H, W, 3)
        depth[view] = planar.reshape(size, size)
    return Views(rgb, depth > 0, depth, cameras)


def input_cameras(size: int = 64) -> CameraSet:
    return mvdream_orbit(4, 15.0, 0.0, fov_deg=40.0, image_size=size)


def held_out_cameras(size: int = 64) -> CameraSet:
    """Views the reconstruction never sees: azimuths 45 + k*90 at elevations 0 and 30."""
    azimuths = [45.0 + 90.0 * k for k in range(4)] * 2
    return orbit_cameras(azimuths, [0.0] * 4 + [30.0] * 4, fov_deg=40.0, image_size=size)


def iou(mask_a: np.ndarray, mask_b: np.ndarray) -> float:
    return float((mask_a & mask_b).sum() / (mask_a | mask_b).sum())
