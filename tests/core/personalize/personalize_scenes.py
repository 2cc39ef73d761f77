"""A two-component asset in 4 views and tiny 32 px models for the personalisation tests."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from dreamedit3d_core.geometry.cameras import mvdream_orbit
from dreamedit3d_core.mvdiffusion import MultiViewDiffusion, MultiViewDiffusionConfig
from dreamedit3d_core.config import preset_settings
from dreamedit3d_core.personalize import FinetuneConfig, InvertConfig, TrainingData

TOKENS = ["<asset0>", "<asset1>"]
WORDS = ["duck", "hat"]


def tiny_invert(**overrides: object) -> InvertConfig:
    """Phase 1 settings of the `tiny` preset, with `overrides`."""
    return InvertConfig.model_validate({**preset_settings("tiny")["invert"], **overrides})


def tiny_finetune(**overrides: object) -> FinetuneConfig:
    """Phase 2 settings of the `tiny` preset, with `overrides`."""
    return FinetuneConfig.model_validate({**preset_settings("tiny")["finetune"], **overrides})


def tiny_config(image_size: int = 32) -> MultiViewDiffusionConfig:
    """The tiny preset at 32 px: 8x8 latents, cross-attention maps 8x8 and 4x4."""
    return MultiViewDiffusionConfig(**{**MultiViewDiffusionConfig.tiny().model_dump(), "image_size": image_size})


def tiny_model(seed: int = 0) -> MultiViewDiffusion:
    return MultiViewDiffusion.build_random(tiny_config(), seed=seed)


def two_part_views(size: int = 32, views: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """rgb (V, H, W, 3) uint8 on white, masks (2, V, H, W) bool (a red left part, a blue right part), cameras."""
    rgb = np.full((views, size, size, 3), 255, np.uint8)
    masks = np.zeros((2, views, size, size), bool)
    unit = size // 32
    for view in range(views):
        shift = (view % 2) * unit
        masks[0, view, 6 * unit : 26 * unit, 3 * unit + shift : 15 * unit + shift] = True
        masks[1, view, 8 * unit : 24 * unit, 17 * unit - shift : 29 * unit - shift] = True
    rgb[masks[0]] = (220, 30, 30)
    rgb[masks[1]] = (30, 30, 220)
    return rgb, masks, mvdream_orbit(views).mvdream_vectors()


def with_image_latents(data: TrainingData, model: MultiViewDiffusion) -> TrainingData:
    """Latents that carry the image, as a trained VAE's do: a random VAE's posterior is mostly noise.

    Pooled RGB plus grey, standardised, with no posterior noise.
    """
    size = model.config.latent_size
    pooled = F.interpolate(data.images, size=(size, size), mode="area")  # (V, 3, h, w)
    latents = torch.cat([pooled, pooled.mean(dim=1, keepdim=True)], dim=1)  # (V, 4, h, w)
    latents = (latents - latents.mean()) / latents.std()
    return replace(data, latent_mean=latents, latent_std=torch.zeros_like(latents))


def sharpen_cross_attention(model: MultiViewDiffusion, factor: float) -> MultiViewDiffusion:
    """Scale the cross-attention keys so maps can be as peaked as a trained model's.

    At random init the logits over the prompt's 77 keys spread by less than one unit, so every token's map
    is nearly flat whatever its embedding: no token could isolate anything.
    """
    with torch.no_grad():
        for name, module in model.unet.named_modules():
            if name.endswith("attn2.to_k"):
                module.weight.mul_(factor)
    return model
