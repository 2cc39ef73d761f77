"""The reconstruct stage's entry point: pick the configured reconstructor and run it."""

from __future__ import annotations

import numpy as np

from dreamedit3d_core.geometry.cameras import CameraSet
from dreamedit3d_core.reconstruct.base import Reconstructor
from dreamedit3d_core.reconstruct.config import ReconstructConfig
from dreamedit3d_core.reconstruct.mesh import ReconstructedMesh
from dreamedit3d_core.reconstruct.visual_hull import VisualHullReconstructor


def make_reconstructor(config: ReconstructConfig) -> Reconstructor:
    """The reconstructor `config.method` names (LGM's weights load on first use)."""
    if config.method == "lgm":
        from dreamedit3d_core.reconstruct.lgm.reconstructor import LGMReconstructor

        return LGMReconstructor()
    return VisualHullReconstructor()


def reconstruct(views: np.ndarray, cameras: CameraSet, config: ReconstructConfig | None = None) -> ReconstructedMesh:
    """Views (V, H, W, 3) RGB on white or (V, H, W, 4) RGBA, uint8, with their cameras -> textured mesh."""
    config = config or ReconstructConfig()
    return make_reconstructor(config).reconstruct(views, cameras, config)


def reconstruct_views(views: np.ndarray, cameras: CameraSet, config: ReconstructConfig | None = None) -> ReconstructedMesh:
    """Sampled views (V, H, W, 3) seen from `cameras` (of any image size: the views' own size is used)."""
    return reconstruct(views, cameras.resized(int(np.shape(views)[1])), config)
