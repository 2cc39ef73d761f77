"""Preview images: a strip of views on white and an animated GIF that Pillow reads back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dreamedit3d_core.evaluate import turntable_strip, write_gif


def _frames(count: int = 5) -> np.ndarray:
    frames = np.zeros((count, 16, 20, 4), np.uint8)
    for index in range(count):
        frames[index, 4:12, 2 + 3 * index : 8 + 3 * index] = [200, 30, 30, 255]  # an opaque patch moving right
    return frames


def test_strip_puts_views_side_by_side_on_white() -> None:
    frames = _frames(3)
    strip = turntable_strip(frames, gap=2)
    assert strip.shape == (16, 3 * 20 + 2 * 2, 3) and strip.dtype == np.uint8
    assert (strip[0, 0] == 255).all()  # transparent background composited on white
    assert (strip[5, 22 + 6] == [200, 30, 30]).all()  # frame 1 starts at column 22, its patch at 5..10
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        turntable_strip(np.zeros((16, 20, 3), np.uint8))


def test_gif_has_every_frame(tmp_path: Path) -> None:
    path = write_gif(_frames(5), tmp_path / "turntable.gif", frame_ms=80)
    with Image.open(path) as gif:
        assert gif.n_frames == 5
        gif.seek(4)
        frame = np.asarray(gif.convert("RGB"))
    assert frame.shape == (16, 20, 3)
    assert frame[8, 16, 0] > 150 and frame[8, 16, 2] < 80  # the patch has moved to column 14..19
