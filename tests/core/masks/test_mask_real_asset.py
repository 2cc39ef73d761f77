"""A real asset through ingest, render (Blender) and mask: part masks equal the rendered part ids."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from dreamedit3d_core.ingest import ingest_asset
from dreamedit3d_core.masks import MaskConfig, build_components
from dreamedit3d_core.render.config import RenderConfig
from dreamedit3d_core.render.render import render_views


def test_test_scene_parts_become_components_with_exact_masks(shared_assets: Path) -> None:
    asset = ingest_asset(shared_assets / "good" / "TestScene.gltf")
    config = RenderConfig(image_size=64, passes_only=True)
    cameras = config.camera_set()
    with tempfile.TemporaryDirectory(prefix="dreamedit3d-mask-test-") as tmp:
        renders = render_views(asset.write(Path(tmp) / "asset"), cameras, config)
    table = asset.parts_table()
    components = build_components(
        renders.rgb_white, renders.depth, renders.part_id, cameras, table, MaskConfig(min_coverage=0.0)
    )
    assert len(table["part_id"]) == 7
    seen = [part for part in table["part_id"] if (renders.part_id == part).any()]
    assert [row["part_ids"] for row in components.table] == [[part] for part in seen]
    for k, part in enumerate(seen):
        np.testing.assert_array_equal(components.masks[k], renders.part_id == part)
    words = {row["name"]: row["initializer_word"] for row in components.table}
    assert words["Cube"] == "cube" and words["Sphere"] == "sphere" and words["Cylinder"] == "cylinder"
    assert words["Plane"] == "plane"
    assert components.statistics["assigned_share"] == 1.0
