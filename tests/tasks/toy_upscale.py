"""A toy stage's one module: its artifact and its compute function (see test_toy_stage.py). Upscales the first
sample of an edit's views 2x by repeating pixels."""

from __future__ import annotations

import numpy as np

from tasks.artifacts import VIEWS, PictureNoun
from tasks.running import StageInputs, StageOutputs

UPSCALED = PictureNoun("upscaled", "the edit's first sampled views, twice the size")


def upscale(inputs: StageInputs, outputs: StageOutputs) -> None:
    views = inputs.load(VIEWS).views[0]  # (V, H, W, 3)
    big = np.repeat(np.repeat(views, 2, axis=1), 2, axis=2)
    outputs.save(UPSCALED, np.concatenate(list(big), axis=1))
