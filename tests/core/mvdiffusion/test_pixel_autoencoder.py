"""The pixel-unshuffle autoencoder: exact, weight-free, and loaded through the same code as real weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dreamedit3d_core.mvdiffusion import MultiViewDiffusion
from dreamedit3d_core.mvdiffusion.architecture import MultiViewDiffusionConfig
from dreamedit3d_core.mvdiffusion.pixel_autoencoder import PixelUnshuffleAutoencoder


def small_pixel_config() -> MultiViewDiffusionConfig:
    return MultiViewDiffusionConfig.tiny().model_copy(
        update={"vae_kind": "pixel_unshuffle", "pixel_factor": 4, "latent_channels": 48, "scaling_factor": 1.0}
    )


def test_round_trip_is_exact_and_generator_free() -> None:
    vae = PixelUnshuffleAutoencoder(factor=4)
    images = torch.rand(3, 3, 64, 64) * 2 - 1
    posterior = vae.encode(images).latent_dist
    assert posterior.mean.shape == (3, 48, 16, 16)
    assert torch.equal(posterior.std, torch.zeros_like(posterior.std))
    latents = posterior.sample(torch.Generator().manual_seed(1))
    assert torch.equal(latents, posterior.mean)
    assert torch.equal(vae.decode(latents).sample, images)


def test_refuses_sizes_that_do_not_divide() -> None:
    vae = PixelUnshuffleAutoencoder(factor=4)
    with pytest.raises(ValueError, match="not a multiple of the factor 4"):
        vae.encode(torch.zeros(1, 3, 62, 64))
    with pytest.raises(ValueError, match="latents must be"):
        vae.decode(torch.zeros(1, 12, 16, 16))


def test_config_checks_latent_channels() -> None:
    with pytest.raises(ValueError, match="gives 48 latent channels"):
        MultiViewDiffusionConfig.tiny().model_copy(update={"vae_kind": "pixel_unshuffle"}).model_validate(
            {**MultiViewDiffusionConfig.tiny().model_dump(), "vae_kind": "pixel_unshuffle", "latent_channels": 4}
        )
    assert small_pixel_config().latent_size == 16


def test_bundle_saves_half_precision_and_loads_as_float32(tmp_path: Path) -> None:
    config = small_pixel_config()
    model = MultiViewDiffusion.build_random(config, seed=3)
    model.save_pretrained(tmp_path / "m", dtype=torch.float16)
    assert model.unet.dtype == torch.float32  # the model itself is untouched
    assert json.loads((tmp_path / "m" / "vae" / "config.json").read_text())["_class_name"] == "PixelUnshuffleAutoencoder"
    loaded = MultiViewDiffusion.from_pretrained(tmp_path / "m")
    assert isinstance(loaded.vae, PixelUnshuffleAutoencoder)
    assert loaded.unet.dtype == torch.float32 and loaded.config == config
    images = torch.rand(4, 3, 64, 64) * 2 - 1
    assert torch.equal(loaded.decode_latents(loaded.encode_images(images)), images)
    latents, cameras = torch.randn(4, 48, 16, 16), torch.randn(4, 16)
    with torch.no_grad():
        expected = model.noise_prediction(latents, 500, model.encode_prompts(["a red cube"] * 4), cameras)
        got = loaded.noise_prediction(latents, 500, loaded.encode_prompts(["a red cube"] * 4), cameras)
    assert torch.allclose(got, expected, atol=2e-2)  # float16 weights: close, not equal


def test_folder_without_our_config_is_refused(tmp_path: Path) -> None:
    MultiViewDiffusion.build_random(small_pixel_config()).save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "multiview_diffusion.json").unlink()
    with pytest.raises(ValueError, match="pixel-unshuffle autoencoder but no multiview_diffusion.json"):
        MultiViewDiffusion.from_pretrained(tmp_path / "m")


def test_world_schedule_predicts_v_and_ends_in_pure_noise() -> None:
    from dreamedit3d_core.mvdiffusion.model import ddim_scheduler

    scheduler = ddim_scheduler(MultiViewDiffusionConfig.world_small())
    assert scheduler.config.prediction_type == "v_prediction"
    assert float(scheduler.alphas_cumprod[-1]) == 0.0  # zero terminal SNR: no image left at the last step
    scheduler.set_timesteps(50)
    assert int(scheduler.timesteps[0]) == 999  # sampling starts where training's pure noise is
    mvdream = ddim_scheduler(MultiViewDiffusionConfig())
    mvdream.set_timesteps(50)
    assert mvdream.config.prediction_type == "epsilon" and int(mvdream.timesteps[0]) == 981  # MVDream's, unchanged
