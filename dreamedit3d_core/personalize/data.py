"""Training data for personalisation: one asset's V views, component masks and cameras at the model's size.

The VAE is frozen in both phases, so each view is encoded once: the posterior's mean and standard deviation
are kept and a latent is drawn from them at every step (the same draw the VAE would make, without the VAE).

Horizontal flips stay consistent with the cameras: flipping every view of an object O is exactly what
cameras mirrored about the world's x = 0 plane see of the mirrored object S(O), where S = diag(-1, 1, 1).
In MVDream's camera vector (cam2world, row-major) that mirror is S @ M @ S with S = diag(-1, 1, 1, 1):
an orbit camera at azimuth a becomes the orbit camera at azimuth -a, bit for bit up to the sign of zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from dreamedit3d_core.mvdiffusion import MultiViewDiffusion

MIRROR = torch.tensor([-1.0, 1.0, 1.0, 1.0])


@dataclass(frozen=True)
class TrainingData:
    """One asset at the model's resolution, on the model's device."""

    images: torch.Tensor  # (V, 3, S, S) float32 in [-1, 1]
    masks: torch.Tensor  # (K, V, S, S) float32 in [0, 1]: the share of each pixel covered by the component
    cameras: torch.Tensor  # (V, 16) float32 MVDream camera vectors
    latent_mean: torch.Tensor  # (V, C, h, w) float32, scaled by the VAE's scaling factor
    latent_std: torch.Tensor  # (V, C, h, w) float32, scaled likewise
    flipped: bool = False
    attributes: tuple[str, ...] = ()  # per component, words of its look ("in brown"; "" for none), or none at all

    @property
    def num_components(self) -> int:
        return int(self.masks.shape[0])

    @property
    def num_views(self) -> int:
        return int(self.images.shape[0])

    def masks_at(self, resolution: int) -> torch.Tensor:
        """(K, V, r, r): the share of each r x r cell covered by each component (area pooling)."""
        return F.interpolate(self.masks, size=(resolution, resolution), mode="area")

    def sample_latents(self, generator: torch.Generator) -> torch.Tensor:
        """One draw from the VAE posterior of every view: (V, C, h, w) on the data's device."""
        noise = torch.randn(self.latent_mean.shape, generator=generator, device=generator.device)
        return self.latent_mean + self.latent_std * noise.to(self.latent_mean.device)


def mirror_cameras(cameras: torch.Tensor) -> torch.Tensor:
    """MVDream camera vectors (V, 16) of the cameras mirrored about the world plane x = 0."""
    if cameras.ndim != 2 or cameras.shape[1] != 16:
        raise ValueError(f"cameras must be (V, 16) MVDream vectors, got shape {tuple(cameras.shape)}")
    mirror = MIRROR.to(device=cameras.device, dtype=cameras.dtype)
    matrices = cameras.reshape(-1, 4, 4)  # (V, 16) -> (V, 4, 4)
    mirrored = mirror[:, None] * matrices * mirror[None, :]  # S @ M @ S for a diagonal S
    return mirrored.reshape(-1, 16)  # (V, 4, 4) -> (V, 16)


def attribute_phrases(colours: Sequence[str | None]) -> list[str]:
    """Per component the words of its look for attribute-aware prompts: "in brown", or "" without a colour."""
    return [f"in {colour}" if colour else "" for colour in colours]


def check_inputs(model: MultiViewDiffusion, rgb: np.ndarray, masks: np.ndarray, cameras: np.ndarray) -> None:
    views = model.num_views
    if rgb.dtype != np.uint8 or rgb.ndim != 4 or rgb.shape[0] != views or rgb.shape[-1] != 3:
        raise ValueError(f"rgb must be uint8 (V={views}, H, W, 3), got {rgb.dtype} {tuple(rgb.shape)}")
    if rgb.shape[1] != rgb.shape[2]:
        raise ValueError(f"views must be square, got {rgb.shape[1]}x{rgb.shape[2]}")
    if masks.dtype != np.bool_ or masks.ndim != 4 or masks.shape[1:] != rgb.shape[:3]:
        raise ValueError(
            f"masks must be bool (K, V, H, W) matching rgb's (V, H, W) = {tuple(rgb.shape[:3])}, "
            f"got {masks.dtype} {tuple(masks.shape)}"
        )
    if masks.shape[0] == 0:
        raise ValueError("masks has no components (K = 0): nothing to personalise")
    empty = [k for k in range(masks.shape[0]) if not masks[k].any()]
    if empty:
        raise ValueError(f"component(s) {empty} have an empty mask in every view: no token can learn them")
    camera_dim = model.config.camera_dim
    if cameras.shape != (views, camera_dim):
        raise ValueError(f"cameras must be ({views}, {camera_dim}) MVDream vectors, got {tuple(cameras.shape)}")
    if not np.isfinite(cameras).all():
        raise ValueError("cameras contain NaN or infinite values")


def resize_masks(masks: torch.Tensor, size: int) -> torch.Tensor:
    """(K, V, H, W) float -> (K, V, size, size): area when shrinking, nearest when growing."""
    if masks.shape[-1] >= size:
        return F.interpolate(masks, size=(size, size), mode="area")
    return F.interpolate(masks, size=(size, size), mode="nearest-exact")


@torch.no_grad()
def encode_views(model: MultiViewDiffusion, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (V, 3, S, S) in [-1, 1] -> scaled posterior mean and std (V, C, h, w), float32."""
    posterior = model.vae.encode(images.to(device=model.vae.device, dtype=model.vae.dtype)).latent_dist
    scale = model.vae.config.scaling_factor
    return (posterior.mean.float() * scale, posterior.std.float() * scale)


def prepare_training_data(
    model: MultiViewDiffusion,
    rgb: np.ndarray,
    masks: np.ndarray,
    cameras: np.ndarray,
    attributes: Sequence[str] = (),
) -> TrainingData:
    """rgb (V, H, W, 3) uint8 on white, masks (K, V, H, W) bool, cameras (V, 16) -> TrainingData; `attributes`:
    per component the words of its look ("in brown"), for attribute-aware prompts.

    Views and masks are resized to the model's `config.image_size` (bilinear with antialiasing for images;
    area or nearest for masks) and the views are encoded by the VAE once.
    """
    rgb, masks, cameras = np.asarray(rgb), np.asarray(masks), np.asarray(cameras)
    check_inputs(model, rgb, masks, cameras)
    if attributes and len(attributes) != masks.shape[0]:
        raise ValueError(f"{len(attributes)} attribute phrases for {masks.shape[0]} components")
    size, device = model.config.image_size, model.device
    images = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (V, H, W, 3) -> (V, 3, H, W)
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        images = images.clamp(-1.0, 1.0)
    mask_tensor = resize_masks(torch.from_numpy(masks).float(), size)
    images = images.to(device)
    mean, std = encode_views(model, images)
    return TrainingData(
        images=images,
        masks=mask_tensor.to(device),
        cameras=torch.from_numpy(cameras).float().to(device),
        latent_mean=mean,
        latent_std=std,
        attributes=tuple(attributes),
    )


def flip_views(model: MultiViewDiffusion, data: TrainingData) -> TrainingData:
    """All views and masks flipped left-right, cameras mirrored, views encoded again (the VAE is not flip-exact)."""
    images = data.images.flip(-1)
    mean, std = encode_views(model, images)
    return replace(
        data,
        images=images,
        masks=data.masks.flip(-1),
        cameras=mirror_cameras(data.cameras),
        latent_mean=mean,
        latent_std=std,
        flipped=not data.flipped,
    )
