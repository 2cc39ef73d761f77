"""Did the edited component take the colour the prompt asked for? Hue shares on rendered pixels.

A pixel "has" a colour when its hue is within `tolerance` degrees of the colour's hue, and nearer to it than
half-way to the next named hue, and it is saturated and bright enough for hue to mean something (shading and
white highlights are not counted as any colour). The hues are those of the sRGB primaries and their usual
neighbours; brown and grey have no hue of their own. Brown is a dark orange (hue about 25 degrees), so the
half-way bound counts it as orange, not red.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

COLOUR_HUES: dict[str, float] = {
    "red": 0.0,
    "orange": 30.0,
    "gold": 48.0,
    "golden": 48.0,
    "yellow": 55.0,
    "green": 120.0,
    "cyan": 180.0,
    "blue": 225.0,
    "purple": 280.0,
    "pink": 330.0,
}


SAME_HUE_DEGREES = 10.0  # gold and yellow (7 degrees apart) are one hue: neither bounds the other's window


def hue_window(colour: str, tolerance: float, hues: Mapping[str, float] = COLOUR_HUES) -> float:
    """Half-width of `colour`'s hue window: `tolerance`, but no further than half-way to the nearest other hue
    of `hues` (red's window ends at 15 degrees, half-way to orange, so a brown at 25 degrees is not red)."""
    hue = hues[colour]
    gaps = [abs((other - hue + 180.0) % 360.0 - 180.0) for other in hues.values()]
    return min([tolerance] + [gap / 2 for gap in gaps if gap > SAME_HUE_DEGREES])


def prompt_colour(prompt_tail: str) -> str | None:
    """The first colour word of a phrase such as "in green" (None if it names none)."""
    for word in re.findall(r"[a-z]+", prompt_tail.lower()):
        if word in COLOUR_HUES:
            return word
    return None


def hue_saturation_value(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(..., 3) uint8 sRGB -> hue in degrees [0, 360), saturation and value in [0, 1]."""
    x = np.asarray(rgb, dtype=np.float32) / 255.0
    high, low = x.max(axis=-1), x.min(axis=-1)
    chroma = high - low
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    safe = np.where(chroma > 0, chroma, 1.0)
    hue = np.where(high == r, ((g - b) / safe) % 6, np.where(high == g, (b - r) / safe + 2, (r - g) / safe + 4))
    saturation = np.where(high > 0, chroma / np.where(high > 0, high, 1.0), 0.0)
    return (hue * 60.0) % 360.0, saturation, high


def colour_share(
    rgb: np.ndarray,
    mask: np.ndarray,
    colour: str,
    tolerance: float = 25.0,
    min_saturation: float = 0.25,
    min_value: float = 0.15,
    hues: Mapping[str, float] = COLOUR_HUES,
) -> float | None:
    """Share of the masked pixels of `rgb` (..., 3) uint8 whose hue is within `colour`'s window (`hue_window`),
    among the named `hues` (a world of fewer colours passes its own: then only they bound each other's windows).

    None when the mask is empty (the component is not visible in these views).
    """
    if colour not in hues:
        raise ValueError(f"unknown colour {colour!r}; known: {', '.join(hues)}")
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return None
    hue, saturation, value = hue_saturation_value(np.asarray(rgb)[..., :3])
    distance = np.abs((hue - hues[colour] + 180.0) % 360.0 - 180.0)
    hit = (distance <= hue_window(colour, tolerance, hues)) & (saturation >= min_saturation) & (value >= min_value)
    return float(hit[mask].mean())


def component_pixels(source_part_id: np.ndarray, parts: Sequence[int], result_rgba: np.ndarray) -> np.ndarray:
    """(V, H, W) bool: a component's pixels in the source (its part ids) that the result covers (alpha)."""
    covered = np.asarray(result_rgba)[..., 3] >= 128
    return np.isin(source_part_id, np.asarray(parts).astype(source_part_id.dtype)) & covered


def edit_colour_metrics(
    source_part_id: np.ndarray,
    source_rgb: np.ndarray,
    edited_rgba: np.ndarray,
    component_parts: Sequence[Sequence[int]],
    tokens: Sequence[str],
    phrases: Mapping[str, str],
) -> dict[str, float | str | None]:
    """For every edited token whose phrase names a colour ("<asset1>": "in green"): the share of that
    component's pixels (source part ids, where the edited mesh covers them) that have the colour after the
    edit, and before it (`source_rgb`) for comparison. Averaged over such tokens; {} when there are none.

    source_part_id (V, H, W), source_rgb (V, H, W, 3) and edited_rgba (V, H, W, 4) come from the same cameras.
    """
    after, before, colours = [], [], []
    for token, phrase in phrases.items():
        colour = prompt_colour(phrase)
        if colour is None or token not in tokens:
            continue
        mask = component_pixels(source_part_id, component_parts[list(tokens).index(token)], edited_rgba)
        share = colour_share(np.asarray(edited_rgba)[..., :3], mask, colour)
        if share is None:
            continue
        after.append(share)
        before.append(colour_share(source_rgb, mask, colour))
        colours.append(colour)
    if not after:
        return {}
    return {
        "edit_colour": ", ".join(dict.fromkeys(colours)),
        "edited_colour_share": float(np.mean(after)),
        "edited_colour_share_before": float(np.mean(before)),
    }


def component_colour_shares(
    source_part_id: np.ndarray,
    source_rgb: np.ndarray,
    result_rgba: np.ndarray,
    component_parts: Sequence[Sequence[int]],
    tokens: Sequence[str],
) -> list[dict[str, float | str | None]]:
    """Every component's share of every named hue, in the source and on the result: one row per (token,
    colour) with `source_share` and `result_share` (None where the result does not cover the component).

    The same pixels as `edit_colour_metrics` (`component_pixels`), so a prompt
    without colour words can be read against an edit's colour: "was the part already green without the edit?"
    """
    rgb = np.asarray(result_rgba)[..., :3]
    names = [name for name in COLOUR_HUES if name != "golden"]  # "golden" is gold's other word
    rows: list[dict[str, float | str | None]] = []
    for token, parts in zip(tokens, component_parts, strict=True):
        mask = component_pixels(source_part_id, parts, result_rgba)
        for name in names:
            rows.append(
                {
                    "token": token,
                    "colour": name,
                    "source_share": colour_share(source_rgb, mask, name),
                    "result_share": colour_share(rgb, mask, name),
                }
            )
    return rows


def main_colours(rows: Sequence[Mapping[str, float | str | None]]) -> dict[str, str]:
    """"<asset1>": "pink 0.81 -> green 0.64": each component's most common hue in the source and on the result
    (rows of `component_colour_shares`)."""

    def top(token: str, key: str) -> str:
        shares = [(r[key], r["colour"]) for r in rows if r["token"] == token and r[key] is not None]
        if not shares:
            return "not covered"
        share, colour = max(shares)
        return f"{colour} {share:.2f}" if share > 0 else "no hue"

    tokens = list(dict.fromkeys(str(r["token"]) for r in rows))
    return {token: f"{top(token, 'source_share')} -> {top(token, 'result_share')}" for token in tokens}
