"""3D prompts against the renders' geometry: where a point on the asset is seen, and where it is hidden."""

from __future__ import annotations

import numpy as np
import pytest

from dreamedit3d_core.geometry.cameras import unproject_depth
from dreamedit3d_core.masks import project_surface_points
from tests.core.masks.mask_scenes import ARM, BODY, DIE, HEAD, HIDDEN, PART_NAMES, Scene, ray_cast

TOLERANCE = 0.03
HEAD_TOP = (0.0, 0.0, 0.6)  # seen from above in every view (elevation 15 deg)
BODY_FRONT = (0.0, -0.45, -0.3)  # the -Y face: seen only from azimuth 0
BEHIND_HEAD = (0.0, 0.44, 0.0)  # on the body's top face, behind the head as seen from azimuth 0


def first_hit_distance(scene: Scene, view: int, point: np.ndarray) -> tuple[float, float]:
    """Ray length from camera `view` to the first surface towards `point`, and to the point itself."""
    origin = scene.cameras.cam2world[view][:3, 3]
    direction = (point - origin) / np.linalg.norm(point - origin)
    hits = [primitive.hit(origin[None], direction[None])[0] for primitive in (BODY, HEAD, ARM, DIE, HIDDEN)]
    return float(min(hits)), float(np.linalg.norm(point - origin))


def test_rendered_surface_points_are_visible_at_their_own_pixel(multi_part_scene: Scene) -> None:
    generator = np.random.default_rng(0)
    for view in range(4):
        surface = unproject_depth(
            multi_part_scene.depth[view].astype(np.float64),
            multi_part_scene.cameras.cam2world[view],
            multi_part_scene.cameras.K[view],
        )
        rows, cols = np.nonzero(multi_part_scene.depth[view] > 0)
        pick = generator.choice(len(rows), size=20, replace=False)
        projected = project_surface_points(
            surface[rows[pick], cols[pick]], multi_part_scene.depth, multi_part_scene.cameras, TOLERANCE
        )
        assert projected.visible[:, view].all()
        np.testing.assert_allclose(projected.pixels[:, view], np.stack([cols[pick] + 0.5, rows[pick] + 0.5], 1))
        np.testing.assert_allclose(projected.surface_distance, 0.0, atol=1e-5)


def test_surface_point_projects_onto_a_pixel_whose_depth_unprojects_to_it(multi_part_scene: Scene) -> None:
    points = np.array([HEAD_TOP, BODY_FRONT])
    projected = project_surface_points(points, multi_part_scene.depth, multi_part_scene.cameras, TOLERANCE)
    assert projected.visible[0].tolist() == [True, True, True, True]
    assert projected.visible[1].tolist() == [True, False, False, False]
    # a pixel spans ~0.045 units here: the pixel centre's surface point is within half a pixel diagonal
    pixel_footprint = 2 * 3.2 * np.tan(np.radians(20)) / multi_part_scene.depth.shape[-1]
    for index, view in zip(*np.nonzero(projected.visible), strict=True):
        u, v = projected.pixels[index, view]
        surface = unproject_depth(
            multi_part_scene.depth[view].astype(np.float64),
            multi_part_scene.cameras.cam2world[view],
            multi_part_scene.cameras.K[view],
        )
        seen = surface[int(v), int(u)]
        assert np.linalg.norm(seen - points[index]) < TOLERANCE + pixel_footprint


def test_occluded_point_is_not_visible(multi_part_scene: Scene) -> None:
    point = np.array(BEHIND_HEAD)
    first_hit, distance = first_hit_distance(multi_part_scene, 0, point)
    assert distance - first_hit > 3 * TOLERANCE  # the geometry says: the head hides it from view 0
    first_hit, distance = first_hit_distance(multi_part_scene, 2, point)
    assert first_hit == pytest.approx(distance)  # and nothing hides it from view 2 (azimuth 180)
    projected = project_surface_points(point[None], multi_part_scene.depth, multi_part_scene.cameras, TOLERANCE)
    assert not projected.visible[0, 0]
    assert projected.visible[0, 2]
    assert projected.surface_distance[0] < TOLERANCE

    hidden = project_surface_points(
        np.array([HIDDEN.centre]), multi_part_scene.depth, multi_part_scene.cameras, TOLERANCE
    )
    assert not hidden.visible.any() and hidden.surface_distance[0] > 0.1


def test_visibility_agrees_with_ray_casting_on_random_surface_points() -> None:
    scene = ray_cast([BODY, HEAD, ARM, DIE, HIDDEN], PART_NAMES, ["Mat"] * 5, image_size=128)
    generator = np.random.default_rng(1)
    directions = generator.normal(size=(300, 3))
    head = np.asarray(HEAD.centre) + HEAD.radius * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    body = generator.uniform(BODY.low, BODY.high, size=(300, 3))
    axis, side = generator.integers(0, 3, 300), generator.integers(0, 2, 300)
    body[np.arange(300), axis] = np.where(side == 1, np.asarray(BODY.high)[axis], np.asarray(BODY.low)[axis])
    points = np.concatenate([head[head[:, 2] > 0], body])  # (N, 3) on the head above the body, and the body
    projected = project_surface_points(points, scene.depth, scene.cameras, TOLERANCE)
    for view in range(scene.cameras.num_views):
        origin = scene.cameras.cam2world[view][:3, 3]
        directions = (points - origin) / np.linalg.norm(points - origin, axis=1, keepdims=True)
        first_hit = np.min(
            [p.hit(np.broadcast_to(origin, points.shape), directions) for p in (BODY, HEAD, ARM, DIE)], 0
        )
        hidden_by = np.linalg.norm(points - origin, axis=1) - first_hit
        seen, covered = hidden_by < 1e-6, hidden_by > 0.1
        # within a pixel of a silhouette the answer follows the pixels; everywhere else it must be right
        assert projected.visible[seen, view].mean() > 0.95
        assert projected.visible[covered, view].sum() == 0
