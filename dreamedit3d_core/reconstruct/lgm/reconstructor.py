"""The LGM adapter: 4 views -> LGM's Gaussians -> solid (optionally cut by the visual hull) -> textured mesh.

The texture is still baked from the views; LGM's own Gaussian colours only paint what no view saw.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from dreamedit3d_core.geometry.cameras import CameraSet
from dreamedit3d_core.reconstruct.base import Reconstructor, surface_from_field, texture_surface
from dreamedit3d_core.reconstruct.config import LGMReconstructConfig, ReconstructConfig
from dreamedit3d_core.reconstruct.carving import CarveField, carve
from dreamedit3d_core.reconstruct.lgm.config import LGMArchitectureConfig
from dreamedit3d_core.reconstruct.lgm.gaussians import density_field, gaussians_to_world, splat_density
from dreamedit3d_core.reconstruct.lgm.inputs import lgm_inputs
from dreamedit3d_core.reconstruct.lgm.model import LGMNetwork, load_lgm_weights
from dreamedit3d_core.reconstruct.mesh import ReconstructedMesh
from dreamedit3d_core.reconstruct.surface import EmptyReconstructionError
from dreamedit3d_core.reconstruct.texture import nearest_colours
from dreamedit3d_core.reconstruct.views import check_views, foreground_masks, rgb_on_white

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def load_lgm(config: LGMReconstructConfig) -> LGMNetwork:
    """LGM with the configured preset's architecture and the weights from `config.weights` (local file)."""
    with torch.device("meta"):  # no memory until the weights arrive
        model = LGMNetwork(LGMArchitectureConfig.preset(config.preset))
    load_lgm_weights(model, config.weights)
    return model.to(device=config.device, dtype=_DTYPES[config.dtype]).eval()


class LGMReconstructor(Reconstructor):
    """Pass a ready `model` (e.g. a tiny random one in tests); else the config's weights are loaded."""

    name = "lgm"

    def __init__(self, model: LGMNetwork | None = None) -> None:
        self.model = model

    def predict_gaussians(
        self, views_rgb: np.ndarray, cameras: CameraSet, config: LGMReconstructConfig
    ) -> tuple[torch.Tensor, np.ndarray]:
        """(N, 14) Gaussians in LGM's frame and the (4, 4) transform from our world to that frame."""
        if self.model is None:
            self.model = load_lgm(config)
        parameter = next(self.model.parameters())
        inputs = lgm_inputs(views_rgb, cameras, self.model.config)
        with torch.no_grad():
            gaussians = self.model(inputs.images.to(device=parameter.device, dtype=parameter.dtype))
        return gaussians[0].float().cpu(), inputs.world_to_lgm

    def reconstruct(
        self, views: np.ndarray, cameras: CameraSet, config: ReconstructConfig | None = None
    ) -> ReconstructedMesh:
        config = config or ReconstructConfig(method="lgm")
        started = time.perf_counter()
        images = check_views(views, cameras)
        masks = foreground_masks(images, config.foreground)
        views_rgb = rgb_on_white(images)
        info: dict[str, float | int | str] = {"method": self.name, "grid_resolution": config.grid_resolution}

        start = time.perf_counter()
        gaussians, world_to_lgm = self.predict_gaussians(views_rgb, cameras, config.lgm)
        info["network_s"] = time.perf_counter() - start
        info["num_gaussians"] = int(len(gaussians))

        start = time.perf_counter()
        density = splat_density(gaussians, world_to_lgm, config.grid_resolution, config.bound, config.lgm.kernel_sigmas)
        field = density_field(density, config.lgm.density_level, config.bound)
        if config.lgm.clip_to_visual_hull:
            hull = carve(masks, cameras, config.grid_resolution, config.bound, config.coarse_factor)
            field = CarveField(np.maximum(field.values, hull.values), config.bound)
        info["field_s"] = time.perf_counter() - start
        if not (field.values < 0).any():
            raise EmptyReconstructionError(
                f"LGM's Gaussians hold no solid above density {config.lgm.density_level} inside the views' "
                "silhouettes (check the weights and the views)"
            )

        timings: dict[str, float] = {}
        surface = surface_from_field(field, config, timings)
        info.update(timings)
        positions, _, opacity, colours, _ = gaussians_to_world(gaussians, world_to_lgm)
        opaque = (opacity > 0.1).numpy()
        if not opaque.any():
            opaque = np.ones(len(opacity), bool)
        fallback = nearest_colours(positions.numpy()[opaque], colours.numpy()[opaque])
        mesh = texture_surface(surface, views_rgb, masks, cameras, config, info, fallback)
        info["total_s"] = time.perf_counter() - started
        return mesh
