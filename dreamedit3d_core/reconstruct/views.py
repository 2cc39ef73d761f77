"""The views the reconstruct stage accepts, checked once, and their foreground.

Views are (V, H, W, 3) RGB on a white background or (V, H, W, 4) RGBA, uint8 (or float in [0, 1]).
A view's foreground comes from its alpha where it has one, else from its difference to white.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage import morphology

from dreamedit3d_core.geometry.cameras import CameraSet
from dreamedit3d_core.reconstruct.config import ForegroundConfig


def check_views(views: np.ndarray, cameras: CameraSet) -> np.ndarray:
    """The views as float32 in [0, 1], (V, H, W, C); bad shapes, dtypes or camera counts raise ValueError."""
    views = np.asarray(views)
    if views.ndim != 4 or views.shape[-1] not in (3, 4):
        raise ValueError(f"views must be (V, H, W, 3) RGB or (V, H, W, 4) RGBA, got shape {views.shape}")
    num_views, height, width, _ = views.shape
    if num_views != cameras.num_views:
        raise ValueError(f"{num_views} views but {cameras.num_views} cameras")
    if height != width or height != cameras.image_size:
        raise ValueError(
            f"views are {height}x{width} pixels but the cameras are for {cameras.image_size}x{cameras.image_size}"
        )
    if views.dtype == np.uint8:
        return views.astype(np.float32) / 255.0
    if np.issubdtype(views.dtype, np.floating):
        if not np.all(np.isfinite(views)) or views.min() < 0.0 or views.max() > 1.0:
            raise ValueError("float views must hold finite values in [0, 1]")
        return views.astype(np.float32)
    raise ValueError(f"views must be uint8 or float in [0, 1], got dtype {views.dtype}")


def rgb_on_white(views: np.ndarray) -> np.ndarray:
    """(V, H, W, 3) colours composited on white; RGB views pass through unchanged."""
    if views.shape[-1] == 3:
        return views
    alpha = views[..., 3:4]
    return views[..., :3] * alpha + (1.0 - alpha)


def foreground_masks(
    views: np.ndarray, config: ForegroundConfig | None = None, *, allow_empty: bool = False
) -> np.ndarray:
    """(V, H, W) bool: where each view shows the object (views as returned by `check_views`); a view with no
    foreground is refused unless `allow_empty`."""
    config = config or ForegroundConfig()
    if views.shape[-1] == 4:
        raw = views[..., 3] > config.alpha_threshold
    else:
        darkest = 1.0 - views.min(axis=-1)  # (V, H, W): how far the most non-white channel is from white
        raw = darkest > config.white_tolerance / 255.0
    masks = np.stack([_clean(mask, config) for mask in raw])
    empty = [index for index, mask in enumerate(masks) if not mask.any()]
    if empty and not allow_empty:
        raise ValueError(f"no foreground found in view(s) {empty}: is the object on a white background?")
    return masks


def _clean(mask: np.ndarray, config: ForegroundConfig) -> np.ndarray:
    if config.open_radius > 0:
        opened = ndimage.binary_opening(mask, structure=morphology.disk(config.open_radius).astype(bool))
        # thin real structures (a handle, an antenna) must survive: only drop what opening erased entirely
        labels, _ = ndimage.label(mask)
        kept = np.unique(labels[opened])
        mask = np.isin(labels, kept[kept > 0])
    if config.min_region_fraction > 0:
        min_area = max(2, round(config.min_region_fraction * int(mask.sum())))  # single pixels always go
        mask = _drop_small_regions(mask, min_area)
        mask = ~_drop_small_regions(~mask, min_area)  # holes: small background regions
    return mask


def _drop_small_regions(mask: np.ndarray, min_area: int) -> np.ndarray:
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_area
    keep[0] = False
    return keep[labels]


def silhouette_distance(mask: np.ndarray) -> np.ndarray:
    """Signed distance in pixels from each pixel centre to the silhouette edge (negative inside).

    The edge lies half-way between a foreground and a background pixel centre, hence the 0.5.
    """
    inside = ndimage.distance_transform_edt(mask)
    outside = ndimage.distance_transform_edt(~mask)
    return np.where(mask, 0.5 - inside, outside - 0.5).astype(np.float32)
