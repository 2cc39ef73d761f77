"""Test-only: a tiny official MVDream checkpoint and config (UNet part), and the prediction comparison."""

from __future__ import annotations

from typing import Any

import torch

from dreamedit3d_core.geometry.cameras import mvdream_orbit
from dreamedit3d_core.mvdiffusion import MultiViewDiffusion
from tests.core.mvdiffusion.mvdream_reference import MultiViewUNetReference

TINY_UNET = dict(
    in_channels=4, out_channels=4, model_channels=32, num_res_blocks=2, attention_resolutions=[1, 2],
    channel_mult=[1, 2, 2], num_head_channels=16, context_dim=32, transformer_depth=1,
    use_linear_in_transformer=True, camera_dim=16,
)  # fmt: skip


def official_yaml(unet_params: dict[str, Any]) -> dict[str, Any]:
    """The official config layout (mvdream/configs/sd-v2-base.yaml) at tiny sizes."""
    return {
        "model": {
            "target": "mvdream.ldm.interface.LatentDiffusionInterface",
            "params": {
                "linear_start": 0.00085, "linear_end": 0.012, "timesteps": 1000, "scale_factor": 0.18215,
                "parameterization": "eps",
                "unet_config": {
                    "target": "mvdream.ldm.modules.diffusionmodules.openaimodel.MultiViewUNetModel",
                    "params": dict(unet_params, image_size=8, use_spatial_transformer=True, legacy=False,
                                   use_checkpoint=False),
                },
                "first_stage_config": {"params": {"ddconfig": {"ch_mult": [1, 2, 4], "resolution": 32}}},
                "cond_stage_config": {"params": {"layer": "penultimate"}},
            },
        }
    }  # fmt: skip


def official_checkpoint(reference: MultiViewUNetReference) -> dict[str, torch.Tensor]:
    """UNet under its official prefix, plus the schedule buffers and VAE/text weights a real file carries."""
    state = {f"model.diffusion_model.{k}": v.clone() for k, v in reference.state_dict().items()}
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    state["betas"] = betas.float()
    state["alphas_cumprod"] = torch.cumprod(1 - betas, 0).float()
    state["first_stage_model.encoder.conv_in.weight"] = torch.zeros(8, 3, 3, 3)
    state["cond_stage_model.model.positional_embedding"] = torch.zeros(77, 32)
    return state


@torch.no_grad()
def relative_error(reference: MultiViewUNetReference, model: MultiViewDiffusion) -> float:
    """Relative L2 error of our noise prediction against the official forward, 2 objects x 4 views."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 4, 8, 8, generator=g)  # 2 objects x 4 views
    context = torch.randn(8, 77, 32, generator=g)
    cameras = torch.from_numpy(mvdream_orbit().mvdream_vectors()).repeat(2, 1)
    t = torch.tensor([981] * 4 + [21] * 4)
    official = reference(x, t, context, cameras, num_frames=4)
    ours = model.noise_prediction(x, t, context, cameras)
    return float((ours - official).norm() / official.norm())
