"""Cameras in MVDream's convention, shared by the render stage and the multi-view diffusion model.

World frame: the normalised asset (centred, unit bounding sphere, +Z up), i.e. Blender's axes.
Camera frame: OpenGL / Blender (the camera looks down its local -Z, +Y is up in the image, +X right).

MVDream builds its 16-number camera condition as follows (`get_camera` in the reference code):
  1. a camera-to-world matrix in OpenGL world axes (+Y up) on the unit sphere, looking at the origin:
     position (cos(e) sin(a), sin(e), cos(e) cos(a)), columns [right, up, -forward];
  2. converted to Blender world axes (+Z up) by left-multiplying `flip_yz`;
  3. its translation normalised to unit length, then flattened row-major.
So azimuth 0 looks from -Y towards +Y (Blender's "front"), and azimuth 90 looks from +X.

Pixels: (u, v) with the origin at the top-left corner of the image, u to the right, v downwards,
pixel centres at half-integers. Depth is planar: the distance along the camera's viewing axis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# OpenGL world (+Y up) -> Blender world (+Z up): (x, y, z) -> (x, -z, y).
FLIP_YZ = np.array(
    [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)


def look_at_opengl(elevation_deg: float, azimuth_deg: float) -> np.ndarray:
    """Camera-to-world (4, 4) on the unit sphere in OpenGL world axes, looking at the origin."""
    elevation, azimuth = np.radians(elevation_deg), np.radians(azimuth_deg)
    position = np.array(
        [np.cos(elevation) * np.sin(azimuth), np.sin(elevation), np.cos(elevation) * np.cos(azimuth)]
    )
    forward = -position / np.linalg.norm(position)
    right = np.cross(forward, np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    up /= np.linalg.norm(up)
    cam2world = np.eye(4)
    cam2world[:3, :3] = np.stack([right, up, -forward], axis=1)
    cam2world[:3, 3] = position
    return cam2world


def camera_to_world(elevation_deg: float, azimuth_deg: float, distance: float = 1.0) -> np.ndarray:
    """Camera-to-world (4, 4) in Blender world axes at `distance` from the origin."""
    cam2world = FLIP_YZ @ look_at_opengl(elevation_deg, azimuth_deg)
    cam2world[:3, 3] *= distance
    return cam2world


def mvdream_camera_vector(cam2world: np.ndarray) -> np.ndarray:
    """MVDream's 16-number camera condition: translation normalised to unit length, row-major."""
    matrix = np.array(cam2world, dtype=np.float64).reshape(4, 4).copy()
    translation = matrix[:3, 3]
    matrix[:3, 3] = translation / (np.linalg.norm(translation) + 1e-8)
    return matrix.reshape(16).astype(np.float32)


def intrinsics(fov_deg: float, image_size: int) -> np.ndarray:
    """Pinhole K (3, 3) in pixels for a square image with the given (full, horizontal) field of view."""
    focal = 0.5 * image_size / np.tan(0.5 * np.radians(fov_deg))
    return np.array([[focal, 0.0, 0.5 * image_size], [0.0, focal, 0.5 * image_size], [0.0, 0.0, 1.0]])


def distance_to_fit_unit_sphere(fov_deg: float, margin: float = 1.1) -> float:
    """Camera distance at which a unit sphere (times `margin`) exactly fills the field of view."""
    return margin / np.sin(0.5 * np.radians(fov_deg))


@dataclass(frozen=True)
class CameraSet:
    """V cameras looking at the origin: the geometry every view-producing stage agrees on."""

    elevations: np.ndarray  # (V,) degrees
    azimuths: np.ndarray  # (V,) degrees
    cam2world: np.ndarray  # (V, 4, 4) Blender world axes
    K: np.ndarray  # (V, 3, 3) pixels
    fov_deg: float
    image_size: int

    @property
    def num_views(self) -> int:
        return int(self.cam2world.shape[0])

    @classmethod
    def from_columns(cls, columns: Mapping[str, Sequence]) -> CameraSet:
        """Rebuild from a camera table (the render stage's `cameras`: one row per view)."""
        return cls(
            elevations=np.asarray(columns["elevation"], dtype=np.float64),
            azimuths=np.asarray(columns["azimuth"], dtype=np.float64),
            cam2world=np.asarray([np.asarray(m, dtype=np.float64).reshape(4, 4) for m in columns["cam2world"]]),
            K=np.asarray([np.asarray(k, dtype=np.float64).reshape(3, 3) for k in columns["K"]]),
            fov_deg=float(columns["fov_deg"][0]),
            image_size=int(columns["image_size"][0]),
        )

    def resized(self, image_size: int) -> CameraSet:
        """The same cameras for images of another size (e.g. sampled views at the model's resolution)."""
        K = np.broadcast_to(intrinsics(self.fov_deg, image_size), self.K.shape).copy()
        return CameraSet(self.elevations, self.azimuths, self.cam2world, K, self.fov_deg, int(image_size))

    def mvdream_vectors(self) -> np.ndarray:
        """(V, 16) float32 camera conditions for the multi-view UNet."""
        return np.stack([mvdream_camera_vector(m) for m in self.cam2world])


def orbit_cameras(
    azimuths_deg: list[float] | np.ndarray,
    elevations_deg: float | list[float] | np.ndarray,
    *,
    fov_deg: float,
    image_size: int,
    distance: float | None = None,
) -> CameraSet:
    """Cameras on an orbit around the origin; one elevation for all or one per azimuth."""
    azimuths = np.asarray(azimuths_deg, dtype=np.float64).reshape(-1)
    elevations = np.broadcast_to(np.asarray(elevations_deg, dtype=np.float64), azimuths.shape).copy()
    if distance is None:
        distance = distance_to_fit_unit_sphere(fov_deg)
    cam2world = np.stack([camera_to_world(e, a, distance) for e, a in zip(elevations, azimuths)])
    K = np.broadcast_to(intrinsics(fov_deg, image_size), (len(azimuths), 3, 3)).copy()
    return CameraSet(elevations, azimuths, cam2world, K, float(fov_deg), int(image_size))


def mvdream_orbit(
    num_views: int = 4,
    elevation_deg: float = 15.0,
    azimuth_start_deg: float = 0.0,
    *,
    fov_deg: float = 40.0,
    image_size: int = 256,
) -> CameraSet:
    """MVDream's `get_camera(num_views, elevation, azimuth_start)`: evenly spaced azimuths."""
    azimuths = azimuth_start_deg + np.arange(num_views) * (360.0 / num_views)
    return orbit_cameras(azimuths, elevation_deg, fov_deg=fov_deg, image_size=image_size)


def project_points(points: np.ndarray, cam2world: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points (N, 3) -> pixel coordinates (N, 2) as (u, v) and planar depth (N,)."""
    world2cam = np.linalg.inv(cam2world)
    homogeneous = np.concatenate([points, np.ones((len(points), 1))], axis=1)  # (N, 4)
    cam = (world2cam @ homogeneous.T).T[:, :3]  # (N, 3) camera frame, looking down -Z
    depth = -cam[:, 2]
    safe = np.where(np.abs(depth) < 1e-12, 1e-12, depth)
    u = K[0, 0] * cam[:, 0] / safe + K[0, 2]
    v = K[1, 2] - K[1, 1] * cam[:, 1] / safe  # image v grows downwards
    return np.stack([u, v], axis=1), depth


def pixel_rays(cam2world: np.ndarray, K: np.ndarray, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Ray origins and unit directions (H*W, 3) through pixel centres, row-major from the top-left."""
    v, u = np.meshgrid(np.arange(image_size) + 0.5, np.arange(image_size) + 0.5, indexing="ij")
    x = (u - K[0, 2]) / K[0, 0]
    y = (K[1, 2] - v) / K[1, 1]
    directions_cam = np.stack([x, y, -np.ones_like(x)], axis=-1).reshape(-1, 3)  # (H*W, 3)
    directions = directions_cam @ cam2world[:3, :3].T
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    origins = np.broadcast_to(cam2world[:3, 3], directions.shape).copy()
    return origins, directions


def unproject_depth(depth: np.ndarray, cam2world: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Planar depth map (H, W) -> world points (H, W, 3); background pixels (depth <= 0) give NaN."""
    height, width = depth.shape
    v, u = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    x = (u - K[0, 2]) / K[0, 0] * depth
    y = (K[1, 2] - v) / K[1, 1] * depth
    cam = np.stack([x, y, -depth, np.ones_like(depth)], axis=-1)  # (H, W, 4)
    world = cam @ cam2world.T
    points = world[..., :3]
    points[depth <= 0] = np.nan
    return points
