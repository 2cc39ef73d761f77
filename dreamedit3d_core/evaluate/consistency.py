"""Multi-view consistency of sampled views, and how faithfully a reconstruction re-renders them.

Consistency: every foreground pixel of view i is lifted to 3D with a depth map (the reconstructed mesh's,
since sampled views have none), projected into view j, and compared with view j's colour there, unless
view j's own depth says something nearer hides the point (occlusion test). Consistent views of one
object agree wherever both see the same surface; the error is the mean absolute colour difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dreamedit3d_core.evaluate.image_metrics import on_white, silhouette
from dreamedit3d_core.geometry.cameras import CameraSet, project_points, unproject_depth


@dataclass(frozen=True)
class ConsistencyResult:
    pair_error: np.ndarray  # (V, V) mean |colour_i - colour_j| in [0, 1] of view i's pixels seen in view j; NaN: none
    pair_pixels: np.ndarray  # (V, V) int: how many pixels each pair compared
    mean_error: float  # over all compared pixels of all pairs (NaN when no pair overlaps)
    psnr: float  # the same pixels' PSNR in dB

    def as_dict(self) -> dict[str, float | list]:
        return {
            "mean_error": self.mean_error,
            "psnr": self.psnr,
            "pair_error": np.where(np.isnan(self.pair_error), None, self.pair_error).tolist(),
            "pair_pixels": self.pair_pixels.tolist(),
        }


def multiview_consistency(
    views: np.ndarray, cameras: CameraSet, depth: np.ndarray, depth_tolerance: float = 0.02
) -> ConsistencyResult:
    """Views (V, H, W, 3|4) uint8 or float, planar depth maps (V, H, W) (0 = background)."""
    views = on_white(np.asarray(views))
    colours = views.astype(np.float64) / (255.0 if views.dtype == np.uint8 else 1.0)
    depth = np.asarray(depth, np.float64)
    num_views, height, width = depth.shape
    if colours.shape[:3] != depth.shape or num_views != cameras.num_views:
        raise ValueError(f"views {views.shape[:3]}, depth {depth.shape} and {cameras.num_views} cameras must agree")
    error = np.full((num_views, num_views), np.nan)
    pixels = np.zeros((num_views, num_views), np.int64)
    squared_sum, absolute_sum, total = 0.0, 0.0, 0
    for i in range(num_views):
        points = unproject_depth(depth[i], cameras.cam2world[i], cameras.K[i])  # (H, W, 3), NaN background
        lifted = depth[i] > 0
        source_points, source_colours = points[lifted], colours[i][lifted]
        for j in range(num_views):
            if i == j:
                continue
            uv, point_depth = project_points(source_points, cameras.cam2world[j], cameras.K[j])
            visible = _unoccluded(uv, point_depth, depth[j], depth_tolerance)
            if not visible.any():
                continue
            target = np.stack(
                [
                    ndimage.map_coordinates(
                        colours[j][..., c], [uv[visible, 1] - 0.5, uv[visible, 0] - 0.5], order=1, mode="nearest"
                    )
                    for c in range(3)
                ],
                axis=-1,
            )
            difference = source_colours[visible] - target
            error[i, j] = float(np.abs(difference).mean())
            pixels[i, j] = int(visible.sum())
            absolute_sum += float(np.abs(difference).mean(axis=1).sum())
            squared_sum += float((difference**2).mean(axis=1).sum())
            total += int(visible.sum())
    if total == 0:
        return ConsistencyResult(error, pixels, float("nan"), float("nan"))
    mse = squared_sum / total
    psnr = float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))
    return ConsistencyResult(error, pixels, absolute_sum / total, psnr)


def _unoccluded(uv: np.ndarray, point_depth: np.ndarray, depth: np.ndarray, tolerance: float) -> np.ndarray:
    """Points whose depth lies within the depths of the 4 pixel centres around them (+- tolerance).

    Bracketing by the neighbours, not the nearest pixel's depth, keeps surfaces seen at grazing angles
    (whose depth changes a lot from one pixel to the next) from failing the test.
    """
    height, width = depth.shape
    col0, row0 = np.floor(uv[:, 0] - 0.5).astype(np.int64), np.floor(uv[:, 1] - 0.5).astype(np.int64)
    inside = (col0 >= 0) & (col0 < width - 1) & (row0 >= 0) & (row0 < height - 1) & (point_depth > 0)
    rows = np.clip(row0[:, None] + np.array([0, 0, 1, 1]), 0, height - 1)
    cols = np.clip(col0[:, None] + np.array([0, 1, 0, 1]), 0, width - 1)
    around = depth[rows, cols]  # (N, 4)
    # all 4 on the surface: the bilinear colour lookup then never mixes in background
    return (
        inside
        & (around > 0).all(axis=1)
        & (point_depth >= around.min(axis=1) - tolerance)
        & (point_depth <= around.max(axis=1) + tolerance)
    )


@dataclass(frozen=True)
class FidelityResult:
    """How well re-renders of a reconstruction match the views it was made from."""

    iou: np.ndarray  # (V,) silhouette IoU
    psnr: np.ndarray  # (V,) dB on white, over the union of both silhouettes

    @property
    def mean_iou(self) -> float:
        return float(np.nanmean(self.iou))

    @property
    def mean_psnr(self) -> float:
        return float(np.mean(self.psnr))

    def as_dict(self) -> dict[str, float | list[float]]:
        return {
            "mean_iou": self.mean_iou,
            "mean_psnr": self.mean_psnr,
            "iou": self.iou.tolist(),
            "psnr": self.psnr.tolist(),
        }


def reconstruction_fidelity(views: np.ndarray, rendered: np.ndarray, alpha_threshold: float = 0.5) -> FidelityResult:
    """Views and re-renders (V, H, W, 3|4), same dtype (uint8 or float), RGB on white or RGBA."""
    views, rendered = np.asarray(views), np.asarray(rendered)
    if views.shape[:3] != rendered.shape[:3]:
        raise ValueError(f"views {views.shape} and re-renders {rendered.shape} differ in size")
    if views.dtype != rendered.dtype:
        raise ValueError(f"views ({views.dtype}) and re-renders ({rendered.dtype}) must share a dtype")
    mask_views = silhouette(views, alpha_threshold)
    mask_rendered = silhouette(rendered, alpha_threshold)
    white_views, white_rendered = on_white(views), on_white(rendered)
    scale = 255.0 if views.dtype == np.uint8 else 1.0
    iou, psnr = [], []
    for view in range(len(views)):
        union = mask_views[view] | mask_rendered[view]
        intersection = mask_views[view] & mask_rendered[view]
        iou.append(float(intersection.sum() / union.sum()) if union.any() else float("nan"))
        if not union.any():
            psnr.append(float("inf"))
            continue
        difference = (white_views[view].astype(np.float64) - white_rendered[view].astype(np.float64))[union] / scale
        mse = float(np.mean(difference**2))
        psnr.append(float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse)))
    return FidelityResult(np.array(iou), np.array(psnr))
