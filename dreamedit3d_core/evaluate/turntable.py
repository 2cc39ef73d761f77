"""Preview images: views side by side, and an animated GIF turntable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from dreamedit3d_core.evaluate.image_metrics import on_white


def _as_uint8_rgb(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (3, 4) or len(images) == 0:
        raise ValueError(f"images must be (N, H, W, 3) or (N, H, W, 4) with N >= 1, got shape {images.shape}")
    if images.dtype != np.uint8:
        if not np.issubdtype(images.dtype, np.floating):
            raise ValueError(f"images must be uint8 or float in [0, 1], got dtype {images.dtype}")
        images = (np.clip(images, 0.0, 1.0) * 255).round().astype(np.uint8)
    return on_white(images)


def turntable_strip(images: np.ndarray, gap: int = 0) -> np.ndarray:
    """(N, H, W, 3|4) -> (H, N*W + (N-1)*gap, 3) uint8: the views left to right on white."""
    images = _as_uint8_rgb(images)
    count, height, width, _ = images.shape
    strip = np.full((height, count * width + (count - 1) * gap, 3), 255, np.uint8)
    for index, image in enumerate(images):
        left = index * (width + gap)
        strip[:, left : left + width] = image
    return strip


def write_gif(images: np.ndarray, path: str | Path, frame_ms: int = 120, loop: int = 0) -> Path:
    """An animated GIF of the frames (N, H, W, 3|4), looping forever by default (Pillow)."""
    frames = [Image.fromarray(image) for image in _as_uint8_rgb(images)]
    path = Path(path)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=frame_ms, loop=loop, disposal=2)
    return path
