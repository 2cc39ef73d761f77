"""Multi-view consistency through depth (with occlusion) and the fidelity of re-rendered reconstructions."""

from __future__ import annotations

import numpy as np
import pytest

from dreamedit3d_core.evaluate import multiview_consistency, reconstruction_fidelity
from tests.core.reconstruct.recon_scenes import Box, Sphere, input_cameras, ray_cast, red_plus_x


def test_views_of_one_coloured_object_are_consistent() -> None:
    views = ray_cast([Sphere((0.0, 0.0, 0.0), 0.6)], input_cameras(), red_plus_x)
    result = multiview_consistency(views.rgb, views.cameras, views.depth, depth_tolerance=0.03)
    assert result.mean_error < 0.02
    assert result.psnr > 25
    # neighbouring views (a quarter turn apart) share surface; each pair is measured both ways
    assert result.pair_pixels[0, 1] > 50 and result.pair_pixels[1, 0] > 50
    assert np.isnan(result.pair_error[0, 0])


def test_a_view_that_disagrees_is_found_by_its_pairs() -> None:
    views = ray_cast([Sphere((0.0, 0.0, 0.0), 0.6)], input_cameras(), red_plus_x)
    rgb = views.rgb.copy()
    rgb[1] = rgb[1][..., ::-1]  # view 1 swaps red and blue: not the same object any more
    result = multiview_consistency(rgb, views.cameras, views.depth, depth_tolerance=0.03)
    clean = multiview_consistency(views.rgb, views.cameras, views.depth, depth_tolerance=0.03)
    assert result.mean_error > 5 * clean.mean_error
    assert result.pair_error[0, 1] > 0.3 and result.pair_error[0, 3] < 0.05


def test_occluded_pixels_are_not_compared() -> None:
    # a small box hidden behind a big one in view 0 must not be compared with view 0's colours
    front, hidden = Box((-0.6, -0.7, -0.5), (0.6, -0.5, 0.5)), Box((-0.15, 0.2, -0.15), (0.15, 0.5, 0.15))
    views = ray_cast(
        [front, hidden],
        input_cameras(),
        lambda points: np.where(points[:, 1:2] > 0, [255, 0, 0], [0, 0, 255]).astype(np.uint8),
    )
    result = multiview_consistency(views.rgb, views.cameras, views.depth, depth_tolerance=0.02)
    # view 2 (from +Y) sees the hidden box in red; without the depth test view 0's blue box would be compared
    assert result.pair_error[2, 0] < 0.02


def test_fidelity_of_identical_and_shifted_re_renders() -> None:
    views = ray_cast([Sphere((0.0, 0.0, 0.0), 0.6)], input_cameras(), red_plus_x)
    same = reconstruction_fidelity(views.rgba, views.rgba)
    assert same.mean_iou == 1.0 and same.mean_psnr == float("inf")
    shifted = reconstruction_fidelity(views.rgba, np.roll(views.rgba, 4, axis=2))
    assert 0.6 < shifted.mean_iou < 0.95
    assert shifted.mean_psnr < 15
    with pytest.raises(ValueError, match="share a dtype"):
        reconstruction_fidelity(views.rgba, views.rgba / 255.0)


def test_edit_metrics_collects_every_group_that_has_inputs() -> None:
    from dreamedit3d_core.evaluate import EvaluateConfig, edit_metrics

    sphere = Sphere((0.0, 0.0, 0.0), 0.6)
    views = ray_cast([sphere], input_cameras(), red_plus_x)
    edited = views.rgba.copy()
    edited[:, :, 32:] = views.rgba[:, :, 32:][..., [2, 1, 0, 3]]  # the edit recolours the right half
    keep = views.alpha.copy()
    keep[:, :, 28:] = False
    config = EvaluateConfig(surface_samples=20_000)
    metrics = edit_metrics(
        views.cameras,
        views.rgba,
        sphere.mesh(),
        config,
        source_renders=views.rgba,
        edited_renders=edited,
        keep_masks=keep,
        source_mesh=sphere.mesh(),
        source_prompt="a photo of a ball",
        edit_prompt="a photo of a blue ball",
    )
    assert metrics["fidelity_iou"] > 0.95 and metrics["consistency_error"] < 0.03
    assert metrics["preserved_psnr"] == float("inf") and metrics["preserved_ssim"] > 0.98
    assert metrics["chamfer"] < 0.012 and metrics["f_score"] > 0.9  # the samples alone are ~0.015 apart
    assert metrics["clip_status"] == "not computed: no CLIP weights" and metrics["clip_text_image"] is None
    bare = edit_metrics(views.cameras, views.rgba, sphere.mesh(), config)
    assert set(bare) == {"consistency_error", "consistency_psnr", "fidelity_iou", "fidelity_psnr"}
