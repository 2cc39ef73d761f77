"""Training data: resizing to the model, masks at every resolution, flips that stay true to the cameras."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from dreamedit3d_core.geometry.cameras import orbit_cameras, project_points
from dreamedit3d_core.personalize import flip_views, mirror_cameras, prepare_training_data
from tests.core.personalize.personalize_scenes import tiny_model, two_part_views


def test_views_at_the_model_size_are_taken_as_they_are() -> None:
    model = tiny_model()
    rgb, masks, cameras = two_part_views(32)
    data = prepare_training_data(model, rgb, masks, cameras)
    assert data.images.shape == (4, 3, 32, 32) and data.masks.shape == (2, 4, 32, 32)
    expected = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert torch.allclose(data.images, expected)
    assert torch.equal(data.masks, torch.from_numpy(masks).float())
    assert data.latent_mean.shape == (4, 4, 8, 8) and (data.latent_std > 0).all()
    # a cell of the 8x8 grid holds the share of its 4x4 pixels that the component covers
    coarse = data.masks_at(8)
    assert torch.allclose(coarse.sum(dim=(-2, -1)) * 16, torch.from_numpy(masks).float().sum(dim=(-2, -1)))


def test_larger_views_are_resized_to_the_model() -> None:
    model = tiny_model()
    rgb, masks, cameras = two_part_views(64)
    data = prepare_training_data(model, rgb, masks, cameras)
    small = prepare_training_data(model, *two_part_views(32))
    assert data.images.shape == (4, 3, 32, 32)
    assert data.images.min() >= -1 and data.images.max() <= 1
    # the 64 px scene is the 32 px one drawn twice as large: area-resized masks agree
    assert torch.allclose(data.masks, small.masks)
    assert (data.images - small.images).abs().mean() < 0.05  # only the edges blur


def test_latent_draws_follow_the_generator() -> None:
    model = tiny_model()
    data = prepare_training_data(model, *two_part_views(32))
    a = data.sample_latents(torch.Generator().manual_seed(3))
    b = data.sample_latents(torch.Generator().manual_seed(3))
    c = data.sample_latents(torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda rgb, masks, cams: (rgb[:3], masks[:, :3], cams[:3]), "V=4"),
        (lambda rgb, masks, cams: (rgb.astype(np.float32), masks, cams), "uint8"),
        (lambda rgb, masks, cams: (rgb[:, :, :30], masks[:, :, :, :30], cams), "square"),
        (lambda rgb, masks, cams: (rgb, masks[:, :, :16], cams), "masks must be bool"),
        (lambda rgb, masks, cams: (rgb, np.concatenate([masks, np.zeros_like(masks[:1])]), cams), "component(s) [2]"),
        (lambda rgb, masks, cams: (rgb, masks, cams[:, :12]), "cameras must be"),
        (lambda rgb, masks, cams: (rgb, masks, np.full_like(cams, np.nan)), "NaN"),
    ],
)
def test_bad_inputs_are_refused_with_a_reason(change: object, message: str) -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match=re.escape(message)):
        prepare_training_data(model, *change(*two_part_views(32)))  # type: ignore[operator]


def test_mirrored_orbit_cameras_are_the_orbit_at_minus_the_azimuth() -> None:
    azimuths = np.array([0.0, 90.0, 180.0, 270.0, 33.0])
    original = torch.from_numpy(orbit_cameras(azimuths, 15.0, fov_deg=40, image_size=32).mvdream_vectors())
    expected = torch.from_numpy(orbit_cameras(-azimuths, 15.0, fov_deg=40, image_size=32).mvdream_vectors())
    mirrored = mirror_cameras(original)
    assert torch.allclose(mirrored, expected, atol=1e-6)
    assert torch.equal(mirror_cameras(mirrored), original)


def test_a_flipped_view_is_what_the_mirrored_camera_sees_of_the_mirrored_object() -> None:
    cameras = orbit_cameras([0.0, 90.0, 200.0], 15.0, fov_deg=40, image_size=32)
    points = np.random.default_rng(0).uniform(-0.5, 0.5, size=(50, 3))
    mirrored_points = points * np.array([-1.0, 1.0, 1.0])
    for cam2world, K in zip(cameras.cam2world, cameras.K):
        flat = torch.from_numpy(cam2world.reshape(1, 16))
        mirrored = mirror_cameras(flat).reshape(4, 4).numpy()
        assert np.isclose(np.linalg.det(mirrored[:3, :3]), 1.0)  # still a rotation: a real camera
        pixels, depth = project_points(points, cam2world, K)
        pixels_m, depth_m = project_points(mirrored_points, mirrored, K)
        assert np.allclose(pixels_m[:, 0], 32 - pixels[:, 0]) and np.allclose(pixels_m[:, 1], pixels[:, 1])
        assert np.allclose(depth, depth_m)


def test_flip_views_flips_images_masks_and_cameras_together() -> None:
    model = tiny_model()
    data = prepare_training_data(model, *two_part_views(32))
    flipped = flip_views(model, data)
    assert flipped.flipped and torch.equal(flipped.images, data.images.flip(-1))
    assert torch.equal(flipped.masks, data.masks.flip(-1))
    assert torch.equal(flipped.cameras, mirror_cameras(data.cameras))
    assert not torch.allclose(flipped.latent_mean, data.latent_mean)
