"""Each component's colour in one word, from the albedo render (attribute-aware personalisation uses it)."""

from __future__ import annotations

import numpy as np

from dreamedit3d_core.masks.colours import NAMED_COLOURS, colour_word, component_colours
from dreamedit3d_core.world import DEFAULT_COLOURS


def test_every_named_colour_names_itself_and_near_colours_name_it_too() -> None:
    for name, rgb in NAMED_COLOURS.items():
        assert colour_word(rgb) == name
        assert colour_word(np.clip(np.asarray(rgb) + 0.04, 0, 1)) == name, name
    assert set(DEFAULT_COLOURS) < set(NAMED_COLOURS)  # the world model's words
    assert colour_word((0.3, 0.3, 0.32)) == "grey" and colour_word((1.0, 0.98, 0.97)) == "white"


def test_a_component_is_named_by_the_median_of_its_albedo_over_every_view() -> None:
    albedo = np.full((2, 8, 8, 3), 255, np.uint8)
    masks = np.zeros((3, 2, 8, 8), bool)
    masks[0, :, :4], masks[1, :, 4:], masks[2, 0, 0, 0] = True, True, False
    albedo[:, :4] = (31, 168, 46)  # the world's green
    albedo[:, 4:] = (128, 69, 26)  # brown
    albedo[0, 0, 0] = (255, 0, 0)  # a stray red texel does not decide
    assert component_colours(albedo, masks) == ["green", "brown", None]
