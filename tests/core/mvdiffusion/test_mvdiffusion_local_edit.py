"""Local edits: outside the edited component's region the views are the plain prompt's, inside the edit's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamedit3d_core.geometry.cameras import mvdream_orbit
from dreamedit3d_core.mvdiffusion import MultiViewDiffusion, SampleConfig, sample_views
from dreamedit3d_core.mvdiffusion.local_edit import edit_region
from dreamedit3d_core.mvdiffusion.prompts import plain_prompt
from dreamedit3d_core.personalize import set_token_embeddings

CAMERAS = torch.from_numpy(mvdream_orbit().mvdream_vectors())
TOKENS = ["<asset0>", "<asset1>"]
EDIT = "a photo of <asset0> and <asset1> in red"


@pytest.fixture(scope="module")
def model() -> MultiViewDiffusion:
    model = MultiViewDiffusion.build_tiny(0)
    g = torch.Generator().manual_seed(3)
    set_token_embeddings(model, {token: torch.randn(1, 32, generator=g) for token in TOKENS})
    return model


def _latents(model: MultiViewDiffusion, prompt: str, regions: np.ndarray | None = None) -> torch.Tensor:
    config = SampleConfig(steps=3, local_edit=regions is not None, local_edit_grow=0)
    return sample_views(model, [prompt], CAMERAS, config, torch.Generator().manual_seed(5), edit_regions=regions).latents[0]


def test_plain_prompt_drops_only_the_edit_words() -> None:
    assert plain_prompt(EDIT) == "a photo of <asset0> and <asset1>"
    assert plain_prompt("a photo of <asset0> wearing a red scarf and <asset1>") == "a photo of <asset0> and <asset1>"
    assert plain_prompt("a photo of <asset0> and <asset1>") == "a photo of <asset0> and <asset1>"


def test_edit_region_is_the_edited_components_masks() -> None:
    masks = np.zeros((2, 4, 8, 8), bool)
    masks[0, :, :4] = True
    masks[1, :, 4:] = True
    assert np.array_equal(edit_region(masks, TOKENS, EDIT), masks[1])
    assert not edit_region(masks, TOKENS, "a photo of <asset0> and <asset1>").any()  # edits nothing
    with pytest.raises(ValueError, match=r"edited token <asset2> .* has no mask"):
        edit_region(masks, TOKENS, "a photo of <asset2> in red")
    with pytest.raises(ValueError, match="masks must be"):
        edit_region(masks[0], TOKENS, EDIT)


def test_outside_the_region_the_views_are_the_plain_prompts(model: MultiViewDiffusion) -> None:
    size = model.config.latent_size
    plain, edit = _latents(model, "a photo of <asset0> and <asset1>"), _latents(model, EDIT)
    assert not torch.allclose(plain, edit, atol=1e-3)  # the edit words change the views
    nowhere, everywhere = np.zeros((1, 4, 32, 32), bool), np.ones((1, 4, 32, 32), bool)
    torch.testing.assert_close(_latents(model, EDIT, nowhere), plain, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(_latents(model, EDIT, everywhere), edit, atol=1e-4, rtol=1e-4)

    half = np.zeros((1, 4, 32, 32), bool)
    half[..., 16:] = True  # the right half of every view may change
    local = _latents(model, EDIT, half)
    right = slice(size // 2, None)
    torch.testing.assert_close(local[..., : size // 2], plain[..., : size // 2], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(local[..., right], plain[..., right], atol=1e-3)

    out = sample_views(
        model, [EDIT], CAMERAS, SampleConfig(steps=2, local_edit=True, local_edit_grow=1), torch.Generator().manual_seed(5),
        edit_regions=half,
    )
    assert out.edit_masks.shape == (1, 4, size, size) and out.edit_masks[..., right].all()
    assert out.edit_masks[..., size // 2 - 1].all() and not out.edit_masks[..., : size // 2 - 1].any()  # grown a cell


def test_regions_go_with_local_edit_only(model: MultiViewDiffusion) -> None:
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="edit_regions .* go with local_edit"):
        sample_views(model, [EDIT], CAMERAS, SampleConfig(steps=1, local_edit=True), g)
    with pytest.raises(ValueError, match="edit_regions .* go with local_edit"):
        sample_views(model, [EDIT], CAMERAS, SampleConfig(steps=1), g, edit_regions=np.ones((1, 4, 8, 8), bool))
    with pytest.raises(ValueError, match=r"edit_regions must be \(1, 4, H, W\)"):
        sample_views(model, [EDIT], CAMERAS, SampleConfig(steps=1, local_edit=True), g, edit_regions=np.ones((2, 4, 8, 8), bool))
