"""A picture to check masks by eye: every view with its components tinted, and a legend of tokens."""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LEGEND_ROW = 14  # pixels per legend line
OVERLAY_ALPHA = 0.55


def component_colours(count: int) -> np.ndarray:
    """(count, 3) uint8 colours, evenly spaced in hue so that neighbours in the table look different."""
    hues = (np.arange(count) * 0.618034) % 1.0  # golden-ratio steps keep any count well spread
    return np.array([[round(255 * c) for c in colorsys.hsv_to_rgb(h, 0.85, 0.95)] for h in hues], dtype=np.uint8)


def mask_preview(rgb: np.ndarray, masks: np.ndarray, tokens: list[str]) -> np.ndarray:
    """Views side by side (V*W wide) with component k tinted in colour k, then a legend; uint8 (H', V*W, 3)."""
    num_views, height, width, _ = rgb.shape
    if masks.ndim != 4 or masks.shape[1:] != (num_views, height, width):
        raise ValueError(f"masks must be (K, {num_views}, {height}, {width}), got {masks.shape}")
    if len(tokens) != masks.shape[0]:
        raise ValueError(f"{masks.shape[0]} masks but {len(tokens)} tokens")
    colours = component_colours(len(tokens)).astype(np.float32)
    views = rgb.astype(np.float32)
    for k in range(len(tokens)):
        tint = masks[k][..., None]  # (V, H, W, 1)
        views = np.where(tint, (1 - OVERLAY_ALPHA) * views + OVERLAY_ALPHA * colours[k], views)
    strip = views.transpose(1, 0, 2, 3).reshape(height, num_views * width, 3)  # (V, H, W, 3) -> (H, V*W, 3)

    legend = Image.new("RGB", (num_views * width, LEGEND_ROW * len(tokens) + 4), (255, 255, 255))
    draw = ImageDraw.Draw(legend)
    font = ImageFont.load_default()
    for k, token in enumerate(tokens):
        top = 2 + k * LEGEND_ROW
        draw.rectangle([4, top + 2, 14, top + 12], fill=tuple(int(c) for c in colours[k]))
        draw.text((20, top), token, fill=(0, 0, 0), font=font)
    return np.concatenate([np.clip(strip, 0, 255).astype(np.uint8), np.asarray(legend)], axis=0)
