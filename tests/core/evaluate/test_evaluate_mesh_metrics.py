"""Chamfer distance and F-score between sampled surfaces: known offsets give known values."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from dreamedit3d_core.evaluate import point_distance, surface_distance


def _square(offset: float = 0.0) -> trimesh.Trimesh:
    vertices = np.array([[-0.5, -0.5, offset], [0.5, -0.5, offset], [0.5, 0.5, offset], [-0.5, 0.5, offset]])
    return trimesh.Trimesh(vertices, [[0, 1, 2], [0, 2, 3]])


def test_parallel_squares_are_as_far_apart_as_their_offset() -> None:
    distance = surface_distance(_square(0.0), _square(0.05), threshold=0.02, samples=40_000)
    # the lateral gap to the nearest sample adds a little on top of the 0.05 offset
    assert distance.chamfer == pytest.approx(0.05, rel=0.03)
    assert distance.accuracy == pytest.approx(distance.completeness, rel=0.03)
    assert distance.f_score == 0.0  # every point is farther than the threshold
    loose = surface_distance(_square(0.0), _square(0.05), threshold=0.06, samples=40_000)
    assert loose.f_score == pytest.approx(1.0)


def test_a_mesh_against_itself_is_at_sampling_distance() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    distance = surface_distance(sphere, sphere, threshold=0.02, samples=50_000)
    assert distance.chamfer < 0.004
    assert distance.f_score > 0.99


def test_shifted_sphere_chamfer_grows_with_the_shift() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    shifted = sphere.copy().apply_translation([0.1, 0.0, 0.0])
    distance = surface_distance(sphere, shifted, threshold=0.02, samples=50_000)
    # a point at angle t from the shift axis is |0.1 cos t| off the other sphere to first order: mean 0.05
    assert distance.chamfer == pytest.approx(0.05, abs=0.006)


def test_one_sided_distances_tell_missing_parts_from_extra_parts() -> None:
    full = np.random.default_rng(0).uniform(-1, 1, (2000, 3))
    half = full[full[:, 0] < 0]
    distance = point_distance(half, full, threshold=0.05)
    assert distance.precision == 1.0  # everything predicted is on the reference
    assert distance.recall < 0.7  # but half of the reference is missing
    with pytest.raises(ValueError, match="at least one point"):
        point_distance(np.zeros((0, 3)), full, threshold=0.05)
