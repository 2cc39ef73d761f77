"""Cross-attention recorder: maps the personalisation loss can train through."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamedit3d_core.geometry.cameras import mvdream_orbit
from dreamedit3d_core.mvdiffusion import CrossAttentionRecorder, MultiViewDiffusion


def _inputs(model: MultiViewDiffusion) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    latents = torch.randn(4, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    embeds = model.encode_prompts(["a photo of a duck wearing a red hat"] * 4)
    cameras = torch.from_numpy(mvdream_orbit().mvdream_vectors())
    return latents, embeds, cameras


def test_maps_have_shape_and_gradients() -> None:
    model = MultiViewDiffusion.build_tiny(0)
    latents, embeds, cameras = _inputs(model)
    latents.requires_grad_(True)
    with CrossAttentionRecorder(model.unet, token_indices=[5, 9], resolution=16) as recorder:
        model.noise_prediction(latents, 400, embeds, cameras)
        maps = recorder.maps()
        assert maps.shape == (4, 2, 16, 16)
        assert maps.requires_grad
        maps[:, 0].sum().backward()
    assert latents.grad is not None and latents.grad.abs().sum() > 0
    to_k = model.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2.to_k.weight
    assert to_k.grad is not None and to_k.grad.abs().sum() > 0


@torch.no_grad()
def test_each_layer_map_is_a_distribution_over_tokens() -> None:
    model = MultiViewDiffusion.build_tiny(0)
    latents, embeds, cameras = _inputs(model)
    with CrossAttentionRecorder(model.unet, token_indices=list(range(77))) as recorder:
        model.noise_prediction(latents, 400, embeds, cameras)
        layers = recorder.layer_maps()
    # 16x16 in the tiny UNet: down block 0 (1 layer) and up block 1 (2 layers), never the mid block
    assert sorted(layers) == sorted(n for n in layers if n.startswith(("down_blocks.0.", "up_blocks.1.")))
    assert len(layers) == 3
    for name, layer in layers.items():
        assert torch.allclose(layer.sum(dim=1), torch.ones(4, 16, 16), atol=1e-5), name
        assert (layer >= 0).all()
    maps = recorder.maps()
    assert torch.allclose(maps, torch.stack(list(layers.values())).mean(0))


@torch.no_grad()
def test_recording_does_not_change_the_prediction() -> None:
    model = MultiViewDiffusion.build_tiny(0)
    latents, embeds, cameras = _inputs(model)
    plain = model.noise_prediction(latents, 400, embeds, cameras)
    with CrossAttentionRecorder(model.unet, token_indices=[1, 2]):
        recorded = model.noise_prediction(latents, 400, embeds, cameras)
    assert torch.allclose(plain, recorded, atol=1e-5)


@torch.no_grad()
def test_per_sample_token_indices() -> None:
    model = MultiViewDiffusion.build_tiny(0)
    latents, embeds, cameras = _inputs(model)
    recorder = CrossAttentionRecorder(model.unet, token_indices=[3, 6, 7])
    with recorder:
        model.noise_prediction(latents, 400, embeds, cameras)
        shared = recorder.maps()
        rows = torch.tensor([[3, 6], [6, 7], [3, 7], [7, 3]])
        recorder.select(rows)
        model.noise_prediction(latents, 400, embeds, cameras)
        per_sample = recorder.maps()
    position = {3: 0, 6: 1, 7: 2}
    for i, row in enumerate(rows.tolist()):
        for j, token in enumerate(row):
            assert torch.allclose(per_sample[i, j], shared[i, position[token]], atol=1e-6)


def test_gradient_checkpointing_gives_the_same_map_gradients() -> None:
    grads = []
    for checkpointing in (False, True):
        model = MultiViewDiffusion.build_tiny(0)
        if checkpointing:
            model.unet.enable_gradient_checkpointing()
        model.unet.train()
        latents, embeds, cameras = _inputs(model)
        with CrossAttentionRecorder(model.unet, token_indices=[5]) as recorder:
            eps = model.noise_prediction(latents, 400, embeds, cameras)
            loss = recorder.maps().square().mean() + eps.square().mean()
            loss.backward()
        grads.append(model.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2.to_q.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6, rtol=1e-4)


def test_previews_are_images() -> None:
    model = MultiViewDiffusion.build_tiny(0)
    latents, embeds, cameras = _inputs(model)
    with torch.no_grad(), CrossAttentionRecorder(model.unet, token_indices=[5, 9]) as recorder:
        model.noise_prediction(latents, 400, embeds, cameras)
        previews = recorder.previews(size=32)
    assert previews.shape == (4, 2, 32, 32) and previews.dtype == np.uint8
    assert (previews.reshape(8, -1).max(axis=1) >= 250).all()  # each map divided by its max


def test_clear_errors() -> None:
    model = MultiViewDiffusion.build_tiny(0)
    latents, embeds, cameras = _inputs(model)
    with pytest.raises(ValueError, match="blocks"):
        CrossAttentionRecorder(model.unet, blocks=("left",))
    with torch.no_grad(), CrossAttentionRecorder(model.unet, token_indices=[1], resolution=12) as recorder:
        model.noise_prediction(latents, 400, embeds, cameras)
        with pytest.raises(ValueError, match="12x12"):
            recorder.maps()
    with torch.no_grad(), CrossAttentionRecorder(model.unet, token_indices=[80]):
        with pytest.raises(ValueError, match="past the prompt length 77"):
            model.noise_prediction(latents, 400, embeds, cameras)
    with pytest.raises(ValueError, match="token_indices"):
        CrossAttentionRecorder(model.unet, token_indices=[])


def test_recorder_detaches_on_exit() -> None:
    model = MultiViewDiffusion.build_tiny(0)
    latents, embeds, cameras = _inputs(model)
    recorder = CrossAttentionRecorder(model.unet, token_indices=[1])
    with recorder:
        pass
    with torch.no_grad():
        model.noise_prediction(latents, 400, embeds, cameras)
    assert recorder.layer_maps() == {}


@torch.no_grad()
def test_recorder_follows_a_backend_change() -> None:
    model = MultiViewDiffusion.build_tiny(0)
    latents, embeds, cameras = _inputs(model)
    recorder = CrossAttentionRecorder(model.unet, token_indices=[1])
    model.set_attention_backend("stock")  # new processor objects
    with recorder:
        model.noise_prediction(latents, 400, embeds, cameras)
    assert len(recorder.layer_maps()) == 3
