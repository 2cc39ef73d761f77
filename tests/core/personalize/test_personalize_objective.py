"""The objective's pieces: batches, prompts, targets, the masked and the alignment losses."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler

from dreamedit3d_core.personalize import prepare_training_data
from dreamedit3d_core.personalize.objective import (
    alignment_loss,
    attention_resolutions,
    diffusion_target,
    masked_mse,
    sample_batch,
    token_positions,
)
from dreamedit3d_core.personalize.tokens import add_placeholder_tokens
from tests.core.personalize.personalize_scenes import TOKENS, tiny_invert, tiny_model, two_part_views

THREE = ["<asset0>", "<asset1>", "<asset2>"]


def test_batches_draw_non_empty_subsets_from_the_generator() -> None:
    model = tiny_model()
    data = prepare_training_data(model, *two_part_views(32))
    config = tiny_invert(template="a photo of {}")
    draws = [sample_batch([data], THREE, config, torch.Generator().manual_seed(s), 1000)[0] for s in range(40)]
    subsets = {tuple(b.components) for b in draws}
    assert all(len(s) >= 1 for s in subsets) and len(subsets) >= 5  # singles, pairs and all three occur
    batch = next(b for b in draws if b.components == [0, 2])
    assert batch.prompt == "a photo of <asset0> and <asset2>"
    assert torch.equal(batch.timesteps, batch.timesteps[:1].expand(4))  # one timestep for all views
    again = sample_batch([data], THREE, config, torch.Generator().manual_seed(0), 1000)[0]
    assert again.components == draws[0].components and torch.equal(again.noise, draws[0].noise)
    everything = sample_batch([data], THREE, config.model_copy(update={"subset": "all"}), torch.Generator(), 1000)[0]
    assert everything.components == [0, 1, 2]


def test_token_positions_and_attention_resolutions() -> None:
    model = tiny_model()
    add_placeholder_tokens(model, TOKENS, ["duck", "hat"])
    ids = model.tokenizer.convert_tokens_to_ids(TOKENS)
    assert token_positions(model, "a photo of <asset0> and <asset1>", ids) == [4, 6]  # after <start> a photo of
    assert attention_resolutions(model) == [8, 4]


def test_targets_follow_the_prediction_type() -> None:
    model = tiny_model()
    latents, noise = torch.randn(4, 4, 8, 8), torch.randn(4, 4, 8, 8)
    t = torch.full((4,), 600)
    assert torch.equal(diffusion_target(model, latents, noise, t), noise)
    model.scheduler = DDIMScheduler.from_config(model.scheduler.config, prediction_type="v_prediction")
    alpha = model.scheduler.alphas_cumprod[600]
    expected = alpha.sqrt() * noise - (1 - alpha).sqrt() * latents
    assert torch.allclose(diffusion_target(model, latents, noise, t), expected, atol=1e-6)


def test_losses_look_only_where_they_should() -> None:
    prediction, target = torch.zeros(2, 4, 8, 8), torch.zeros(2, 4, 8, 8)
    target[:, :, :, 4:] = 3.0  # wrong only on the right half
    left = torch.zeros(2, 8, 8)
    left[:, :, :4] = 1
    assert masked_mse(prediction, target, left) == 0 and masked_mse(prediction, target, left, "mask") == 0
    assert masked_mse(prediction, target, 1 - left, "mask") == 9  # the mean over the masked pixels
    assert masked_mse(prediction, target, 1 - left, "image") == 4.5  # Break-a-Scene: the mean over the image
    masks = torch.zeros(4, 2, 8, 8)
    masks[:, 0, :, :4] = 1
    masks[:, 1, :, 4:] = 1
    assert alignment_loss(masks * 0.05, masks) < 1e-12  # a map shaped like its mask, at any scale
    assert alignment_loss(torch.ones(4, 2, 8, 8), masks) == 0.5  # a flat map misses half the cells


def test_background_weight_adds_the_ground_outside_every_component() -> None:
    from dreamedit3d_core.personalize.objective import loss_weight

    masks = torch.zeros(2, 1, 1, 4)  # (K, V, h, w): component 0, component 1, then two background pixels
    masks[0, 0, 0, 0] = 1
    masks[1, 0, 0, 1] = 1
    assert loss_weight(masks, [0]).tolist() == [[[1.0, 0.0, 0.0, 0.0]]]  # Break-a-Scene: only what is chosen
    assert loss_weight(masks, [0], 1.0).tolist() == [[[1.0, 0.0, 1.0, 1.0]]]  # + the ground, not component 1
    assert loss_weight(masks, [0, 1], 0.5).tolist() == [[[1.0, 1.0, 0.5, 0.5]]]


def test_attribute_words_go_beside_their_tokens_in_every_prompt() -> None:
    from dreamedit3d_core.personalize.objective import build_prompt

    config = tiny_invert(attribute_words=True, subset="random")
    assert build_prompt(config, TOKENS, ["in red", ""]) == "a photo of <asset0> in red and <asset1>"
    assert build_prompt(tiny_invert(), TOKENS, ["in red", "in blue"]) == "a photo of <asset0> and <asset1>"  # off
    model = tiny_model()
    data = prepare_training_data(model, *two_part_views(32), attributes=["in red", "in blue"])
    generator = torch.Generator().manual_seed(0)
    prompts = {sample_batch([data], TOKENS, config, generator, 1000)[0].prompt for _ in range(20)}
    assert prompts == {"a photo of <asset0> in red", "a photo of <asset1> in blue", "a photo of <asset0> in red and <asset1> in blue"}
    with pytest.raises(ValueError, match="3 attribute phrases for 2 components"):
        prepare_training_data(model, *two_part_views(32), attributes=["in red", "in blue", "in green"])
