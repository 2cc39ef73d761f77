"""Scoring an edit against its exact answer, on renders with part ids and on sampled views."""

from __future__ import annotations

import numpy as np
import pytest

from dreamedit3d_core.evaluate.ground_truth import PSNR_CEILING, SuccessThresholds, edit_succeeded, score_edit

BLUE, RED, GREEN, WHITE = (25, 80, 235), (220, 20, 20), (30, 170, 45), (255, 255, 255)


def _scene(left: tuple, right: tuple, right_width: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Two views of 16 x 16: part 0 on the left half, part 1 a block on the right, white elsewhere."""
    rgb = np.full((2, 16, 16, 3), WHITE, np.uint8)
    ids = np.full((2, 16, 16), -1, np.int32)
    rgb[:, 4:12, :8], ids[:, 4:12, :8] = left, 0
    rgb[:, 4:12, 8 : 8 + right_width], ids[:, 4:12, 8 : 8 + right_width] = right, 1
    return rgb, ids


def test_a_recolour_that_took_keeps_the_rest_exactly() -> None:
    truth_rgb, truth_ids = _scene(GREEN, BLUE)
    scores = score_edit(truth_rgb, truth_rgb, truth_ids, {1: "blue"}, [0], part_id=truth_ids)
    assert scores == {"colour_share": 1.0, "edited_psnr": PSNR_CEILING, "kept_psnr": PSNR_CEILING, "shape_iou": None}
    assert edit_succeeded(scores)


def test_a_recolour_that_did_not_take_or_spoiled_the_rest_fails() -> None:
    truth_rgb, truth_ids = _scene(GREEN, BLUE)
    unchanged, _ = _scene(GREEN, RED)
    scores = score_edit(unchanged, truth_rgb, truth_ids, {1: "blue"}, [0], part_id=truth_ids)
    assert scores["colour_share"] == 0.0 and not edit_succeeded(scores)
    spoiled, _ = _scene((60, 120, 60), BLUE)
    scores = score_edit(spoiled, truth_rgb, truth_ids, {1: "blue"}, [0], part_id=truth_ids)
    assert scores["colour_share"] == 1.0 and scores["kept_psnr"] < 20 and not edit_succeeded(scores)
    # two edited parts: the lower share counts
    both = score_edit(unchanged, *_scene(BLUE, BLUE), {0: "blue", 1: "blue"}, [], part_id=truth_ids)
    assert both["colour_share"] == 0.0 and both["kept_psnr"] is None


def test_sampled_views_are_scored_where_the_answer_shows_each_part() -> None:
    truth_rgb, truth_ids = _scene(GREEN, BLUE, right_width=4)
    drawn, _ = _scene(GREEN, BLUE, right_width=8)  # the swapped part came out twice as wide
    scores = score_edit(drawn, truth_rgb, truth_ids, {1: "blue"}, [0], reshaped=[1])
    assert scores["colour_share"] == 1.0 and scores["kept_psnr"] == PSNR_CEILING
    assert scores["shape_iou"] == pytest.approx(0.5)
    assert not edit_succeeded(scores) and edit_succeeded(scores, SuccessThresholds(shape_iou=0.5))
    with pytest.raises(ValueError, match="must match"):
        score_edit(drawn[:1], truth_rgb, truth_ids, {1: "blue"}, [0])


def test_a_swapped_part_in_a_colour_without_a_hue_is_judged_by_its_shape_and_look() -> None:
    """Brown has no hue to count: a brown part swapped to another shape keeps its colour, and only its
    silhouette and its look against the answer say whether the swap took."""
    brown = (120, 80, 40)
    truth_rgb, truth_ids = _scene(GREEN, brown)
    scores = score_edit(truth_rgb, truth_rgb, truth_ids, {1: "brown"}, [0], part_id=truth_ids, reshaped=[1])
    assert scores["colour_share"] is None and scores["shape_iou"] == 1.0 and scores["edited_psnr"] == PSNR_CEILING
    assert edit_succeeded(scores)
    narrower, narrower_ids = _scene(GREEN, brown, right_width=2)
    missed = score_edit(narrower, truth_rgb, truth_ids, {1: "brown"}, [0], part_id=narrower_ids, reshaped=[1])
    assert missed["shape_iou"] == pytest.approx(0.25) and not edit_succeeded(missed)
