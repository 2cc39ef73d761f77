"""Masked PSNR / SSIM and silhouette IoU: known values, masks that really restrict, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from dreamedit3d_core.evaluate import masked_psnr, masked_ssim, on_white, per_view_iou, silhouette, silhouette_iou


def _image(seed: int = 0, shape: tuple[int, ...] = (32, 32, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_identical_images_have_infinite_psnr_and_ssim_one() -> None:
    image = _image()
    assert masked_psnr(image, image) == float("inf")
    assert masked_ssim(image, image) == pytest.approx(1.0)


def test_psnr_of_a_constant_offset_is_known() -> None:
    image = np.full((16, 16, 3), 100, np.uint8)
    assert masked_psnr(image, image + 10) == pytest.approx(20 * np.log10(255 / 10))
    as_float = image / 255.0
    assert masked_psnr(as_float, as_float + 0.1) == pytest.approx(20.0)


def test_masks_restrict_both_metrics_to_the_kept_pixels() -> None:
    source = _image(1, (2, 32, 32, 3))
    edited = source.copy()
    edited[:, :, 16:] = 255 - edited[:, :, 16:]  # the edit changes the right half of every view
    keep = np.zeros((2, 32, 32), bool)
    keep[:, :, :12] = True  # the unnamed component: the left part, away from the edit
    assert masked_psnr(source, edited, keep) == float("inf")
    assert masked_ssim(source, edited, keep) > 0.99
    assert masked_psnr(source, edited) < 10
    assert masked_ssim(source, edited) < 0.7


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        masked_psnr(_image(), _image(shape=(16, 16, 3)))
    with pytest.raises(ValueError, match="selects no pixels"):
        masked_psnr(_image(), _image(1), np.zeros((32, 32), bool))
    with pytest.raises(ValueError, match="mask shape"):
        masked_ssim(_image(), _image(1), np.ones((8, 8), bool))
    with pytest.raises(ValueError, match="differ in dtype"):
        masked_psnr(_image(), _image().astype(np.float32))


def test_silhouette_iou_of_overlapping_squares() -> None:
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[0:4, 0:4] = True  # 16 pixels
    b[2:6, 0:4] = True  # 16 pixels, 8 shared
    assert silhouette_iou(a, b) == pytest.approx(8 / 24)
    assert silhouette_iou(a, a) == 1.0
    assert np.isnan(silhouette_iou(np.zeros_like(a), np.zeros_like(a)))
    np.testing.assert_allclose(per_view_iou(np.stack([a, a]), np.stack([b, a])), [8 / 24, 1.0])


def test_silhouettes_and_white_compositing_from_rgba_and_rgb() -> None:
    rgba = np.zeros((1, 4, 4, 4), np.uint8)
    rgba[0, 1:3, 1:3] = [10, 20, 30, 255]
    np.testing.assert_array_equal(silhouette(rgba)[0], rgba[0, ..., 3] > 0)
    rgb = on_white(rgba)
    assert (rgb[0, 0, 0] == 255).all() and (rgb[0, 1, 1] == [10, 20, 30]).all()
    np.testing.assert_array_equal(silhouette(rgb), silhouette(rgba))
