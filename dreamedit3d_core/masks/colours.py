"""A component's colour in one word ("green", "brown", "white"), from the albedo render: the surface's own
colour before light, so shading does not turn a red part into a dark red one.

Attribute-aware personalisation (not the paper's recipe) trains with these words beside the tokens ("a photo
of <asset0> in brown and <asset1> in orange"), so that a colour word explains the colour and the token keeps
what words cannot say: then "<asset1> in green" can recolour it.
"""

from __future__ import annotations

import numpy as np

from dreamedit3d_core.world.config import DEFAULT_COLOURS

# sRGB: the parts world's eight colours (the words its model knows), and the achromatic ones every text
# encoder knows; a colour is named by the nearest of these in CIELAB
NAMED_COLOURS: dict[str, tuple[float, float, float]] = {
    **DEFAULT_COLOURS,
    "white": (0.95, 0.95, 0.95),
    "grey": (0.5, 0.5, 0.5),
    "black": (0.06, 0.06, 0.06),
}


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) sRGB in [0, 1] -> (..., 3) CIELAB (D65)."""
    c = np.asarray(rgb, dtype=np.float64)
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array(
        [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]
    ).T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def colour_word(rgb: np.ndarray | tuple[float, float, float]) -> str:
    """The named colour nearest to an sRGB colour (3,) in [0, 1]."""
    names = list(NAMED_COLOURS)
    palette = srgb_to_lab(np.array([NAMED_COLOURS[n] for n in names]))  # (N, 3)
    distance = np.linalg.norm(palette - srgb_to_lab(np.asarray(rgb, dtype=np.float64)), axis=-1)
    return names[int(np.argmin(distance))]


def component_colours(albedo: np.ndarray, masks: np.ndarray) -> list[str | None]:
    """Each component's colour word from the albedo renders (V, H, W, 3) uint8 and masks (K, V, H, W) bool: the
    median albedo over its pixels in every view (a texture's most common tone); None for an empty mask."""
    albedo = np.asarray(albedo)
    words: list[str | None] = []
    for mask in np.asarray(masks, dtype=bool):
        pixels = albedo[mask]  # (P, 3)
        words.append(colour_word(np.median(pixels, axis=0) / 255.0) if len(pixels) else None)
    return words
