"""Bad configs and bad inputs are refused with a message that names the problem; good configs round-trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from dreamedit3d_core.geometry.cameras import mvdream_orbit
from dreamedit3d_core.masks import MaskConfig, build_components, load_sam_predictor
from tests.core.masks.mask_scenes import Scene


def run(scene: Scene, config: dict, **kwargs: object) -> object:
    return build_components(
        scene.rgb,
        scene.depth,
        scene.part_id,
        scene.cameras,
        scene.parts_table,
        MaskConfig.model_validate(config),
        **kwargs,
    )


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ({"arm": ["Wing"]}, r"group 'arm': 'Wing' matches no part; the asset's parts are \['Cube'"),
        ({"arm": ["Cyl*", "wheel_*"]}, r"group 'arm': 'wheel_\*' matches no part"),
        ({"arm": [17]}, r"group 'arm': 17 matches no part"),
        ({"a": ["Cube"], "b": ["C*"]}, r"part 'Cube' is in two groups: 'a' and 'b'"),
        ({"Sphere": ["Cube"]}, r"group name 'Sphere' is also the name of a part outside that group"),
    ],
)
def test_bad_groups_are_named(multi_part_scene: Scene, groups: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run(multi_part_scene, {"groups": groups})


def test_empty_group_is_refused_when_the_config_loads() -> None:
    with pytest.raises(ValueError, match="group 'arm' is empty"):
        MaskConfig.model_validate(yaml.safe_load("groups:\n  arm: []\n"))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"class_word": "Big Toy"}, "class_word must be one lowercase word"),
        ({"mode": "segment"}, "mode"),
        ({"min_coverage": 1.5}, "min_coverage"),
        ({"colour": "red"}, "colour"),
        ({"sam": {"prompts": {"head": []}}}, "SAM component 'head' has an empty list of prompts"),
        ({"sam": {"view_prompts": {"head": {0: {"labels": [1]}}}}}, "a view prompt needs points or a box"),
        ({"sam": {"view_prompts": {"head": {0: {"points": [[1, 2]], "labels": [1, 0]}}}}}, "1 points but 2 labels"),
        ({"sam": {"view_prompts": {"head": {0: {"box": [10, 10, 5, 20]}}}}}, "u0 < u1"),
        ({"sam": {"model_type": "vit_xl"}}, "model_type"),
    ],
)
def test_bad_settings_are_refused_when_the_config_loads(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MaskConfig.model_validate(config)


def test_configured_group_seen_in_no_view_is_an_error(multi_part_scene: Scene) -> None:
    with pytest.raises(ValueError, match="component 'inner' is visible in no view"):
        run(multi_part_scene, {"groups": {"inner": ["fuze_uv"]}})


def test_dropping_every_part_is_an_error(multi_part_scene: Scene) -> None:
    with pytest.raises(ValueError, match="no component left"):
        run(multi_part_scene, {"min_coverage": 0.9, "small_parts": "drop"})


def test_3d_prompt_in_the_air_is_outside_the_object(single_part_scene: Scene, tiny_predictor: object) -> None:
    config = {"mode": "sam", "sam": {"prompts": {"hat": [[0.0, 0.0, 0.9]]}}}
    with pytest.raises(ValueError, match=r"'hat': point \(0.0, 0.0, 0.9\) lands outside the object.*0\.3\d\d away"):
        run(single_part_scene, config, sam_predictor=tiny_predictor)


def test_3d_prompt_inside_the_object_is_outside_its_surface(multi_part_scene: Scene, tiny_predictor: object) -> None:
    config = {"mode": "sam", "sam": {"prompts": {"core": [[0.0, 0.0, -0.3]]}}}
    with pytest.raises(ValueError, match="'core': point .* visible in no view"):
        run(multi_part_scene, config, sam_predictor=tiny_predictor)


@pytest.mark.parametrize(
    ("sam", "message"),
    [
        ({"prompts": {"lid": ["Handle"]}}, r"part 'Handle' matches no part; the parts are \['toy_mesh'\]"),
        ({"view_prompts": {"lid": {7: {"points": [[3, 3]]}}}}, "names view 7, the renders have 4"),
        ({"view_prompts": {"lid": {1: {"points": [[70.5, 3.5]]}}}}, r"\(70.5, 3.5\) lies outside the 64x64 image"),
        ({}, "mask mode 'sam' needs prompts"),
    ],
)
def test_bad_sam_prompts_are_named(single_part_scene: Scene, tiny_predictor: object, sam: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run(single_part_scene, {"mode": "sam", "sam": sam}, sam_predictor=tiny_predictor)


def test_sam_mode_without_checkpoint_or_predictor(single_part_scene: Scene) -> None:
    with pytest.raises(ValueError, match="needs sam.checkpoint"):
        run(single_part_scene, {"mode": "sam", "sam": {"prompts": {"head": [[0.0, 0.0, 0.6]]}}})


def test_missing_checkpoint_names_the_file(tmp_path: Path, single_part_scene: Scene) -> None:
    missing = tmp_path / "sam_vit_b_01ec64.pth"
    with pytest.raises(FileNotFoundError, match=f"SAM checkpoint not found: {missing}"):
        load_sam_predictor(missing, "vit_b")
    config = {"mode": "sam", "sam": {"checkpoint": str(missing), "prompts": {"head": [[0.0, 0.0, 0.6]]}}}
    with pytest.raises(FileNotFoundError, match="sam_vit_b_01ec64.pth"):
        run(single_part_scene, config)
    with pytest.raises(ValueError, match="unknown SAM model type 'vit_s'"):
        load_sam_predictor(missing, "vit_s")


def test_inputs_that_do_not_fit_together(multi_part_scene: Scene) -> None:
    scene = multi_part_scene
    config = MaskConfig()
    with pytest.raises(ValueError, match=r"cameras \(4 views of 32 px\) do not match the renders"):
        build_components(scene.rgb, scene.depth, scene.part_id, mvdream_orbit(image_size=32), scene.parts_table)
    with pytest.raises(ValueError, match="rgb must be uint8"):
        build_components(scene.rgb.astype(np.float32), scene.depth, scene.part_id, scene.cameras, scene.parts_table)
    with pytest.raises(ValueError, match="part_id must be an integer array"):
        build_components(scene.rgb, scene.depth, scene.depth, scene.cameras, scene.parts_table, config)
    table = {key: values[:3] for key, values in scene.parts_table.items()}
    with pytest.raises(ValueError, match=r"part ids \[3\] in the renders are not in the parts table"):
        build_components(scene.rgb, scene.depth, scene.part_id, scene.cameras, table, config)
    with pytest.raises(ValueError, match="parts table has no 'name' column"):
        build_components(scene.rgb, scene.depth, scene.part_id, scene.cameras, {"part_id": [0, 1, 2, 3, 4]})
    with pytest.raises(ValueError, match="the renders show no foreground"):
        build_components(
            scene.rgb, np.zeros_like(scene.depth), np.full_like(scene.part_id, -1), scene.cameras, scene.parts_table
        )


def test_config_round_trips_through_json() -> None:
    config = MaskConfig.model_validate(
        {
            "mode": "sam",
            "groups": {"legs": ["Leg*", 3]},
            "sam": {
                "checkpoint": "/models/sam_vit_b.pth",
                "prompts": {"head": [[0.0, 0.0, 0.6], "Cube"]},
                "view_prompts": {"head": {2: {"points": [[1.5, 2.5]], "box": [0, 0, 4, 4]}}},
            },
        }
    )
    assert MaskConfig.model_validate_json(config.model_dump_json()) == config
