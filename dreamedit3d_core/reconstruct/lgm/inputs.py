"""Our views and cameras -> LGM's input tensor: ImageNet-normalised RGB + a Plücker ray per pixel.

LGM's frame: OpenGL world axes (+Y up), cameras on an orbit of radius `cam_radius` (1.5) with a vertical
field of view `fovy_deg` (49.1), and every set of views normalised so that the first camera sits at
(0, 0, radius) looking down -Z with identity rotation (LGM's training data does exactly this).

Getting there from our frame is a similarity transform `world_to_lgm`:
  1. Blender world -> OpenGL world (the inverse of cameras.FLIP_YZ);
  2. a uniform scale that puts the first camera at distance `cam_radius`;
  3. the rigid motion taking the first camera to (0, 0, radius) with identity rotation.
The camera frames themselves (OpenGL: -Z forward, +Y up) need no change. Our cameras have a narrower
field of view (40 deg) than LGM's, so each view is resampled into LGM's pinhole exactly (the same rays,
white where our image ends): the geometry the rays describe and the pixels agree, whatever our K is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dreamedit3d_core.geometry.cameras import FLIP_YZ, CameraSet
from dreamedit3d_core.reconstruct.lgm.config import LGMArchitectureConfig
from dreamedit3d_core.reconstruct.raycast import sample_texture

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
_AZIMUTH_TOLERANCE_DEG = 10.0


@dataclass(frozen=True)
class LGMInputs:
    images: torch.Tensor  # (1, V, 9, S, S) float32: normalised RGB then Plücker (moment o x d, direction d)
    rgb: np.ndarray  # (V, S, S, 3) float32 in [0, 1]: the views resampled into LGM's cameras, on white
    cam2world: np.ndarray  # (V, 4, 4) LGM-frame cameras (OpenGL axes)
    world_to_lgm: np.ndarray  # (4, 4) similarity: our world -> LGM frame


def lgm_focal(config: LGMArchitectureConfig) -> float:
    """LGM's focal length in pixels at its input size."""
    return 0.5 * config.input_size / np.tan(0.5 * np.radians(config.fovy_deg))


def check_lgm_cameras(cameras: CameraSet, config: LGMArchitectureConfig) -> None:
    """LGM was trained on exactly 4 views a quarter turn apart, in order; anything else is refused."""
    if cameras.num_views != config.num_views:
        raise ValueError(f"LGM takes exactly {config.num_views} views, got {cameras.num_views}")
    steps = np.diff(np.asarray(cameras.azimuths, np.float64)) % 360.0
    expected = 360.0 / config.num_views
    if np.any(np.abs(steps - expected) > _AZIMUTH_TOLERANCE_DEG):
        raise ValueError(
            f"LGM takes views at azimuth steps of {expected:.0f} degrees in order "
            f"(e.g. 0/90/180/270), got azimuths {[float(a) for a in cameras.azimuths]}"
        )


def world_to_lgm_transform(cameras: CameraSet, config: LGMArchitectureConfig) -> np.ndarray:
    """(4, 4) similarity taking our world to LGM's frame (first camera at (0, 0, radius), unrotated)."""
    to_opengl = np.linalg.inv(FLIP_YZ)
    first = to_opengl @ cameras.cam2world[0]
    scale = config.cam_radius / np.linalg.norm(first[:3, 3])
    scaling = np.diag([scale, scale, scale, 1.0])
    scaled_first = first.copy()
    scaled_first[:3, 3] *= scale
    target = np.eye(4)
    target[2, 3] = config.cam_radius
    return target @ np.linalg.inv(scaled_first) @ scaling @ to_opengl


def lgm_cameras(cameras: CameraSet, world_to_lgm: np.ndarray) -> np.ndarray:
    """(V, 4, 4) camera-to-world matrices in LGM's frame (rotation part stays orthonormal)."""
    scale = np.cbrt(np.linalg.det(world_to_lgm[:3, :3]))
    unscale_camera = np.diag([1.0 / scale, 1.0 / scale, 1.0 / scale, 1.0])
    return np.stack([world_to_lgm @ cam2world @ unscale_camera for cam2world in cameras.cam2world])


def plucker_rays(cam2world: np.ndarray, config: LGMArchitectureConfig) -> np.ndarray:
    """(6, S, S) rays through LGM's pixel centres: moment o x d (3), then the unit direction d (3)."""
    size = config.input_size
    focal = lgm_focal(config)
    rows, cols = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    camera_dirs = np.stack([(cols - 0.5 * size) / focal, -(rows - 0.5 * size) / focal, -np.ones_like(cols)], -1)
    directions = camera_dirs.reshape(-1, 3) @ cam2world[:3, :3].T  # (S*S, 3)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    origins = np.broadcast_to(cam2world[:3, 3], directions.shape)
    rays = np.concatenate([np.cross(origins, directions), directions], axis=1)  # (S*S, 6)
    return rays.reshape(size, size, 6).transpose(2, 0, 1).astype(np.float32)  # (S*S, 6) -> (6, S, S)


def resample_to_lgm(image: np.ndarray, K: np.ndarray, config: LGMArchitectureConfig) -> np.ndarray:
    """(H, W, 3) float view on white -> (S, S, 3) as LGM's pinhole at the same pose sees it (white outside)."""
    size = config.input_size
    focal = lgm_focal(config)
    rows, cols = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    x, y = (cols - 0.5 * size) / focal, -(rows - 0.5 * size) / focal  # camera-frame ray at depth 1
    u = K[0, 0] * x + K[0, 2]
    v = K[1, 2] - K[1, 1] * y
    height, width = image.shape[:2]
    inside = (u >= 0) & (u <= width) & (v >= 0) & (v <= height)
    uv = np.stack([u.ravel() / width, 1.0 - v.ravel() / height], axis=1)  # top-left pixels -> bottom-left UVs
    uv = np.clip(uv, 0.5 / np.array([width, height]), 1.0 - 0.5 / np.array([width, height]))
    sampled = sample_texture(image, uv).reshape(size, size, 3)  # (S*S, 3) -> (S, S, 3)
    return np.where(inside[..., None], sampled, 1.0).astype(np.float32)


def lgm_inputs(views_rgb: np.ndarray, cameras: CameraSet, config: LGMArchitectureConfig) -> LGMInputs:
    """Views (V, H, W, 3) float in [0, 1] on white + their cameras -> LGM's (1, V, 9, S, S) input."""
    check_lgm_cameras(cameras, config)
    world_to_lgm = world_to_lgm_transform(cameras, config)
    cam2world = lgm_cameras(cameras, world_to_lgm)
    rgb = np.stack([resample_to_lgm(view, K, config) for view, K in zip(views_rgb, cameras.K, strict=True)])
    normalised = ((rgb - IMAGENET_MEAN) / IMAGENET_STD).transpose(0, 3, 1, 2)  # (V, S, S, 3) -> (V, 3, S, S)
    rays = np.stack([plucker_rays(matrix, config) for matrix in cam2world])  # (V, 6, S, S)
    images = torch.from_numpy(np.concatenate([normalised, rays], axis=1).astype(np.float32))[None]
    return LGMInputs(images, rgb, cam2world, world_to_lgm)
