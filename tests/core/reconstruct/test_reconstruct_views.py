"""Input checks and the foreground of a view: from alpha, or from the white background with clean-up."""

from __future__ import annotations

import re

import numpy as np
import pytest

from dreamedit3d_core.reconstruct import ForegroundConfig, VisualHullReconstructor, check_views, foreground_masks
from tests.core.reconstruct.recon_scenes import Views, input_cameras


def test_foreground_from_white_background_and_from_alpha_is_the_silhouette(sphere_views: Views) -> None:
    from_rgb = foreground_masks(check_views(sphere_views.rgb, sphere_views.cameras))
    from_rgba = foreground_masks(check_views(sphere_views.rgba, sphere_views.cameras))
    np.testing.assert_array_equal(from_rgb, sphere_views.alpha)
    np.testing.assert_array_equal(from_rgba, sphere_views.alpha)


def test_clean_up_drops_specks_and_fills_pinholes_but_keeps_thin_parts(sphere_views: Views) -> None:
    rgb = sphere_views.rgb.copy()
    rgb[0, 3, 3] = 0  # one dark pixel of sampling noise in the background
    centre = (32, 32)  # the sphere's centre projects to the image centre
    assert sphere_views.alpha[1][centre]
    rgb[1, centre[0], centre[1]] = 255  # a white pinhole inside the object
    rgb[2, 32, 0:33] = 90  # a one-pixel-wide antenna sticking out of the object: thin, but real
    masks = foreground_masks(check_views(rgb, sphere_views.cameras), ForegroundConfig())
    assert not masks[0, 3, 3]
    assert masks[1, centre[0], centre[1]]
    assert masks[2, 32, 0:33].all()


def test_white_tolerance_decides_what_counts_as_background(sphere_views: Views) -> None:
    rgb = sphere_views.rgb.copy()
    rgb[0][~sphere_views.alpha[0]] = 250  # an off-white background
    strict = foreground_masks(check_views(rgb, sphere_views.cameras), ForegroundConfig(white_tolerance=2))
    tolerant = foreground_masks(check_views(rgb, sphere_views.cameras), ForegroundConfig(white_tolerance=12))
    assert strict[0].all()
    np.testing.assert_array_equal(tolerant[0], sphere_views.alpha[0])


@pytest.mark.parametrize(
    ("views", "message"),
    [
        (np.zeros((4, 64, 64), np.uint8), "must be (V, H, W, 3)"),
        (np.zeros((3, 64, 64, 3), np.uint8), "3 views but 4 cameras"),
        (np.zeros((4, 32, 32, 3), np.uint8), "cameras are for 64x64"),
        (np.zeros((4, 64, 64, 3), np.int32), "uint8 or float"),
        (np.full((4, 64, 64, 3), 2.0, np.float32), "in [0, 1]"),
    ],
)
def test_bad_views_are_refused_with_the_reason(views: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        check_views(views, input_cameras())


def test_a_view_without_foreground_is_named(sphere_views: Views) -> None:
    rgb = sphere_views.rgb.copy()
    rgb[2] = 255
    with pytest.raises(ValueError, match=r"no foreground found in view\(s\) \[2\]"):
        VisualHullReconstructor().reconstruct(rgb, sphere_views.cameras)
