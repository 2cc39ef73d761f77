"""All metrics of one edit in one call: what the orchestration writes into the metrics table.

Every group is computed from what is given and left out otherwise:
  consistency   the sampled views against each other, through the reconstructed mesh's depth
  fidelity      unlit re-renders of the reconstructed mesh against the sampled views
  preservation  source vs edited renders on the pixels of components the prompt does not name
  geometry      Chamfer / F-score of the reconstructed mesh against the source asset's mesh
  clip          text-image and directional similarity of the edited (else sampled) views against the source
                renders ("not computed: no CLIP weights" without weights)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import trimesh

from dreamedit3d_core.evaluate.clip_score import clip_scores
from dreamedit3d_core.evaluate.config import EvaluateConfig
from dreamedit3d_core.evaluate.consistency import multiview_consistency, reconstruction_fidelity
from dreamedit3d_core.evaluate.image_metrics import masked_psnr, masked_ssim, on_white
from dreamedit3d_core.evaluate.mesh_metrics import surface_distance
from dreamedit3d_core.geometry.cameras import CameraSet
from dreamedit3d_core.reconstruct.raycast import render_meshes

Metrics = dict[str, float | str | None]


def edit_metrics(
    cameras: CameraSet,
    sampled_views: np.ndarray,
    reconstructed: trimesh.Trimesh | Sequence[trimesh.Trimesh],
    config: EvaluateConfig | None = None,
    *,
    source_renders: np.ndarray | None = None,
    edited_renders: np.ndarray | None = None,
    keep_masks: np.ndarray | None = None,
    source_mesh: trimesh.Trimesh | None = None,
    source_prompt: str | None = None,
    edit_prompt: str | None = None,
) -> Metrics:
    """Sampled views (V, H, W, 3|4) uint8 seen by `cameras`, the edited mesh (or its pieces, world frame);
    optional source / edited renders (V, H, W, 3|4) uint8 from the same cameras, keep masks (V, H, W)."""
    config = config or EvaluateConfig()
    sampled_views = np.asarray(sampled_views)
    metrics: Metrics = {}

    rendered = render_meshes(reconstructed, cameras)
    consistency = multiview_consistency(sampled_views, cameras, rendered.depth, config.depth_tolerance)
    metrics["consistency_error"] = consistency.mean_error
    metrics["consistency_psnr"] = consistency.psnr
    fidelity = reconstruction_fidelity(sampled_views, rendered.rgba, config.alpha_threshold)
    metrics["fidelity_iou"] = fidelity.mean_iou
    metrics["fidelity_psnr"] = fidelity.mean_psnr

    if source_renders is not None and edited_renders is not None:
        source, edited = on_white(np.asarray(source_renders)), on_white(np.asarray(edited_renders))
        if keep_masks is not None and not np.asarray(keep_masks).any():
            metrics["preserved_psnr"] = metrics["preserved_ssim"] = None  # the edit names every component
        else:
            metrics["preserved_psnr"] = masked_psnr(source, edited, keep_masks)
            metrics["preserved_ssim"] = masked_ssim(source, edited, keep_masks)

    if source_mesh is not None:
        whole = reconstructed if isinstance(reconstructed, trimesh.Trimesh) else trimesh.util.concatenate(list(reconstructed))
        distance = surface_distance(
            whole, source_mesh, config.fscore_threshold, config.surface_samples, config.seed
        )
        metrics["chamfer"] = distance.chamfer
        metrics["f_score"] = distance.f_score

    if source_prompt is not None and edit_prompt is not None and source_renders is not None:
        after = edited_renders if edited_renders is not None else sampled_views
        scores = clip_scores(source_renders, after, source_prompt, edit_prompt, config.clip)
        metrics["clip_status"] = scores.status
        metrics["clip_text_image"] = scores.text_image
        metrics["clip_directional"] = scores.directional
    return metrics
