"""Which component an edit changes, and whether it took the colour the prompt asked for."""

from __future__ import annotations

import numpy as np
import pytest

from dreamedit3d_core.evaluate.colour import (
    colour_share,
    component_colour_shares,
    edit_colour_metrics,
    main_colours,
    prompt_colour,
)
from dreamedit3d_core.mvdiffusion.prompts import edit_phrases, edited_tokens

RED, GREEN, BLUE, WHITE = (200, 30, 30), (30, 170, 40), (40, 60, 220), (250, 250, 250)


def test_edit_phrases_find_the_edited_token() -> None:
    assert edit_phrases("a photo of <asset0> and <asset1> in green") == {"<asset1>": "in green"}
    assert edited_tokens("a photo of <asset0> and <asset1>") == []
    assert edited_tokens("<asset0> wearing a red scarf, and <asset1>") == ["<asset0>"]
    assert edited_tokens("a photo of <asset0> in gold and <asset1> in blue") == ["<asset0>", "<asset1>"]


def test_colour_share_counts_hues_not_shading() -> None:
    image = np.array([[RED, GREEN, WHITE, BLUE, (100, 15, 15)]], np.uint8)  # the last: a shaded red
    mask = np.ones((1, 5), bool)
    assert colour_share(image, mask, "red") == pytest.approx(2 / 5)
    assert colour_share(image, mask, "green") == pytest.approx(1 / 5)
    assert colour_share(image, np.zeros((1, 5), bool), "green") is None
    assert prompt_colour("in Green, shiny") == "green" and prompt_colour("wearing a hat") is None
    with pytest.raises(ValueError, match="unknown colour 'teal'"):
        colour_share(image, mask, "teal")


def test_brown_is_not_red_but_gold_is_yellow() -> None:
    # the parts world's brown (0.50, 0.27, 0.10) lit and in shade: hue about 25 degrees, a dark orange
    browns = np.array([[(128, 69, 26), (64, 35, 13)]], np.uint8)
    mask = np.ones((1, 2), bool)
    assert colour_share(browns, mask, "red") == 0.0
    assert colour_share(browns, mask, "orange") == 1.0
    yellow = np.array([[(245, 219, 20)]], np.uint8)  # the world's yellow, hue 53
    assert colour_share(yellow, np.ones((1, 1), bool), "gold") == 1.0
    assert colour_share(yellow, np.ones((1, 1), bool), "yellow") == 1.0


def test_edit_colour_metrics_look_only_at_the_edited_component() -> None:
    part_id = np.array([[[0, 0, 1, 1, -1]]])  # (V=1, H=1, W=5): component 0 = part 0, component 1 = part 1
    source = np.array([[[RED, RED, BLUE, BLUE, WHITE]]], np.uint8)
    edited = np.array([[[RED, RED, GREEN, BLUE, WHITE]]], np.uint8)
    alpha = np.array([[[255, 255, 255, 255, 0]]], np.uint8)[..., None]
    metrics = edit_colour_metrics(
        part_id, source, np.concatenate([edited, alpha], -1), [[0], [1]], ["<asset0>", "<asset1>"],
        edit_phrases("a photo of <asset0> and <asset1> in green"),
    )
    assert metrics == {"edit_colour": "green", "edited_colour_share": 0.5, "edited_colour_share_before": 0.0}
    assert edit_colour_metrics(part_id, source, np.concatenate([edited, alpha], -1), [[0], [1]], ["<asset0>", "<asset1>"], {}) == {}


def test_component_colour_shares_read_a_plain_prompt_against_an_edit_colour() -> None:
    """Every component, every hue, on the same pixels as the edit metric: the plain prompt's result can say
    whether a part was already the edit's colour."""
    part_id = np.array([[[0, 0, 1, 1, 1, -1]]])
    source = np.array([[[RED, RED, BLUE, BLUE, BLUE, WHITE]]], np.uint8)
    result = np.array([[[RED, BLUE, GREEN, GREEN, BLUE, WHITE]]], np.uint8)
    alpha = np.array([[[255, 255, 255, 255, 0, 0]]], np.uint8)[..., None]  # the result misses the last blue pixel
    rows = component_colour_shares(part_id, source, np.concatenate([result, alpha], -1), [[0], [1]], ["<asset0>", "<asset1>"])
    share = {(r["token"], r["colour"]): (r["source_share"], r["result_share"]) for r in rows}
    assert share[("<asset1>", "green")] == (0.0, 1.0)  # only the covered pixels count
    assert share[("<asset1>", "blue")] == (1.0, 0.0)
    assert share[("<asset0>", "red")] == (1.0, 0.5) and share[("<asset0>", "blue")] == (0.0, 0.5)
    assert ("<asset0>", "golden") not in share  # gold's other word is not a second row
    assert main_colours(rows) == {"<asset0>": "red 1.00 -> red 0.50", "<asset1>": "blue 1.00 -> green 1.00"}
