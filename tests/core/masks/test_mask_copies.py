"""Tiny copies of one shape (bolts, buttons) become one component instead of vanishing into their neighbours."""

from __future__ import annotations

import numpy as np

from dreamedit3d_core.masks import MaskConfig
from dreamedit3d_core.masks.parts import part_components, read_parts_table


def table(names: list[str], shapes: list[tuple[int, int, float]], materials: list[str]) -> dict[str, list]:
    return {
        "part_id": list(range(len(names))),
        "name": names,
        "material": materials,
        "num_vertices": [s[0] for s in shapes],
        "num_faces": [s[1] for s in shapes],
        "surface_area": [s[2] for s in shapes],
    }


def test_small_copies_of_one_shape_form_one_component() -> None:
    # a base covering most of every view, and six bolts of a few pixels each, all touching the base
    part_id = np.zeros((4, 64, 64), dtype=np.int64)
    for bolt in range(1, 7):
        part_id[:, 2 + bolt * 8 : 4 + bolt * 8, 30:32] = bolt  # 4 px of 4096: far below min_coverage
    bolts = [(8, 12, 0.06)] * 6
    parts = table(["base", *(f"bolt.{i:03d}" for i in range(1, 7))], [(400, 796, 5.0), *bolts], ["wood", *["steel"] * 6])
    components, warnings = part_components(part_id, read_parts_table(parts), MaskConfig())
    assert [(c.name, c.part_ids) for c in components] == [("base", [0]), ("bolt", [1, 2, 3, 4, 5, 6])]
    assert any("6 small copies" in w for w in warnings)


def test_small_parts_that_differ_are_still_merged_into_their_neighbour() -> None:
    part_id = np.zeros((4, 64, 64), dtype=np.int64)
    part_id[:, 10:12, 30:32] = 1
    part_id[:, 20:22, 30:32] = 2
    parts = table(["base", "knob", "dial"], [(400, 796, 5.0), (8, 12, 0.06), (30, 56, 0.2)], ["wood", "steel", "steel"])
    components, _ = part_components(part_id, read_parts_table(parts), MaskConfig())
    assert [(c.name, c.part_ids) for c in components] == [("base", [0, 1, 2])]
