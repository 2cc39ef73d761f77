"""Fixtures of the reconstruct tests: exact synthetic views (recon_scenes.py) and their reconstructions,
made once per session on small grids (48^3) and textures (128 px) to stay fast."""

from __future__ import annotations

import pytest

from dreamedit3d_core.reconstruct import ReconstructConfig, ReconstructedMesh, reconstruct
from tests.core.reconstruct.recon_scenes import Box, Sphere, Views, input_cameras, ray_cast, red_plus_x

SPHERE = Sphere((0.0, 0.0, 0.0), 0.6)
BOX = Box((-0.5, -0.35, -0.4), (0.5, 0.35, 0.3))


def small_config(**overrides: object) -> ReconstructConfig:
    values = {"grid_resolution": 48, "target_faces": 3000, "texture": {"size": 128}}
    values.update(overrides)
    return ReconstructConfig.model_validate(values)


@pytest.fixture(scope="session")
def sphere_views() -> Views:
    return ray_cast([SPHERE], input_cameras(), red_plus_x)


@pytest.fixture(scope="session")
def box_views() -> Views:
    return ray_cast([BOX], input_cameras())


@pytest.fixture(scope="session")
def sphere_mesh(sphere_views: Views) -> ReconstructedMesh:
    return reconstruct(sphere_views.rgb, sphere_views.cameras, small_config())


@pytest.fixture(scope="session")
def box_mesh(box_views: Views) -> ReconstructedMesh:
    return reconstruct(box_views.rgba, box_views.cameras, small_config())
