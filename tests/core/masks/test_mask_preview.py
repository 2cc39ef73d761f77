"""The preview image: views tinted per component, a legend of tokens, a file image viewers open."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dreamedit3d_core.masks import MaskConfig, build_components, mask_preview
from dreamedit3d_core.masks.preview import component_colours
from tests.core.masks.mask_scenes import Scene


def test_preview_tints_each_component_and_lists_its_token(multi_part_scene: Scene, tmp_path: Path) -> None:
    scene = multi_part_scene
    components = build_components(
        scene.rgb, scene.depth, scene.part_id, scene.cameras, scene.parts_table, MaskConfig(min_coverage=0.0)
    )
    image = mask_preview(scene.rgb, components.masks, components.tokens)
    num_views, height, width, _ = scene.rgb.shape
    assert image.dtype == np.uint8 and image.shape[1:] == (num_views * width, 3)
    assert image.shape[0] > height + 10 * len(components.tokens)  # one legend line per token
    views = image[:height].reshape(height, num_views, width, 3).transpose(1, 0, 2, 3)  # (H, V*W, 3) -> (V, H, W, 3)
    background = scene.part_id < 0
    np.testing.assert_array_equal(views[background], scene.rgb[background])
    colours = component_colours(len(components.tokens)).astype(int)
    for k in range(len(components.tokens)):
        tinted = views[components.masks[k]].astype(int)
        original = scene.rgb[components.masks[k]].astype(int)
        # blending moves every pixel of the component towards its colour
        assert (np.abs(tinted - colours[k]).sum(axis=1) < np.abs(original - colours[k]).sum(axis=1)).all()
    legend = image[height:]
    for k in range(len(components.tokens)):
        row = legend[2 + 14 * k : 2 + 14 * (k + 1)]
        assert (row.reshape(-1, 3) == colours[k]).all(axis=1).any()  # (rows, W, 3) -> (rows*W, 3): the swatch
        assert (row[:, 20:].max(axis=2) < 100).any()  # dark text beside it
    path = tmp_path / "preview.png"
    Image.fromarray(image).save(path)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), image)


def test_preview_refuses_masks_that_do_not_fit(multi_part_scene: Scene) -> None:
    masks = np.zeros((2, *multi_part_scene.part_id.shape), bool)
    with pytest.raises(ValueError, match="2 masks but 3 tokens"):
        mask_preview(multi_part_scene.rgb, masks, ["<asset0>", "<asset1>", "<asset2>"])
    with pytest.raises(ValueError, match="masks must be"):
        mask_preview(multi_part_scene.rgb, masks[:, :2], ["<asset0>", "<asset1>"])


def test_colours_differ_for_many_components() -> None:
    colours = component_colours(12).astype(int)
    distances = np.abs(colours[:, None] - colours[None]).sum(axis=2)
    assert distances[~np.eye(12, dtype=bool)].min() > 20
