"""Evaluate stage metrics: pure functions on arrays and meshes (the orchestration renders and calls them).

masked_psnr(source_rgb, edited_rgb, keep_mask), masked_ssim(...)      identity preservation
per_view_iou(masks_a, masks_b), silhouette(images)                    silhouettes
surface_distance(mesh_a, mesh_b, threshold=0.02)                      Chamfer / F-score
multiview_consistency(views, cameras, depth)                          sampled views agree in 3D?
reconstruction_fidelity(views, re_rendered)                           mesh re-renders vs sampled views
clip_scores(source_images, edited_images, source_prompt, edit_prompt, ClipConfig(weights=...))
turntable_strip(images), write_gif(images, path)
"""

from dreamedit3d_core.evaluate.clip_score import (
    ClipScorer,
    ClipScores,
    clip_scores,
    directional_similarity,
    text_image_similarity,
)
from dreamedit3d_core.evaluate.config import ClipConfig, EvaluateConfig
from dreamedit3d_core.evaluate.consistency import (
    ConsistencyResult,
    FidelityResult,
    multiview_consistency,
    reconstruction_fidelity,
)
from dreamedit3d_core.evaluate.edit import Metrics, edit_metrics
from dreamedit3d_core.evaluate.image_metrics import (
    masked_psnr,
    masked_ssim,
    on_white,
    per_view_iou,
    silhouette,
    silhouette_iou,
)
from dreamedit3d_core.evaluate.mesh_metrics import SurfaceDistance, point_distance, sample_surface, surface_distance
from dreamedit3d_core.evaluate.turntable import turntable_strip, write_gif

__all__ = [
    "ClipConfig",
    "ClipScorer",
    "ClipScores",
    "ConsistencyResult",
    "EvaluateConfig",
    "FidelityResult",
    "Metrics",
    "SurfaceDistance",
    "clip_scores",
    "directional_similarity",
    "edit_metrics",
    "masked_psnr",
    "masked_ssim",
    "multiview_consistency",
    "on_white",
    "per_view_iou",
    "point_distance",
    "reconstruction_fidelity",
    "sample_surface",
    "silhouette",
    "silhouette_iou",
    "surface_distance",
    "text_image_similarity",
    "turntable_strip",
    "write_gif",
]
