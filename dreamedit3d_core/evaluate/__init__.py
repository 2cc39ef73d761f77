"""Evaluate stage metrics: pure functions on arrays and meshes (the orchestration renders and calls them).

masked_psnr(source_rgb, edited_rgb, keep_mask), masked_ssim(...)      identity preservation
per_view_iou(masks_a, masks_b), silhouette(images)                    silhouettes
surface_distance(mesh_a, mesh_b, threshold=0.02)                      Chamfer / F-score
multiview_consistency(views, cameras, depth)                          sampled views agree in 3D?
reconstruction_fidelity(views, re_rendered)                           mesh re-renders vs sampled views
clip_scores(source_images, edited_images, source_prompt, edit_prompt, ClipConfig(weights=...))
turntable_strip(images), write_gif(images, path)
"""

from dreamedit3d_core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "clip_score": ("ClipScorer", "ClipScores", "clip_scores", "directional_similarity", "text_image_similarity"),
        "config": ("ClipConfig", "EvaluateConfig"),
        "consistency": ("ConsistencyResult", "FidelityResult", "multiview_consistency", "reconstruction_fidelity"),
        "all_metrics": ("Metrics", "edit_metrics"),
        "image_metrics": ("masked_psnr", "masked_ssim", "on_white", "per_view_iou", "silhouette", "silhouette_iou"),
        "mesh_metrics": ("SurfaceDistance", "point_distance", "sample_surface", "surface_distance"),
        "turntable": ("turntable_strip", "write_gif"),
    },
)
