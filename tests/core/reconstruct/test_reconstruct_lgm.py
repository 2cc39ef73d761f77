"""The LGM adapter: input conversion (Plücker rays in LGM's frame), the network on a tiny random config,
weight loading from safetensors, and the whole reconstructor end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from dreamedit3d_core.geometry.cameras import mvdream_orbit, orbit_cameras, project_points
from dreamedit3d_core.reconstruct import LGMReconstructConfig, ReconstructConfig, render_meshes
from dreamedit3d_core.reconstruct.lgm import (
    LGMArchitectureConfig,
    LGMNetwork,
    LGMReconstructor,
    LGMWeightsError,
    lgm_inputs,
    load_lgm,
    load_lgm_weights,
)
from dreamedit3d_core.reconstruct.lgm.inputs import IMAGENET_MEAN, IMAGENET_STD, lgm_focal
from dreamedit3d_core.reconstruct.raycast import sample_texture
from tests.core.reconstruct.recon_scenes import Views

TINY = LGMArchitectureConfig(
    input_size=32,
    down_channels=(8, 16, 16),
    down_attention=(False, False, True),
    up_channels=(16, 16),
    up_attention=(True, False),
    splat_size=16,
    attention_heads=2,
    norm_groups=4,
)


def tiny_model(seed: int = 0) -> LGMNetwork:
    torch.manual_seed(seed)
    return LGMNetwork(TINY).eval()


def test_plucker_moments_are_orthogonal_to_directions_and_name_the_camera_centre(sphere_views: Views) -> None:
    inputs = lgm_inputs(sphere_views.rgb / 255.0, sphere_views.cameras, TINY)
    rays = inputs.images[0, :, 3:].numpy()  # (V, 6, S, S)
    assert inputs.images.shape == (1, 4, 9, 32, 32)
    for view in range(4):
        moment = rays[view, :3].reshape(3, -1).T  # (S*S, 3)
        direction = rays[view, 3:].reshape(3, -1).T
        np.testing.assert_allclose(np.linalg.norm(direction, axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(np.einsum("ij,ij->i", moment, direction), 0.0, atol=1e-5)
        # every ray passes through the camera centre c: moment = c x d, so [d]_x^T c = -moment; solve for c
        cross = np.zeros((len(direction), 3, 3))
        cross[:, 0, 1], cross[:, 0, 2], cross[:, 1, 2] = -direction[:, 2], direction[:, 1], -direction[:, 0]
        cross = cross - cross.transpose(0, 2, 1)  # skew matrices with cross @ c = d x c
        centre, *_ = np.linalg.lstsq(cross.reshape(-1, 3), -moment.reshape(-1), rcond=None)
        np.testing.assert_allclose(centre, inputs.cam2world[view, :3, 3], atol=1e-4)
        # ... which is our camera's centre, carried into LGM's frame
        ours = inputs.world_to_lgm @ np.append(sphere_views.cameras.cam2world[view, :3, 3], 1.0)
        np.testing.assert_allclose(centre, ours[:3], atol=1e-4)


def test_first_camera_is_lgms_reference_camera_and_the_orbit_keeps_radius(sphere_views: Views) -> None:
    inputs = lgm_inputs(sphere_views.rgb / 255.0, sphere_views.cameras, TINY)
    expected = np.eye(4)
    expected[2, 3] = TINY.cam_radius
    np.testing.assert_allclose(inputs.cam2world[0], expected, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(inputs.cam2world[:, :3, 3], axis=1), TINY.cam_radius, atol=1e-9)
    # our world origin (the object's centre) stays on every camera's optical axis
    origin = inputs.world_to_lgm @ np.array([0.0, 0.0, 0.0, 1.0])
    for cam2world in inputs.cam2world:
        to_origin = origin[:3] - cam2world[:3, 3]
        np.testing.assert_allclose(to_origin / np.linalg.norm(to_origin), -cam2world[:3, 2], atol=1e-9)


def test_elevation_zero_views_reproduce_lgms_default_rays() -> None:
    """At elevation 0, LGM's prepare_default_rays: cameras at (1.5 sin a, 0, 1.5 cos a) in OpenGL axes."""
    cameras = mvdream_orbit(4, elevation_deg=0.0, fov_deg=40.0, image_size=64)
    inputs = lgm_inputs(np.ones((4, 64, 64, 3), np.float32), cameras, TINY)
    size, focal = TINY.input_size, lgm_focal(TINY)
    rows, cols = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    for view, azimuth in enumerate(np.radians([0.0, 90.0, 180.0, 270.0])):
        position = 1.5 * np.array([np.sin(azimuth), 0.0, np.cos(azimuth)])
        backward = position / 1.5
        right = np.cross([0.0, 1.0, 0.0], backward)
        up = np.cross(backward, right)
        local = np.stack([(cols - size / 2) / focal, -(rows - size / 2) / focal, -np.ones_like(cols)], -1)
        direction = local @ np.stack([right, up, backward], axis=1).T
        direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
        expected = np.concatenate([np.cross(position, direction), direction], axis=-1).transpose(2, 0, 1)
        np.testing.assert_allclose(inputs.images[0, view, 3:].numpy(), expected, atol=1e-5)


def test_resampled_pixels_show_what_our_camera_saw_along_the_same_ray(sphere_views: Views) -> None:
    rgb = sphere_views.rgb / 255.0
    inputs = lgm_inputs(rgb, sphere_views.cameras, TINY)
    lgm_to_world = np.linalg.inv(inputs.world_to_lgm)
    view = 1
    rays = inputs.images[0, view, 3:].numpy().reshape(6, -1).T  # (S*S, 6)
    origin = inputs.cam2world[view, :3, 3]
    # a point two units along each LGM ray, back in our world, projected by our camera
    points = (lgm_to_world @ np.concatenate([origin + 2.0 * rays[:, 3:], np.ones((len(rays), 1))], 1).T).T[:, :3]
    uv, _ = project_points(points, sphere_views.cameras.cam2world[view], sphere_views.cameras.K[view])
    inside = (uv.min(axis=1) > 1) & (uv.max(axis=1) < 63)
    ours = sample_texture(rgb[view], np.stack([uv[inside, 0] / 64, 1 - uv[inside, 1] / 64], axis=1))
    np.testing.assert_allclose(inputs.rgb[view].reshape(-1, 3)[inside], ours, atol=1e-5)
    # outside our narrower field of view LGM's image is white, normalised like ImageNet
    white = (1.0 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(inputs.images[0, view, :3, 0, 0].numpy(), white, atol=1e-5)


def test_lgm_refuses_views_that_are_not_four_quarter_turns(sphere_views: Views) -> None:
    rgb = sphere_views.rgb / 255.0
    with pytest.raises(ValueError, match="exactly 4 views"):
        lgm_inputs(rgb[:3], orbit_cameras([0, 120, 240], 15.0, fov_deg=40.0, image_size=64), TINY)
    with pytest.raises(ValueError, match="azimuth steps of 90"):
        lgm_inputs(rgb, orbit_cameras([0, 45, 90, 135], 15.0, fov_deg=40.0, image_size=64), TINY)


def test_tiny_network_outputs_valid_gaussians_per_output_pixel(sphere_views: Views) -> None:
    inputs = lgm_inputs(sphere_views.rgb / 255.0, sphere_views.cameras, TINY)
    with torch.no_grad():
        gaussians = tiny_model()(inputs.images)
    assert gaussians.shape == (1, 4 * 16 * 16, 14)
    position, opacity, scale = gaussians[0, :, :3], gaussians[0, :, 3], gaussians[0, :, 4:7]
    rotation, colour = gaussians[0, :, 7:11], gaussians[0, :, 11:]
    assert position.abs().max() <= 1.0 and ((opacity > 0) & (opacity < 1)).all() and (scale > 0).all()
    torch.testing.assert_close(rotation.norm(dim=-1), torch.ones(len(rotation)))
    assert ((colour >= 0) & (colour <= 1)).all()
    with pytest.raises(ValueError, match=r"LGM takes \(B, 4, 9, 32, 32\)"):
        tiny_model()(inputs.images[:, :, :, :16, :16])


def test_architecture_presets_match_lgms_released_layout() -> None:
    with torch.device("meta"):
        big = LGMNetwork(LGMArchitectureConfig.preset("big"))
    state = big.state_dict()
    assert state["unet.conv_in.weight"].shape == (64, 9, 3, 3)
    assert state["unet.down_blocks.3.attns.0.attn.qkv.weight"].shape == (1536, 512)
    assert "unet.down_blocks.3.attns.0.attn.qkv.bias" not in state
    assert state["unet.up_blocks.4.nets.2.conv1.weight"].shape == (128, 128 + 64, 3, 3)
    assert state["conv.weight"].shape == (14, 14, 1, 1)
    with pytest.raises(ValueError, match="splat_size must be"):
        LGMArchitectureConfig(splat_size=64)


def test_weights_load_from_safetensors_and_mismatches_are_named(sphere_views: Views, tmp_path: Path) -> None:
    source = tiny_model(seed=1)
    path = tmp_path / "tiny_lgm.safetensors"
    save_file({key: value.contiguous() for key, value in source.state_dict().items()}, str(path))
    loaded = load_lgm_weights(tiny_model(seed=2), path)
    inputs = lgm_inputs(sphere_views.rgb / 255.0, sphere_views.cameras, TINY).images
    with torch.no_grad():
        torch.testing.assert_close(loaded(inputs), source(inputs))
    # the released checkpoint is float16, and big: load it into a model that has no memory yet
    save_file({key: value.half().contiguous() for key, value in source.state_dict().items()}, str(path))
    with torch.device("meta"):
        empty = LGMNetwork(TINY)
    loaded = load_lgm_weights(empty, path).eval()
    assert next(loaded.parameters()).dtype == torch.float32
    with torch.no_grad():
        torch.testing.assert_close(loaded(inputs), source(inputs), atol=2e-2, rtol=2e-2)

    with pytest.raises(LGMWeightsError, match="not found: .*missing.safetensors"):
        load_lgm_weights(tiny_model(), tmp_path / "missing.safetensors")
    with pytest.raises(LGMWeightsError, match="set reconstruct.lgm.weights"):
        load_lgm(LGMReconstructConfig(weights=None))
    with pytest.raises(LGMWeightsError, match="missing keys"):
        load_lgm(LGMReconstructConfig(weights=path, preset="tiny"))
    pickle = tmp_path / "model.pt"
    pickle.write_bytes(b"not loaded")
    with pytest.raises(LGMWeightsError, match="must be a .safetensors file"):
        load_lgm_weights(tiny_model(), pickle)


def test_lgm_reconstructor_end_to_end_on_a_tiny_random_model(sphere_views: Views) -> None:
    config = ReconstructConfig(method="lgm", grid_resolution=32, target_faces=2000, texture={"size": 64})
    mesh = LGMReconstructor(tiny_model()).reconstruct(sphere_views.rgb, sphere_views.cameras, config)
    assert mesh.info["method"] == "lgm" and mesh.info["num_gaussians"] == 4 * 16 * 16
    assert len(mesh.faces) > 100 and mesh.texture.shape == (64, 64, 3)
    # clipped to the visual hull: the mesh never leaves the silhouettes it was given
    rendered = render_meshes(mesh.trimesh_world, sphere_views.cameras, supersample=1)
    assert (rendered.mask & ~sphere_views.alpha).sum() < 0.03 * sphere_views.alpha.sum()
