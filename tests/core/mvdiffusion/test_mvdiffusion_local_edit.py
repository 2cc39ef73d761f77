"""Local edits: outside the edited components' regions the views are the known region's (the plain prompt's
drawing, or the source's own views); inside, the edit prompt's, or each component's own words (regional)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamedit3d_core.geometry.cameras import mvdream_orbit
from dreamedit3d_core.mvdiffusion import MultiViewDiffusion, MultiViewDiffusionConfig, SampleConfig, sample_views
from dreamedit3d_core.mvdiffusion.local_edit import LocalEditPlan, Region, edit_region, latent_cells, plan_local_edit
from dreamedit3d_core.mvdiffusion.prompts import plain_prompt
from dreamedit3d_core.mvdiffusion.sampling import sample_edit, sample_local_edit, source_latents
from dreamedit3d_core.mvdiffusion.settings import EditConfig
from dreamedit3d_core.personalize import set_token_embeddings

CAMERAS = torch.from_numpy(mvdream_orbit().mvdream_vectors())
TOKENS = ["<asset0>", "<asset1>"]
EDIT = "a photo of <asset0> and <asset1> in red"
PLAIN = "a photo of <asset0> and <asset1>"
WORDS = {"<asset0>": "cube", "<asset1>": "cone"}


def _with_tokens(model: MultiViewDiffusion) -> MultiViewDiffusion:
    g = torch.Generator().manual_seed(3)
    dim = model.text_encoder.get_input_embeddings().weight.shape[1]
    set_token_embeddings(model, {token: torch.randn(1, dim, generator=g) for token in TOKENS})
    return model


@pytest.fixture(scope="module")
def model() -> MultiViewDiffusion:
    return _with_tokens(MultiViewDiffusion.build_tiny(0))


def _free(model: MultiViewDiffusion, prompt: str, steps: int = 3) -> torch.Tensor:
    return sample_views(model, [prompt], CAMERAS, SampleConfig(steps=steps), torch.Generator().manual_seed(5)).latents[0]


def _local(model: MultiViewDiffusion, plan: LocalEditPlan, steps: int = 3, samples: int = 1):
    return sample_local_edit(model, plan, samples, CAMERAS, SampleConfig(steps=steps), torch.Generator().manual_seed(5))


def _cells(model: MultiViewDiffusion, where: str) -> torch.Tensor:
    size = model.config.latent_size
    cells = torch.zeros(4, 1, size, size)
    if where == "everywhere":
        cells[:] = 1
    elif where == "right":
        cells[..., size // 2 :] = 1
    elif where == "left":
        cells[..., : size // 2] = 1
    return cells


def test_plain_prompt_drops_only_the_edit_words() -> None:
    assert plain_prompt(EDIT) == PLAIN
    assert plain_prompt("a photo of <asset0> wearing a red scarf and <asset1>") == PLAIN
    assert plain_prompt(PLAIN) == PLAIN


def test_edit_region_is_the_edited_components_masks() -> None:
    masks = np.zeros((2, 4, 8, 8), bool)
    masks[0, :, :4] = True
    masks[1, :, 4:] = True
    assert np.array_equal(edit_region(masks, TOKENS, EDIT), masks[1])
    assert not edit_region(masks, TOKENS, PLAIN).any()  # edits nothing
    with pytest.raises(ValueError, match=r"edited token <asset2> .* has no mask"):
        edit_region(masks, TOKENS, "a photo of <asset2> in red")
    with pytest.raises(ValueError, match="masks must be"):
        edit_region(masks[0], TOKENS, EDIT)


def test_outside_the_region_the_views_are_the_plain_prompts(model: MultiViewDiffusion) -> None:
    size = model.config.latent_size
    plain, edit = _free(model, PLAIN), _free(model, EDIT)
    assert not torch.allclose(plain, edit, atol=1e-3)  # the edit words change the views

    def local(where: str) -> torch.Tensor:
        return _local(model, LocalEditPlan((Region(EDIT, _cells(model, where)),), PLAIN, None)).latents[0]

    torch.testing.assert_close(local("nowhere"), plain, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(local("everywhere"), edit, atol=1e-4, rtol=1e-4)
    right = local("right")
    torch.testing.assert_close(right[..., : size // 2], plain[..., : size // 2], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(right[..., size // 2 :], plain[..., size // 2 :], atol=1e-3)


def test_outside_the_region_the_views_are_the_source_exactly(model: MultiViewDiffusion) -> None:
    """Known region "source": the source's latents, noised with the edit's own noise, and exact at the end."""
    size = model.config.latent_size
    source = torch.randn(4, model.config.latent_channels, size, size, generator=torch.Generator().manual_seed(9))
    nowhere = _local(model, LocalEditPlan((Region(EDIT, _cells(model, "nowhere")),), None, source))
    torch.testing.assert_close(nowhere.latents[0], source)
    torch.testing.assert_close(_local(model, LocalEditPlan((Region(EDIT, _cells(model, "everywhere")),), None, source)).latents[0], _free(model, EDIT), atol=1e-4, rtol=1e-4)
    right = _local(model, LocalEditPlan((Region(EDIT, _cells(model, "right")),), None, source), samples=2)
    assert right.latents.shape == (2, 4, model.config.latent_channels, size, size)
    for sample in right.latents:
        torch.testing.assert_close(sample[..., : size // 2], source[..., : size // 2])
        assert not torch.allclose(sample[..., size // 2 :], source[..., size // 2 :], atol=1e-2)
    assert not torch.allclose(right.latents[0], right.latents[1], atol=1e-3)  # samples have their own noise
    assert right.edit_masks.shape == (2, 4, size, size) and right.edit_masks[..., size // 2 :].all()
    assert not right.edit_masks[..., : size // 2].any()


def test_regional_prompts_condition_each_region_on_its_own_words(model: MultiViewDiffusion) -> None:
    """Per-region guidance: one region over everything is the free draw of its prompt; two regions with the
    same prompt are one region; two prompts side by side are neither prompt's draw."""
    torch.testing.assert_close(
        _local(model, LocalEditPlan((Region("a photo of <asset1> in red", _cells(model, "everywhere")),), PLAIN, None)).latents[0],
        _free(model, "a photo of <asset1> in red"), atol=1e-4, rtol=1e-4,
    )  # fmt: skip
    halves = (Region(EDIT, _cells(model, "left")), Region(EDIT, _cells(model, "right")))
    torch.testing.assert_close(_local(model, LocalEditPlan(halves, None, torch.zeros(4, 4, 16, 16))).latents[0], _free(model, EDIT), atol=1e-4, rtol=1e-4)
    two = (Region("a photo of <asset0> in red", _cells(model, "left")), Region("a photo of <asset1> in blue", _cells(model, "right")))
    mixed = _local(model, LocalEditPlan(two, PLAIN, None)).latents[0]
    for prompt in ("a photo of <asset0> in red", "a photo of <asset1> in blue"):
        assert not torch.allclose(mixed, _free(model, prompt), atol=1e-3)


def test_a_plan_has_one_region_per_edited_component_grown_by_what_the_words_change() -> None:
    masks = np.zeros((3, 4, 32, 32), bool)
    masks[0, :, 4:8, 4:8] = True
    masks[1, :, 20:24, 20:24] = True
    masks[2, :, 10:12, 26:28] = True
    tokens = [*TOKENS, "<asset2>"]
    words = {**WORDS, "<asset2>": "pyramid"}
    prompt = "a photo of <asset0> in red and <asset1> as a sphere in blue and <asset2>"
    config = SampleConfig(local_edit=True, local_edit_grow=1, shape_edit_grow=3)
    whole = plan_local_edit(prompt, tokens, masks, config, 16)
    assert [r.prompt for r in whole.regions] == [prompt] and whole.plain_prompt == "a photo of <asset0> and <asset1> and <asset2>"
    assert whole.source_latents is None
    expected = torch.maximum(latent_cells(masks[0], 16, 1), latent_cells(masks[1], 16, 3))
    torch.testing.assert_close(whole.cells, expected)
    assert latent_cells(masks[0], 16, 1)[0, 0].sum() == 16 and latent_cells(masks[1], 16, 3)[0, 0].sum() == 64  # 2x2 cells grown

    regional = plan_local_edit(prompt, tokens, masks, config.model_copy(update={"regional_prompts": True}), 16)
    assert [r.prompt for r in regional.regions] == ["a photo of <asset0> in red", "a photo of <asset1> as a sphere in blue"]
    named = plan_local_edit(
        prompt, tokens, masks, config.model_copy(update={"regional_prompts": True, "region_words": "initializer"}), 16,
        initializer_words=words,
    )  # fmt: skip
    assert [r.prompt for r in named.regions] == ["a photo of a cube in red", "a photo of a sphere in blue"]
    weights = named.weights()
    assert weights.shape == (2, 4, 1, 16, 16) and torch.allclose(weights.sum(dim=0), torch.ones(4, 1, 16, 16))

    with pytest.raises(ValueError, match="needs the components' initializer words"):
        plan_local_edit(prompt, tokens, masks, config.model_copy(update={"regional_prompts": True, "region_words": "initializer"}), 16)
    with pytest.raises(ValueError, match="needs the source's latents"):
        plan_local_edit(prompt, tokens, masks, config.model_copy(update={"known_region": "source"}), 16)
    with pytest.raises(ValueError, match="regional_prompts needs sample.local_edit"):
        SampleConfig(regional_prompts=True)


def test_mvdream_shapes_regional_edit_with_the_source_as_known_region() -> None:
    """MVDream's shapes: 4 views of 256 px, a KL autoencoder, 32 x 32 latents (tiny widths)."""
    config = MultiViewDiffusionConfig.tiny().model_copy(
        update={"image_size": 256, "vae_block_out_channels": (8, 8, 16, 16), "vae_norm_num_groups": 4}
    )
    model = _with_tokens(MultiViewDiffusion.build_random(config, seed=0))
    assert model.config.latent_size == 32 and model.config.latent_channels == 4
    rng = np.random.default_rng(0)
    renders = rng.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)  # the source's renders, at another size
    masks = np.zeros((2, 4, 64, 64), bool)
    masks[0, :, :, :32] = True
    masks[1, :, 40:, 40:] = True
    sample_config = SampleConfig(steps=2, local_edit=True, known_region="source", regional_prompts=True, region_words="initializer")
    output = sample_edit(
        model, EditConfig(prompt=EDIT, samples=2), mvdream_orbit().mvdream_vectors(), sample_config,
        component_masks=masks, tokens=TOKENS, initializer_words=WORDS, source_views=renders,
    )  # fmt: skip
    assert output.views.shape == (2, 4, 256, 256, 3) and output.views.dtype == np.uint8
    assert output.latents.shape == (2, 4, 4, 32, 32) and output.edit_masks.shape == (2, 4, 32, 32)
    # <asset1>'s corner, 24 of 64 px = 12 latent cells wide, grown by one cell
    assert output.edit_masks[0, 0].sum() == 13 * 13 and not output.edit_masks[..., :19, :].any()
    source = source_latents(model, renders)
    outside = ~torch.from_numpy(output.edit_masks[0])[:, None]  # (V, 1, h, w)
    torch.testing.assert_close(output.latents[0] * outside, source * outside)  # the source's, exactly
    with pytest.raises(ValueError, match="needs the source's views"):
        sample_edit(model, EditConfig(prompt=EDIT), mvdream_orbit().mvdream_vectors(), sample_config, component_masks=masks, tokens=TOKENS, initializer_words=WORDS)


def test_a_region_drawn_alone_sees_nothing_of_its_surroundings(model: MultiViewDiffusion) -> None:
    """region_context "alone": inside its region the edit is the same whatever the source around it is; in the
    object (the default) the surroundings shape it. Outside, both are the source."""
    size = model.config.latent_size
    g = torch.Generator().manual_seed(9)
    sources = [torch.randn(4, model.config.latent_channels, size, size, generator=g) for _ in range(2)]
    alone = SampleConfig(steps=3, region_context="alone")
    right = slice(size // 2, None)

    def draw(source: torch.Tensor, config: SampleConfig) -> torch.Tensor:
        plan = LocalEditPlan((Region(EDIT, _cells(model, "right")),), None, source)
        return sample_local_edit(model, plan, 1, CAMERAS, config, torch.Generator().manual_seed(5)).latents[0]

    first, second = draw(sources[0], alone), draw(sources[1], alone)
    torch.testing.assert_close(first[..., right], second[..., right])
    torch.testing.assert_close(first[..., : size // 2], sources[0][..., : size // 2])
    in_object = [draw(source, SampleConfig(steps=3)) for source in sources]
    assert not torch.allclose(in_object[0][..., right], in_object[1][..., right], atol=1e-3)
    everywhere = LocalEditPlan((Region(EDIT, _cells(model, "everywhere")),), None, sources[0])
    torch.testing.assert_close(
        sample_local_edit(model, everywhere, 1, CAMERAS, alone, torch.Generator().manual_seed(5)).latents[0], _free(model, EDIT),
        atol=1e-4, rtol=1e-4,
    )  # fmt: skip


def test_where_grown_regions_meet_each_cell_goes_to_the_component_it_shows() -> None:
    masks = np.zeros((2, 4, 16, 16), bool)
    masks[0, :, :, :8] = True  # the left half
    masks[1, :, :, 8:] = True  # the right half
    config = SampleConfig(local_edit=True, regional_prompts=True, local_edit_grow=2)
    plan = plan_local_edit("a photo of <asset0> in red and <asset1> in blue", TOKENS, masks, config, 16)
    grown = torch.stack([region.cells for region in plan.regions])
    assert grown[:, 0, 0, 0, 6:10].all()  # both grown regions reach across the seam
    weights = plan.weights()[:, 0, 0, 0]  # (R, w) along one row
    assert torch.equal(weights[0, :8], torch.ones(8)) and torch.equal(weights[1, 8:], torch.ones(8))
    assert not weights[0, 8:].any() and not weights[1, :8].any()
