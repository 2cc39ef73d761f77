"""Pretraining from scratch: it learns, it resumes bit for bit, it refuses data that does not fit the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dreamedit3d_core.geometry.cameras import mvdream_orbit
from dreamedit3d_core.mvdiffusion import MultiViewDiffusion
from dreamedit3d_core.mvdiffusion.architecture import MultiViewDiffusionConfig
from dreamedit3d_core.pretrain import PretrainConfig, PretrainData, pretrain

CAMERAS = mvdream_orbit(4, image_size=64).mvdream_vectors().astype(np.float32)


def tiny_pixel_model(seed: int = 0) -> MultiViewDiffusion:
    config = MultiViewDiffusionConfig.tiny().model_copy(
        update={"vae_kind": "pixel_unshuffle", "latent_channels": 48, "scaling_factor": 1.0}
    )
    return MultiViewDiffusion.build_random(config, seed=seed)


def squares(count: int = 8) -> PretrainData:
    """Coloured squares on white: red ones captioned red, blue ones blue."""
    images = np.full((count, 4, 64, 64, 3), 255, np.uint8)
    captions = []
    for i in range(count):
        colour, rgb = ("red", (220, 30, 30)) if i % 2 else ("blue", (30, 60, 220))
        images[i, :, 16:48, 16:48] = rgb
        captions.append([f"a photo of a {colour} cube", f"a photo of a cube in {colour}"])
    return PretrainData(images, captions, CAMERAS)


@torch.no_grad()
def denoising_error(model: MultiViewDiffusion, data: PretrainData, t: int) -> float:
    """Mean squared error of the predicted noise on the data at timestep t (fixed noise, captions given)."""
    images = torch.from_numpy(data.images).permute(0, 1, 4, 2, 3).float() / 127.5 - 1  # (N, V, 3, S, S)
    latents = model.encode_images(images.reshape(-1, 3, 64, 64))  # (N*V, C, h, w)
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(0))
    a = model.scheduler.alphas_cumprod[t]
    noisy = a.sqrt() * latents + (1 - a).sqrt() * noise
    embeds = model.encode_prompts([c[0] for c in data.captions]).repeat_interleave(4, dim=0)
    cameras = torch.from_numpy(CAMERAS).repeat(len(data.images), 1)
    return float(((model.noise_prediction(noisy, t, embeds, cameras) - noise) ** 2).mean())


def test_training_learns_to_denoise_the_world() -> None:
    model, data = tiny_pixel_model(), squares()
    before = denoising_error(model, data, 300)
    settings = PretrainConfig(steps=80, batch_objects=4, lr=2e-3, warmup_steps=2, log_every=5, ema_decay=0.5)
    result = pretrain(model, data, settings)
    after = denoising_error(model, data, 300)  # the moving average of the weights, as shipped
    assert after < 0.85 * before, (before, after, result.losses)
    assert result.losses[-1][1] < result.losses[0][1]
    assert not model.unet.training and not any(p.requires_grad for p in model.unet.parameters())


def test_resume_continues_the_same_run(tmp_path: Path) -> None:
    config = PretrainConfig(steps=4, batch_objects=2, warmup_steps=1, checkpoint_every=2, log_every=1)
    straight = tiny_pixel_model()
    pretrain(straight, squares(), config)

    interrupted = tiny_pixel_model()
    partial = pretrain(interrupted, squares(), config, checkpoint_dir=tmp_path, stop_after=2)
    assert partial.steps == 2 and [p.name for p in tmp_path.iterdir()] == ["step-000002"]
    resumed_model = tiny_pixel_model(seed=7)  # a different init: everything must come from the checkpoint
    resumed = pretrain(resumed_model, squares(), config, checkpoint_dir=tmp_path)
    assert resumed.resumed_from_step == 2 and resumed.steps == 4
    for module in ("unet", "text_encoder"):  # the frozen text encoder too comes from the checkpoint
        for a, b in zip(getattr(straight, module).parameters(), getattr(resumed_model, module).parameters(), strict=True):
            assert torch.equal(a, b)
    assert [s for s, _ in resumed.losses] == [1, 2, 3, 4]

    with pytest.raises(ValueError, match="other settings"):
        pretrain(tiny_pixel_model(), squares(), config.model_copy(update={"lr": 1e-2}), checkpoint_dir=tmp_path)


def test_time_limit_ends_early_with_the_average() -> None:
    model = tiny_pixel_model()
    result = pretrain(model, squares(), PretrainConfig(steps=1000, batch_objects=2), time_limit_s=0.0)
    assert result.stopped_early and result.steps == 1


def test_refuses_data_that_does_not_fit() -> None:
    data = squares()
    with pytest.raises(ValueError, match="images are 32 px, the model takes 64 px"):
        pretrain(tiny_pixel_model(), PretrainData(data.images[:, :, :32, :32], data.captions, CAMERAS), PretrainConfig())
    with pytest.raises(ValueError, match="at least one caption"):
        PretrainData(data.images, [[]] * len(data.images), CAMERAS)
    with pytest.raises(ValueError, match="cameras must be"):
        PretrainData(data.images, data.captions, CAMERAS[:2])
