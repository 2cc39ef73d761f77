"""An edit scored against its exact answer: renders of the object as the edit should leave it, same cameras.

For the edited parts: the share of their pixels in the asked colour (`colour.colour_share`), and for a part
that changed shape the silhouette IoU against the answer's. For the kept parts: masked PSNR against the
answer (which is the source there). Two kinds of images are scored:
  - renders with part ids (the merged asset rendered by Blender): a part's pixels are its own ids, where the
    answer shows the same part;
  - sampled views (RGB on white, no ids): a part's pixels are where the answer shows it, and a reshaped part's
    silhouette is the views' foreground outside the kept parts.
`edit_succeeded` turns the scores into the benchmark's verdict, with its thresholds written down.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from dreamedit3d_core.evaluate.colour import COLOUR_HUES, colour_share
from dreamedit3d_core.evaluate.image_metrics import masked_psnr, silhouette, silhouette_iou

PSNR_CEILING = 60.0  # dB: identical pixels score this, not infinity, so that means stay finite


@dataclass(frozen=True)
class SuccessThresholds:
    """When an edit counts as made: every edited part in its asked colour on at least `colour_share` of its
    pixels, the kept parts at least `kept_psnr` dB from the answer, and a reshaped part's silhouette at least
    `shape_iou` IoU with the answer's."""

    colour_share: float = 0.5
    kept_psnr: float = 35.0
    shape_iou: float = 0.6


def score_edit(
    rgb: np.ndarray,
    truth_rgb: np.ndarray,
    truth_part_id: np.ndarray,
    edited: Mapping[int, str],
    kept: Sequence[int],
    *,
    part_id: np.ndarray | None = None,
    reshaped: Sequence[int] = (),
    hues: Mapping[str, float] = COLOUR_HUES,
) -> dict[str, float | None]:
    """Scores of images rgb (V, H, W, 3) uint8 on white against the answer's renders (same cameras and size).

    `edited`: part -> the colour it should have (one without a hue in `hues`, such as brown, is not scored for colour); `kept`: the parts that should not change; `part_id` (V, H, W)
    the images' own part ids (renders), else None (sampled views); `reshaped`: edited parts with a new shape;
    `hues`: the named colours a pixel's hue is told apart from (`colour.colour_share`).
    Returns `colour_share` (the lowest over the edited parts), `edited_psnr` (the edited parts against the
    answer: does the part look as it should, beyond its hue?), `kept_psnr` (None without kept pixels) and
    `shape_iou` (the lowest over reshaped parts; None without any)."""
    rgb, truth_rgb, truth_part_id = np.asarray(rgb), np.asarray(truth_rgb), np.asarray(truth_part_id)
    if rgb.shape != truth_rgb.shape or truth_part_id.shape != rgb.shape[:-1]:
        raise ValueError(f"images {rgb.shape}, answer {truth_rgb.shape} and its part ids {truth_part_id.shape} must match")
    shares, looks = [], []
    for part, colour in edited.items():
        pixels = (part_id == part) if part_id is not None else (truth_part_id == part)
        if colour in hues:  # a colour without a hue (brown: a swapped part keeps its own) is judged by its look only
            share = colour_share(rgb, pixels, colour, hues=hues)
            shares.append(0.0 if share is None else share)  # a part that is not there has none of its colour
        both = pixels & (truth_part_id == part)
        if both.any():
            looks.append(min(masked_psnr(rgb, truth_rgb, both), PSNR_CEILING))
    kept_truth = np.isin(truth_part_id, list(kept))
    kept_pixels = kept_truth & (part_id == truth_part_id) if part_id is not None else kept_truth
    kept_psnr = min(masked_psnr(rgb, truth_rgb, kept_pixels), PSNR_CEILING) if kept_pixels.any() else None
    ious = []
    for part in reshaped:
        drawn = (part_id == part) if part_id is not None else silhouette(rgb) & ~kept_truth
        iou = silhouette_iou(drawn, truth_part_id == part)
        ious.append(0.0 if np.isnan(iou) else iou)
    return {
        "colour_share": min(shares) if shares else None,
        "edited_psnr": min(looks) if looks else None,
        "kept_psnr": kept_psnr,
        "shape_iou": min(ious) if ious else None,
    }


def edit_succeeded(scores: Mapping[str, float | None], thresholds: SuccessThresholds = SuccessThresholds()) -> bool:
    """The benchmark's verdict on one scored edit (`score_edit`): every score present meets its threshold."""
    checks = (("colour_share", thresholds.colour_share), ("kept_psnr", thresholds.kept_psnr), ("shape_iou", thresholds.shape_iou))
    return all(scores.get(name) is None or float(scores[name]) >= bound for name, bound in checks)
