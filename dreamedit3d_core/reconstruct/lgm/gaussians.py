"""3D Gaussians (LGM's output) -> a solid on our grid, ready for marching cubes.

Each Gaussian is splatted into the grid as opacity * exp(-d^T Sigma^-1 d / 2) within `kernel_sigmas`
standard deviations. LGM's Gaussians sit on the surface, so the density is a shell: it is thresholded,
its enclosed cavities are filled, and a signed distance to that solid becomes the field (negative inside).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from dreamedit3d_core.reconstruct.carving import CarveField

_MAX_WINDOW = 9  # voxels per side of one Gaussian's splat: bounds memory for very large Gaussians
_CHUNK = 4096  # Gaussians splatted at once


def quaternion_to_matrix(quaternions: torch.Tensor) -> torch.Tensor:
    """(N, 4) unit quaternions (w, x, y, z) -> (N, 3, 3) rotations."""
    w, x, y, z = quaternions.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(-1, 3, 3)  # (N, 9) -> (N, 3, 3)


def gaussians_to_world(gaussians: torch.Tensor, world_to_lgm: np.ndarray) -> tuple[torch.Tensor, ...]:
    """Positions (N, 3), inverse covariances (N, 3, 3), opacities (N,), colours (N, 3) in our world frame."""
    transform = torch.as_tensor(world_to_lgm, dtype=torch.float64)
    linear = transform[:3, :3]  # scale * rotation
    scale = torch.linalg.det(linear).abs() ** (1.0 / 3.0)
    rotation = linear / scale
    gaussians = gaussians.to(torch.float64)
    positions = (gaussians[:, 0:3] - transform[:3, 3]) @ torch.linalg.inv(linear).T
    axes = rotation.T @ quaternion_to_matrix(gaussians[:, 7:11])  # (N, 3, 3) principal axes in our world
    sigmas = gaussians[:, 4:7].clamp_min(1e-6) / scale  # (N, 3) standard deviations in our units
    inverse_covariance = axes @ torch.diag_embed(sigmas**-2) @ axes.transpose(1, 2)
    return positions, inverse_covariance, gaussians[:, 3], gaussians[:, 11:14], sigmas


def splat_density(
    gaussians: torch.Tensor, world_to_lgm: np.ndarray, resolution: int, bound: float, kernel_sigmas: float = 3.0
) -> np.ndarray:
    """(N, N, N) density of the Gaussians (N, 14) on the grid spanning [-bound, bound]^3 of our world."""
    positions, inverse_covariance, opacity, _, sigmas = gaussians_to_world(gaussians, world_to_lgm)
    keep = opacity > 1e-3
    positions, inverse_covariance, opacity, sigmas = (
        positions[keep],
        inverse_covariance[keep],
        opacity[keep],
        sigmas[keep],
    )
    spacing = 2.0 * bound / (resolution - 1)
    reach = float(kernel_sigmas * sigmas.max().item()) if len(sigmas) else 0.0
    half = int(np.clip(np.ceil(reach / spacing), 1, _MAX_WINDOW // 2))
    steps = torch.arange(-half, half + 1, dtype=torch.int64)
    offsets = torch.stack(torch.meshgrid(steps, steps, steps, indexing="ij"), dim=-1).reshape(-1, 3)  # (W^3, 3)
    density = torch.zeros(resolution**3, dtype=torch.float64)
    for start in range(0, len(positions), _CHUNK):
        mean = positions[start : start + _CHUNK]
        centre = torch.round((mean + bound) / spacing).to(torch.int64)  # (n, 3) nearest voxel
        voxels = centre[:, None, :] + offsets[None]  # (n, W^3, 3)
        inside = ((voxels >= 0) & (voxels < resolution)).all(dim=-1)
        delta = voxels.to(torch.float64) * spacing - bound - mean[:, None, :]  # (n, W^3, 3)
        mahalanobis = torch.einsum("nwi,nij,nwj->nw", delta, inverse_covariance[start : start + _CHUNK], delta)
        weight = opacity[start : start + _CHUNK, None] * torch.exp(-0.5 * mahalanobis)
        weight = torch.where(inside & (mahalanobis < kernel_sigmas**2), weight, torch.zeros_like(weight))
        flat = (voxels[..., 0] * resolution + voxels[..., 1]) * resolution + voxels[..., 2]
        density.index_add_(0, flat[inside], weight[inside])
    return density.reshape(resolution, resolution, resolution).numpy()  # (N^3,) -> (N, N, N)


def density_field(density: np.ndarray, level: float, bound: float) -> CarveField:
    """The solid where density > level, cavities filled, as a signed distance (world units, negative inside)."""
    solid = ndimage.binary_fill_holes(density > level)
    spacing = 2.0 * bound / (density.shape[0] - 1)
    if not solid.any():
        return CarveField(np.full(density.shape, spacing, np.float32), bound)
    inside = ndimage.distance_transform_edt(solid)
    outside = ndimage.distance_transform_edt(~solid)
    distance = np.where(solid, 0.5 - inside, outside - 0.5) * spacing
    # a little blur turns the voxel staircase into a field marching cubes can interpolate
    return CarveField(ndimage.gaussian_filter(distance, 0.75).astype(np.float32), bound)
