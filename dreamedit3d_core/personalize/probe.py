"""Attention probe: where each token looks, measured the same way before and after a phase.

The probe runs the prompt naming every component ("a photo of <asset0> and <asset1>") on the posterior
means of the views at fixed timesteps with fixed noise, records each token's head-averaged cross-attention
map at the training resolution (down and up blocks), and averages over the timesteps. Attention isolation
of a token in a view = the share of its attention mass that falls inside its own mask; `mask_area` (the
share of the map's cells the mask covers) is what a uniform map would score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from dreamedit3d_core.mvdiffusion import CrossAttentionRecorder, MultiViewDiffusion
from dreamedit3d_core.personalize.config import TrainingConfig
from dreamedit3d_core.personalize.data import TrainingData
from dreamedit3d_core.personalize.objective import (
    alignment_loss,
    build_prompt,
    check_training_setup,
    diffusion_target,
    masked_mse,
    token_positions,
)
from dreamedit3d_core.personalize.tokens import token_ids


@dataclass(frozen=True)
class AttentionProbe:
    tokens: list[str]
    maps: np.ndarray  # (V, K, r, r) float32, raw head/layer/timestep-averaged probabilities
    masks: np.ndarray  # (K, V, r, r) float32, mask coverage of each cell
    diffusion_loss: float
    attention_loss: float

    def isolation(self) -> np.ndarray:
        """(K, V) share of each token's attention mass inside its own mask."""
        maps = self.maps.transpose(1, 0, 2, 3)  # (V, K, r, r) -> (K, V, r, r)
        inside = (maps * self.masks).sum(axis=(-2, -1))
        return inside / np.maximum(maps.sum(axis=(-2, -1)), 1e-12)

    def rows(self, phase: str) -> list[dict[str, object]]:
        """One row per token and view: phase, token, view, attention_isolation, mask_area."""
        isolation = self.isolation()
        area = self.masks.mean(axis=(-2, -1))  # (K, V)
        return [
            {
                "phase": phase,
                "token": token,
                "view": view,
                "attention_isolation": float(isolation[k, view]),
                "mask_area": float(area[k, view]),
            }
            for k, token in enumerate(self.tokens)
            for view in range(isolation.shape[1])
        ]

    def losses(self) -> dict[str, float]:
        return {"diffusion_loss": self.diffusion_loss, "attention_loss": self.attention_loss}


@torch.no_grad()
def probe_attention(
    model: MultiViewDiffusion, data: TrainingData, tokens: Sequence[str], config: TrainingConfig
) -> AttentionProbe:
    """Deterministic: the same model, data and config give the same probe."""
    check_training_setup(model, data, tokens, config)
    ids = token_ids(model, tokens)
    prompt = build_prompt(config, list(tokens), data.attributes)
    positions = token_positions(model, prompt, ids)
    views, resolution = data.num_views, config.attention_resolution
    embeds = model.encode_prompts([prompt]).expand(views, -1, -1)  # (1, L, D) -> (V, L, D)
    masks = data.masks_at(resolution)  # (K, V, r, r)
    union = data.masks_at(model.config.latent_size).amax(dim=0)  # (V, h, w)
    generator = torch.Generator().manual_seed(config.probe.seed)
    recorder = CrossAttentionRecorder(model.unet, positions, resolution, config.attention_blocks)
    all_maps, diffusion = [], []
    with recorder:
        for step in config.probe.timesteps:
            noise = torch.randn(data.latent_mean.shape, generator=generator).to(data.latent_mean.device)
            t = torch.full((views,), step, dtype=torch.long, device=data.latent_mean.device)
            noisy = model.scheduler.add_noise(data.latent_mean, noise, t)
            prediction = model.noise_prediction(noisy, t, embeds, data.cameras).float()
            target = diffusion_target(model, data.latent_mean, noise, t)
            diffusion.append(float(masked_mse(prediction, target, union, config.masked_mean)))
            all_maps.append(recorder.maps().float())
    maps = torch.stack(all_maps).mean(dim=0)  # (V, K, r, r)
    attention = float(alignment_loss(maps, masks.transpose(0, 1)))  # masks (K, V, r, r) -> (V, K, r, r)
    return AttentionProbe(
        tokens=list(tokens),
        maps=maps.cpu().numpy(),
        masks=masks.float().cpu().numpy(),
        diffusion_loss=float(np.mean(diffusion)),
        attention_loss=attention,
    )


def attention_isolation(
    model: MultiViewDiffusion,
    data: TrainingData,
    tokens: Sequence[str],
    config: TrainingConfig | None = None,
    phase: str = "",
) -> list[dict[str, object]]:
    """Rows (phase, token, view, attention_isolation, mask_area) for the tokens already in the model."""
    return probe_attention(model, data, tokens, config or TrainingConfig()).rows(phase)


def attention_preview(data: TrainingData, probe: AttentionProbe, cell: int = 64, gap: int = 2) -> np.ndarray:
    """uint8 (H, W, 3): a row per token; per view its map (divided by its max) over the view, then its mask."""
    views, tokens = data.num_views, len(probe.tokens)
    images = F.interpolate(data.images.float().cpu(), size=(cell, cell), mode="bilinear", antialias=True)
    images = ((images + 1) / 2).clamp(0, 1)  # (V, 3, c, c) in [0, 1]
    maps = torch.from_numpy(probe.maps)
    maps = F.interpolate(maps, size=(cell, cell), mode="bilinear", align_corners=False)  # (V, K, c, c)
    maps = (maps / maps.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)).clamp(0, 1)
    masks = F.interpolate(data.masks.float().cpu(), size=(cell, cell), mode="area")  # (K, V, c, c)
    red = torch.tensor([1.0, 0.1, 0.1])[:, None, None]
    height, width = tokens * (cell + gap) + gap, views * 2 * (cell + gap) + gap
    canvas = torch.full((3, height, width), 0.5)
    for k in range(tokens):
        top = gap + k * (cell + gap)
        for view in range(views):
            left = gap + 2 * view * (cell + gap)
            heat = maps[view, k][None]  # (1, c, c)
            gray = images[view].mean(dim=0, keepdim=True).expand(3, -1, -1)  # (1, c, c) -> (3, c, c)
            canvas[:, top : top + cell, left : left + cell] = gray * (1 - 0.7 * heat) + red * 0.7 * heat
            left += cell + gap
            canvas[:, top : top + cell, left : left + cell] = masks[k, view][None].expand(3, -1, -1)  # -> (3, c, c)
    return (canvas.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()  # (3, H, W) -> (H, W, 3)
