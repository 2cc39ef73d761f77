"""CUDA paths of the tiny preset: mixed precision, the automatic attention backend, sampling on the GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamedit3d_core.geometry.cameras import mvdream_orbit
from dreamedit3d_core.mvdiffusion import (
    CrossAttentionRecorder,
    MultiViewDiffusion,
    PerformanceConfig,
    SampleConfig,
    sample_views,
)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
CAMERAS = torch.from_numpy(mvdream_orbit().mvdream_vectors())


@torch.no_grad()
def test_cuda_auto_attention_matches_cpu() -> None:
    cpu = MultiViewDiffusion.build_tiny(0)
    gpu = MultiViewDiffusion.build_tiny(0).to("cuda")
    g = torch.Generator().manual_seed(0)
    latents, embeds = torch.randn(8, 4, 16, 16, generator=g), torch.randn(8, 77, 32, generator=g)
    cameras = CAMERAS.repeat(2, 1)
    expected = cpu.noise_prediction(latents, 500, embeds, cameras)
    got = gpu.noise_prediction(latents.cuda(), 500, embeds.cuda(), cameras.cuda())  # xformers when installed
    assert torch.allclose(got.cpu(), expected, atol=1e-3)


def test_bf16_training_step_with_recorder_and_checkpointing() -> None:
    model = MultiViewDiffusion.build_tiny(0).to("cuda")
    model.apply_performance(PerformanceConfig(dtype="bfloat16", gradient_checkpointing=True))
    model.unet.train()
    latents = torch.randn(4, 4, 16, 16, device="cuda")
    embeds = model.encode_prompts(["a photo of a duck"] * 4).detach()
    with CrossAttentionRecorder(model.unet, token_indices=[4]) as recorder:
        eps = model.noise_prediction(latents, torch.full((4,), 300, device="cuda"), embeds, CAMERAS.cuda())
        loss = eps.float().square().mean() + recorder.maps().float().mean()
        loss.backward()
    assert model.unet.conv_in.weight.grad is not None and torch.isfinite(model.unet.conv_in.weight.grad).all()


def test_sampling_on_cuda_is_reproducible() -> None:
    model = MultiViewDiffusion.build_tiny(0).to("cuda")
    config = SampleConfig(steps=3)
    a = sample_views(model, ["a red hat"], CAMERAS, config, torch.Generator(device="cuda").manual_seed(1))
    b = sample_views(model, ["a red hat"], CAMERAS, config, torch.Generator(device="cuda").manual_seed(1))
    assert a.views.shape == (1, 4, 64, 64, 3) and np.array_equal(a.views, b.views)
