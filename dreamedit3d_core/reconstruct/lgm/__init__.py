"""LGM (Large Multi-View Gaussian Model, ashawkey/LGM) as a reconstructor: input conversion, network, weights."""

from dreamedit3d_core.reconstruct.lgm.config import LGMArchitectureConfig
from dreamedit3d_core.reconstruct.lgm.gaussians import density_field, splat_density
from dreamedit3d_core.reconstruct.lgm.inputs import LGMInputs, lgm_inputs, plucker_rays, world_to_lgm_transform
from dreamedit3d_core.reconstruct.lgm.model import LGMNetwork, LGMWeightsError, load_lgm_weights
from dreamedit3d_core.reconstruct.lgm.reconstructor import LGMReconstructor, load_lgm

__all__ = [
    "LGMArchitectureConfig",
    "LGMInputs",
    "LGMNetwork",
    "LGMReconstructor",
    "LGMWeightsError",
    "density_field",
    "lgm_inputs",
    "load_lgm",
    "load_lgm_weights",
    "plucker_rays",
    "splat_density",
    "world_to_lgm_transform",
]
