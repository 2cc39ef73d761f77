"""The camera convention every view-producing stage shares (MVDream's get_camera, Blender axes)."""

import numpy as np
import pytest

from dreamedit3d_core.geometry.cameras import (
    intrinsics,
    mvdream_orbit,
    pixel_rays,
    project_points,
    unproject_depth,
)


def test_azimuth_zero_looks_from_minus_y_and_ninety_from_plus_x():
    cameras = mvdream_orbit(4, elevation_deg=0.0, fov_deg=40.0, image_size=64)
    positions = cameras.cam2world[:, :3, 3]
    directions = positions / np.linalg.norm(positions, axis=1, keepdims=True)
    np.testing.assert_allclose(directions[0], [0, -1, 0], atol=1e-9)
    np.testing.assert_allclose(directions[1], [1, 0, 0], atol=1e-9)
    np.testing.assert_allclose(directions[2], [0, 1, 0], atol=1e-9)
    # Every camera looks at the origin (its -Z axis points at it) with +Z world up in the image.
    for matrix in cameras.cam2world:
        forward = -matrix[:3, 2]
        np.testing.assert_allclose(forward, -matrix[:3, 3] / np.linalg.norm(matrix[:3, 3]), atol=1e-9)
        assert matrix[2, 1] > 0.9  # camera +Y is (nearly) world +Z at elevation 0


def test_mvdream_vector_is_the_normalised_flattened_blender_matrix():
    cameras = mvdream_orbit(4, elevation_deg=15.0, azimuth_start_deg=90.0)
    vectors = cameras.mvdream_vectors()
    assert vectors.shape == (4, 16) and vectors.dtype == np.float32
    # MVDream's first camera at azimuth 90, elevation 15: position (cos15, 0, sin15) in Blender axes.
    e = np.radians(15.0)
    np.testing.assert_allclose(vectors[0].reshape(4, 4)[:3, 3], [np.cos(e), 0.0, np.sin(e)], atol=1e-6)
    np.testing.assert_allclose(vectors[:, 12:], [[0, 0, 0, 1]] * 4, atol=1e-7)


def test_projection_and_unprojection_round_trip():
    cameras = mvdream_orbit(4, fov_deg=40.0, image_size=64)
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.5, 0.5, size=(50, 3))
    for cam2world, K in zip(cameras.cam2world, cameras.K):
        uv, depth = project_points(points, cam2world, K)
        assert np.all(depth > 0)
        # A depth map with one pixel set per point unprojects to a point on the same ray at that depth.
        for (u, v), d, point in zip(uv[:5], depth[:5], points[:5]):
            depth_map = np.zeros((64, 64))
            row, col = int(v), int(u)
            depth_map[row, col] = d
            recovered = unproject_depth(depth_map, cam2world, K)[row, col]
            assert np.linalg.norm(recovered - point) < 2.0 / 64 * d  # within a pixel's footprint


def test_pixel_rays_pass_through_projected_pixel_centres():
    cameras = mvdream_orbit(1, image_size=32)
    origins, directions = pixel_rays(cameras.cam2world[0], cameras.K[0], 32)
    points = origins + 2.0 * directions
    uv, _ = project_points(points, cameras.cam2world[0], cameras.K[0])
    v, u = np.meshgrid(np.arange(32) + 0.5, np.arange(32) + 0.5, indexing="ij")
    np.testing.assert_allclose(uv, np.stack([u.ravel(), v.ravel()], axis=1), atol=1e-6)


@pytest.mark.parametrize("fov", [30.0, 49.1])
def test_intrinsics_focal_length(fov):
    K = intrinsics(fov, 256)
    assert K[0, 0] == pytest.approx(128 / np.tan(np.radians(fov) / 2))
    assert (K[0, 2], K[1, 2]) == (128, 128)
