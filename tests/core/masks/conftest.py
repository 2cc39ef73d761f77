"""Fixtures of the mask tests: synthetic renders with exact geometry (see mask_scenes.py)."""

from __future__ import annotations

import pytest

from tests.core.masks.mask_scenes import ARM, BODY, DIE, HEAD, HIDDEN, PART_NAMES, Box, Scene, Sphere, ray_cast


@pytest.fixture(scope="session")
def multi_part_scene() -> Scene:
    return ray_cast([BODY, HEAD, ARM, DIE, HIDDEN], PART_NAMES, ["Default-Material", "Skin", "Metal", "Bone", "Mat"])


@pytest.fixture(scope="session")
def single_part_scene() -> Scene:
    """The same body and head as one mesh: the asset a user names components of with SAM prompts."""
    body = Box(BODY.low, BODY.high, part=0)
    head = Sphere(HEAD.centre, HEAD.radius, part=0)
    return ray_cast([body, head], ["toy_mesh"], ["Material.001"])


@pytest.fixture(scope="session")
def tiny_predictor() -> object:
    """A SamPredictor around a tiny random Segment Anything model (64 px input)."""
    from segment_anything import SamPredictor

    from dreamedit3d_core.masks import build_tiny_sam

    return SamPredictor(build_tiny_sam(seed=0, img_size=64))
