"""The weight-free default: silhouettes -> visual hull -> clean mesh -> texture baked from the views."""

from __future__ import annotations

import time

import numpy as np

from dreamedit3d_core.geometry.cameras import CameraSet
from dreamedit3d_core.reconstruct.base import Reconstructor, surface_from_field, texture_surface
from dreamedit3d_core.reconstruct.config import ReconstructConfig
from dreamedit3d_core.reconstruct.carving import carve
from dreamedit3d_core.reconstruct.mesh import ReconstructedMesh
from dreamedit3d_core.reconstruct.underside import cut_unseen_underside
from dreamedit3d_core.reconstruct.views import check_views, foreground_masks, rgb_on_white


class VisualHullReconstructor(Reconstructor):
    """Runs on any machine in seconds; exact where the object is what its silhouettes say (boxes),
    too big where it is rounded between the views (the hull cannot see concavities or the rounding
    between two orthogonal views)."""

    name = "visual_hull"

    def reconstruct(
        self, views: np.ndarray, cameras: CameraSet, config: ReconstructConfig | None = None
    ) -> ReconstructedMesh:
        config = config or ReconstructConfig()
        started = time.perf_counter()
        images = check_views(views, cameras)
        masks = foreground_masks(images, config.foreground)
        info: dict[str, float | int | str] = {"method": self.name, "grid_resolution": config.grid_resolution}
        start = time.perf_counter()
        field = carve(masks, cameras, config.grid_resolution, config.bound, config.coarse_factor)
        if config.cut_unseen_underside:
            field = cut_unseen_underside(field, cameras, config.underside_min_cosine)
        info["carve_s"] = time.perf_counter() - start
        timings: dict[str, float] = {}
        surface = surface_from_field(field, config, timings)
        info.update(timings)
        mesh = texture_surface(surface, rgb_on_white(images), masks, cameras, config, info)
        info["total_s"] = time.perf_counter() - started
        return mesh
