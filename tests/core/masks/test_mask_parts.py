"""Components from parts: masks equal the part-id renders, groups, small parts, whole objects."""

from __future__ import annotations

import numpy as np
import pytest

from dreamedit3d_core.masks import Components, MaskConfig, build_components
from tests.core.masks.mask_scenes import Scene


def run(scene: Scene, **config: object) -> Components:
    return build_components(
        scene.rgb, scene.depth, scene.part_id, scene.cameras, scene.parts_table, MaskConfig(**config)
    )


def test_part_masks_equal_the_part_id_render_in_every_view(multi_part_scene: Scene) -> None:
    components = run(multi_part_scene, min_coverage=0.0)
    num_views, height, width = multi_part_scene.part_id.shape
    # fuze_uv (id 4) sits inside the body: seen in no view, so it cannot be a component
    assert [row["part_ids"] for row in components.table] == [[0], [1], [2], [3]]
    assert components.masks.shape == (4, num_views, height, width)
    assert components.masks.dtype == bool
    for k, part in enumerate([0, 1, 2, 3]):
        np.testing.assert_array_equal(components.masks[k], multi_part_scene.part_id == part)
    assert components.tokens == ["<asset0>", "<asset1>", "<asset2>", "<asset3>"]
    assert [row["initializer_word"] for row in components.table] == ["cube", "sphere", "cylinder", "die"]
    assert any("fuze_uv" in warning and "no view" in warning for warning in components.warnings)


def test_coverage_is_each_views_pixel_share_and_statistics_add_up(multi_part_scene: Scene) -> None:
    components = run(multi_part_scene, min_coverage=0.0)
    expected = components.masks.mean(axis=(2, 3))  # (K, V)
    np.testing.assert_allclose(components.coverage, expected)
    # the arm (+X) is hidden from azimuth 270, the die (-X) from azimuth 90
    assert components.table[2]["coverage"][3] == 0.0 and components.table[3]["coverage"][1] == 0.0
    foreground = multi_part_scene.part_id >= 0
    assert components.statistics["mode"] == "parts"
    assert components.statistics["assigned_share"] == pytest.approx(1.0)
    assert components.statistics["foreground_share"] == pytest.approx(foreground.mean())
    shares = [row["foreground_share"] for row in components.table]
    assert sum(shares) == pytest.approx(1.0)
    assert components.statistics["min_component_share"] == pytest.approx(min(shares))


def test_groups_by_name_and_pattern_merge_their_parts(multi_part_scene: Scene) -> None:
    components = run(multi_part_scene, groups={"torso": ["Cube", "cyl*"]}, min_coverage=0.0)
    names = [row["name"] for row in components.table]
    assert names == ["torso", "Sphere", "d8_die"]
    torso = components.table[0]
    assert torso["part_ids"] == [0, 2] and torso["source"] == "parts: Cube, Cylinder.001"
    assert torso["initializer_word"] == "torso"
    np.testing.assert_array_equal(components.masks[0], np.isin(multi_part_scene.part_id, [0, 2]))


def test_group_named_by_a_generic_word_takes_its_parts_word(multi_part_scene: Scene) -> None:
    components = run(multi_part_scene, groups={"group_1": [1, 3]}, min_coverage=0.0)
    group = next(row for row in components.table if row["name"] == "group_1")
    assert group["part_ids"] == [1, 3] and group["initializer_word"] == "sphere"


def test_small_part_merges_into_the_neighbour_it_touches(multi_part_scene: Scene) -> None:
    # the die (about 1.4 % of the foreground) touches only the body
    components = run(multi_part_scene, min_coverage=0.02, small_parts="neighbour")
    assert [row["part_ids"] for row in components.table] == [[0, 3], [1], [2]]
    np.testing.assert_array_equal(components.masks[0], np.isin(multi_part_scene.part_id, [0, 3]))
    assert any("d8_die" in w and "merged into its neighbour 'Cube'" in w for w in components.warnings)


def test_small_parts_go_to_a_rest_component_or_away(multi_part_scene: Scene) -> None:
    rest = run(multi_part_scene, min_coverage=0.05, small_parts="rest")
    assert [row["name"] for row in rest.table] == ["Cube", "Sphere", "rest"]
    assert rest.table[2]["part_ids"] == [2, 3] and rest.table[2]["initializer_word"] == "object"

    into_group = run(
        multi_part_scene, min_coverage=0.05, small_parts="rest", rest_name="top", groups={"top": ["Sphere"]}
    )
    assert [row["part_ids"] for row in into_group.table] == [[0], [1, 2, 3]]

    dropped = run(multi_part_scene, min_coverage=0.05, small_parts="drop")
    assert [row["part_ids"] for row in dropped.table] == [[0], [1]]
    assert dropped.statistics["assigned_share"] < 1.0
    assert sum("dropped" in warning for warning in dropped.warnings) == 3


def test_configured_groups_are_kept_however_small(multi_part_scene: Scene) -> None:
    components = run(multi_part_scene, min_coverage=0.05, groups={"charm": ["d8_die"]})
    assert "charm" in [row["name"] for row in components.table]


def test_single_part_asset_is_one_whole_component(single_part_scene: Scene) -> None:
    components = run(single_part_scene)
    assert components.statistics["mode"] == "whole"
    assert components.masks.shape[0] == 1
    np.testing.assert_array_equal(components.masks[0], single_part_scene.part_id >= 0)
    assert components.table[0]["initializer_word"] == "toy"
    assert components.warnings == []


def test_whole_mode_on_a_multi_part_asset_uses_the_class_word(multi_part_scene: Scene) -> None:
    components = run(multi_part_scene, mode="whole", class_word="robot")
    np.testing.assert_array_equal(components.masks[0], multi_part_scene.part_id >= 0)
    assert components.table[0]["initializer_word"] == "robot"


def test_table_columns_are_a_dict_of_equal_length_lists(multi_part_scene: Scene) -> None:
    columns = run(multi_part_scene, min_coverage=0.0).table_columns()
    assert set(columns) >= {"component", "token", "initializer_word", "source", "coverage"}
    assert columns["component"] == [0, 1, 2, 3]
    assert all(len(values) == 4 for values in columns.values())


def test_list_of_row_dicts_is_accepted_as_the_parts_table(multi_part_scene: Scene) -> None:
    table = multi_part_scene.parts_table
    rows = [dict(zip(table, values, strict=True)) for values in zip(*table.values(), strict=False)]
    components = build_components(
        multi_part_scene.rgb,
        multi_part_scene.depth,
        multi_part_scene.part_id,
        multi_part_scene.cameras,
        rows,
        MaskConfig(min_coverage=0.0),
    )
    assert [row["name"] for row in components.table] == ["Cube", "Sphere", "Cylinder.001", "d8_die"]
