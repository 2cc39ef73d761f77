"""Per-pixel image metrics restricted to masks: PSNR, SSIM, silhouette IoU.

Images are (H, W, C) or (V, H, W, C), uint8 (data range 255) or float in [0, 1] (data range 1); masks are
(H, W) or (V, H, W) bool. Identity preservation of an edit = these metrics on the pixels of components
the edit prompt does not name.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity


def _pair(image_a: np.ndarray, image_b: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    image_a, image_b = np.asarray(image_a), np.asarray(image_b)
    if image_a.shape != image_b.shape:
        raise ValueError(f"images differ in shape: {image_a.shape} vs {image_b.shape}")
    if image_a.dtype != image_b.dtype:
        raise ValueError(f"images differ in dtype: {image_a.dtype} vs {image_b.dtype}")
    data_range = 255.0 if image_a.dtype == np.uint8 else 1.0
    return image_a.astype(np.float64), image_b.astype(np.float64), data_range


def _mask_for(images: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    spatial = images.shape[:-1]
    if mask is None:
        return np.ones(spatial, bool)
    mask = np.asarray(mask, bool)
    if mask.shape != spatial:
        raise ValueError(f"mask shape {mask.shape} does not match the images' {spatial}")
    return mask


def masked_psnr(image_a: np.ndarray, image_b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR (dB) over the masked pixels (all channels); inf for identical pixels."""
    a, b, data_range = _pair(image_a, image_b)
    mask = _mask_for(a, mask)
    if not mask.any():
        raise ValueError("the mask selects no pixels: PSNR is undefined")
    mse = float(np.mean((a[mask] - b[mask]) ** 2))
    return float("inf") if mse == 0.0 else float(10.0 * np.log10(data_range**2 / mse))


def masked_ssim(image_a: np.ndarray, image_b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean SSIM (skimage, 7x7 windows, per channel) over the masked pixels; 1 for identical images.

    The SSIM map is computed on whole images, so a masked pixel's window may reach outside the mask.
    """
    a, b, data_range = _pair(image_a, image_b)
    mask = _mask_for(a, mask)
    if not mask.any():
        raise ValueError("the mask selects no pixels: SSIM is undefined")
    if a.ndim == 3:
        a, b, mask = a[None], b[None], mask[None]
    total, count = 0.0, 0
    for view_a, view_b, view_mask in zip(a, b, mask, strict=True):
        if not view_mask.any():
            continue
        _, ssim_map = structural_similarity(view_a, view_b, data_range=data_range, channel_axis=-1, full=True)
        total += float(ssim_map.mean(axis=-1)[view_mask].sum())
        count += int(view_mask.sum())
    return total / count


def silhouette(images: np.ndarray, alpha_threshold: float = 0.5, white_tolerance: int = 12) -> np.ndarray:
    """Foreground of RGBA images (alpha) or RGB images on white (any channel darker than white - tolerance)."""
    images = np.asarray(images)
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    if images.shape[-1] == 4:
        return images[..., 3] / scale > alpha_threshold
    if images.shape[-1] != 3:
        raise ValueError(f"images must have 3 (RGB on white) or 4 (RGBA) channels, got shape {images.shape}")
    return (scale - images.min(axis=-1)) / scale > white_tolerance / 255.0


def on_white(images: np.ndarray) -> np.ndarray:
    """RGBA (or RGB) images -> RGB composited on white, same dtype."""
    images = np.asarray(images)
    if images.shape[-1] == 3:
        return images
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    alpha = images[..., 3:4].astype(np.float64) / scale
    rgb = images[..., :3] * alpha + scale * (1.0 - alpha)
    return rgb.round().astype(np.uint8) if images.dtype == np.uint8 else rgb.astype(images.dtype)


def silhouette_iou(mask_a: np.ndarray, mask_b: np.ndarray) -> float:
    """|A and B| / |A or B| over all given pixels; NaN when both masks are empty (undefined)."""
    mask_a, mask_b = np.asarray(mask_a, bool), np.asarray(mask_b, bool)
    if mask_a.shape != mask_b.shape:
        raise ValueError(f"masks differ in shape: {mask_a.shape} vs {mask_b.shape}")
    union = int((mask_a | mask_b).sum())
    return float("nan") if union == 0 else float((mask_a & mask_b).sum() / union)


def per_view_iou(masks_a: np.ndarray, masks_b: np.ndarray) -> np.ndarray:
    """(V,) silhouette IoU of each view of (V, H, W) masks."""
    if np.shape(masks_a) != np.shape(masks_b):
        raise ValueError(f"masks differ in shape: {np.shape(masks_a)} vs {np.shape(masks_b)}")
    return np.array([silhouette_iou(a, b) for a, b in zip(masks_a, masks_b, strict=True)])
