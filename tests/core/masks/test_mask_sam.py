"""3D prompts checked against the renders' geometry, and the SAM path end to end on a tiny random SAM."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from dreamedit3d_core.geometry.cameras import unproject_depth
from dreamedit3d_core.masks import (
    MaskConfig,
    build_components,
    build_tiny_sam,
    load_sam_predictor,
    project_surface_points,
)
from dreamedit3d_core.masks.parts import read_parts_table
from dreamedit3d_core.masks.prompts import gather_view_prompts
from dreamedit3d_core.masks.sam import load_sam_weights
from tests.core.masks.mask_scenes import Scene

TOLERANCE = 0.03
HEAD_TOP = (0.0, 0.0, 0.6)  # seen from above in every view (elevation 15 deg)
BODY_FRONT = (0.0, -0.45, -0.3)  # the -Y face: seen only from azimuth 0


class RecordingPredictor(SamPredictor):
    """The real predictor, remembering what each call got."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[dict] = []
        self.images: list[np.ndarray] = []

    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        self.images.append(image.copy())
        super().set_image(image, image_format)

    def predict(self, point_coords=None, point_labels=None, box=None, **kwargs):  # type: ignore[no-untyped-def]
        self.calls.append({"points": point_coords, "labels": point_labels, "box": box})
        return super().predict(point_coords, point_labels, box, **kwargs)


SAM_CONFIG = {"mode": "sam", "sam": {"prompts": {"head": [HEAD_TOP], "body": [BODY_FRONT]}}}


def run_sam(scene: Scene, predictor: SamPredictor, **overrides: object) -> object:
    config = MaskConfig.model_validate({**SAM_CONFIG, **overrides})
    return build_components(
        scene.rgb, scene.depth, scene.part_id, scene.cameras, scene.parts_table, config, sam_predictor=predictor
    )


def test_sam_path_runs_end_to_end_on_a_tiny_random_sam(single_part_scene: Scene) -> None:
    predictor = RecordingPredictor(build_tiny_sam(seed=0, img_size=64))
    components = run_sam(single_part_scene, predictor)
    num_views, height, width = single_part_scene.depth.shape
    assert components.masks.shape == (2, num_views, height, width)
    assert [row["name"] for row in components.table] == ["head", "body"]
    assert [row["initializer_word"] for row in components.table] == ["head", "body"]
    assert components.statistics["mode"] == "sam"
    # masks stay on the object and each pixel belongs to one component
    assert not (components.masks & (single_part_scene.part_id < 0)).any()
    assert components.masks.sum(axis=0).max() <= 1
    # the body's prompt is seen only from azimuth 0: empty masks and a warning elsewhere
    assert not components.masks[1, 1:].any()
    for view in (1, 2, 3):
        assert any(f"'body' has no visible prompt in view {view}" in w for w in components.warnings)
    # SAM saw each view's image once, and one prompt set per component per view with a prompt: 4 + 1
    assert len(predictor.images) == num_views
    np.testing.assert_array_equal(predictor.images[0], single_part_scene.rgb[0])
    assert len(predictor.calls) == 5


def test_sam_prompts_land_where_the_geometry_says(single_part_scene: Scene) -> None:
    predictor = RecordingPredictor(build_tiny_sam(seed=0, img_size=64))
    run_sam(single_part_scene, predictor)
    head_call = predictor.calls[0]  # view 0, component 'head': its own point, then the body's as negative
    projected = project_surface_points(
        np.array([HEAD_TOP, BODY_FRONT]), single_part_scene.depth, single_part_scene.cameras, TOLERANCE
    )
    expected = projected.pixels[:, 0] - 0.5  # SAM's pixel-index convention
    np.testing.assert_allclose(head_call["points"], expected)
    assert head_call["labels"].tolist() == [1, 0]
    surface = unproject_depth(
        single_part_scene.depth[0].astype(np.float64),
        single_part_scene.cameras.cam2world[0],
        single_part_scene.cameras.K[0],
    )
    col, row = np.floor(head_call["points"][0] + 0.5).astype(int)
    assert np.linalg.norm(surface[row, col] - np.array(HEAD_TOP)) < 0.08


def test_view_prompts_from_yaml_and_part_seeds_reach_sam(single_part_scene: Scene) -> None:
    import yaml

    config_text = """
    mode: sam
    sam:
      prompts:
        whole: [toy_mesh]
      view_prompts:
        lid:
          2: {points: [[30.5, 12.5], [30.5, 40.5]], labels: [1, 0], box: [20, 5, 44, 30]}
    """
    config = MaskConfig.model_validate(yaml.safe_load(config_text))
    predictor = RecordingPredictor(build_tiny_sam(seed=1, img_size=64))
    components = build_components(
        single_part_scene.rgb,
        single_part_scene.depth,
        single_part_scene.part_id,
        single_part_scene.cameras,
        single_part_scene.parts_table,
        config,
        sam_predictor=predictor,
    )
    assert [row["name"] for row in components.table] == ["whole", "lid"]
    assert not components.masks[1, [0, 1, 3]].any()
    lid_call = next(call for call in predictor.calls if call["box"] is not None)
    np.testing.assert_allclose(lid_call["box"], np.array([20, 5, 44, 30]) - 0.5)
    # the lid's own points, then the part seed of 'whole' in view 2 as a negative point
    assert lid_call["labels"].tolist() == [1, 0, 0]
    seed_u, seed_v = lid_call["points"][2] + 0.5
    assert single_part_scene.part_id[2, int(seed_v), int(seed_u)] == 0


class FullMaskPredictor:
    """A stand-in for SamPredictor whose every mask is the whole image, scored by the number of points."""

    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        self.shape = image.shape[:2]

    def predict(self, point_coords=None, point_labels=None, box=None, multimask_output=True):  # type: ignore[no-untyped-def]
        count = 0 if point_coords is None else len(point_coords)
        return np.ones((1, *self.shape), bool), np.array([float(count)]), None


def test_overlapping_masks_go_to_the_nearest_prompt(single_part_scene: Scene) -> None:
    components = run_sam(single_part_scene, FullMaskPredictor())
    head, body = components.masks[:, 0]
    assert components.statistics["overlap_pixels"] > 0
    np.testing.assert_array_equal(head | body, single_part_scene.part_id[0] >= 0)
    assert not (head & body).any()
    projected = project_surface_points(
        np.array([HEAD_TOP, BODY_FRONT]), single_part_scene.depth, single_part_scene.cameras, TOLERANCE
    )
    rows, cols = np.nonzero(head | body)
    distances = [np.hypot(cols + 0.5 - u, rows + 0.5 - v) for u, v in projected.pixels[:, 0]]
    nearest_head = distances[0] < distances[1]
    np.testing.assert_array_equal(head[rows, cols], nearest_head)


def test_overlap_by_score_or_allowed(single_part_scene: Scene) -> None:
    scored = run_sam(
        single_part_scene,
        FullMaskPredictor(),
        sam={
            **SAM_CONFIG["sam"],
            "overlap_rule": "score",
            "negatives_from_other_components": False,
            "view_prompts": {"body": {0: {"points": [[32.5, 50.5], [20.5, 50.5]]}}},
        },
    )
    # view 0: body holds three points, head one: body's mask scores higher and wins every shared pixel
    np.testing.assert_array_equal(scored.masks[1, 0], single_part_scene.part_id[0] >= 0)
    assert not scored.masks[0, 0].any()

    overlapping = run_sam(single_part_scene, FullMaskPredictor(), allow_overlap=True)
    assert overlapping.masks[:, 0].all(axis=0)[single_part_scene.part_id[0] >= 0].all()


def test_component_whose_masks_end_up_empty_is_an_error(single_part_scene: Scene) -> None:
    class EmptyPredictor(FullMaskPredictor):
        def predict(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            masks, scores, low = super().predict(*args, **kwargs)
            return np.zeros_like(masks), scores, low

    with pytest.raises(ValueError, match="component 'head' is visible in no view"):
        run_sam(single_part_scene, EmptyPredictor())


def test_checkpoint_round_trip_through_a_safe_load(tmp_path: Path, single_part_scene: Scene) -> None:
    def predict(model: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
        predictor = SamPredictor(model)
        predictor.set_image(single_part_scene.rgb[0])
        masks, scores, _ = predictor.predict(np.array([[30.0, 20.0]]), np.array([1]))
        return masks, scores

    original = build_tiny_sam(seed=3, img_size=64)
    path = tmp_path / "tiny_sam.pth"
    torch.save(original.state_dict(), path)
    with torch.device("meta"):
        empty = build_tiny_sam(seed=4, img_size=64)
    loaded = load_sam_weights(empty, path)
    expected_masks, expected_scores = predict(original)
    masks, scores = predict(loaded)
    np.testing.assert_array_equal(masks, expected_masks)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-6)


def test_checkpoint_of_another_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tiny_sam.pth"
    torch.save(build_tiny_sam().state_dict(), path)
    with pytest.raises(ValueError, match="does not match this SAM model"):
        load_sam_predictor(path, "vit_b")


class Payload:
    """Anything but tensors: torch.load(weights_only=True) must refuse to rebuild it."""


def test_checkpoint_holding_arbitrary_objects_is_not_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"payload": Payload()}, path)
    with pytest.raises(ValueError, match="refused to unpickle"):
        load_sam_predictor(path, "vit_b")


def test_gathered_prompts_match_the_config(single_part_scene: Scene) -> None:
    config = MaskConfig.model_validate(SAM_CONFIG)
    names, prompts, warnings = gather_view_prompts(
        config.sam,
        single_part_scene.depth,
        single_part_scene.part_id,
        single_part_scene.cameras,
        read_parts_table(single_part_scene.parts_table),
    )
    assert names == ["head", "body"]
    assert all(prompt is not None for prompt in prompts[0])
    assert prompts[1][0] is not None and prompts[1][1:] == [None, None, None]
    assert len(warnings) == 3


@pytest.mark.weights
def test_real_sam_checkpoint_segments_the_head(single_part_scene: Scene) -> None:
    checkpoint = os.environ.get("DREAMEDIT3D_SAM_CHECKPOINT")
    if not checkpoint:
        pytest.skip("set DREAMEDIT3D_SAM_CHECKPOINT (and DREAMEDIT3D_SAM_MODEL_TYPE) to a local SAM checkpoint")
    predictor = load_sam_predictor(checkpoint, os.environ.get("DREAMEDIT3D_SAM_MODEL_TYPE", "vit_h"))
    components = run_sam(single_part_scene, predictor)
    assert components.masks[0].any(axis=(1, 2)).all()
