"""Multi-view DDIM sampling on the tiny preset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamedit3d_core.geometry.cameras import mvdream_orbit
from dreamedit3d_core.mvdiffusion import (
    MultiViewDiffusion,
    SampleConfig,
    SamplingCancelled,
    sample_views,
)

CAMERAS = torch.from_numpy(mvdream_orbit().mvdream_vectors())
FAST = SampleConfig(steps=2)


@pytest.fixture(scope="module")
def model() -> MultiViewDiffusion:
    return MultiViewDiffusion.build_tiny(0)


def _sample(model: MultiViewDiffusion, prompts: list[str], seed: int, config: SampleConfig = FAST):
    return sample_views(model, prompts, CAMERAS, config, torch.Generator().manual_seed(seed))


def test_shapes_and_types(model: MultiViewDiffusion) -> None:
    out = _sample(model, ["a photo of a duck", "a red hat", "a blue chair"], seed=0)
    assert out.views.shape == (3, 4, 64, 64, 3) and out.views.dtype == np.uint8
    assert out.latents.shape == (3, 4, 4, 16, 16) and out.latents.dtype == torch.float32
    assert out.views.std() > 1.0  # not a constant image


def test_fixed_generator_is_reproducible_and_seeds_differ(model: MultiViewDiffusion) -> None:
    a = _sample(model, ["a photo of a duck"], seed=7)
    b = _sample(model, ["a photo of a duck"], seed=7)
    c = _sample(model, ["a photo of a duck"], seed=8)
    assert np.array_equal(a.views, b.views) and torch.equal(a.latents, b.latents)
    assert not np.array_equal(a.views, c.views)


def test_eta_noise_comes_from_the_generator(model: MultiViewDiffusion) -> None:
    config = SampleConfig(steps=2, eta=1.0)
    a, b = _sample(model, ["a cat"], 3, config), _sample(model, ["a cat"], 3, config)
    deterministic = _sample(model, ["a cat"], 3)
    assert torch.equal(a.latents, b.latents)
    assert not torch.allclose(a.latents, deterministic.latents)


def test_prompts_in_one_batch_do_not_mix(model: MultiViewDiffusion) -> None:
    together = _sample(model, ["a photo of a duck", "a green car"], seed=1)
    alone = _sample(model, ["a photo of a duck"], seed=1)  # same first noise block from the same generator
    assert torch.allclose(together.latents[0], alone.latents[0], atol=1e-4)
    assert not torch.allclose(together.latents[0], together.latents[1], atol=1e-2)


def test_guidance_uses_prompt_and_negative_prompt(model: MultiViewDiffusion) -> None:
    base = _sample(model, ["a photo of a duck"], seed=2, config=SampleConfig(steps=2, guidance_scale=7.5))
    other_prompt = _sample(model, ["a photo of a red car"], seed=2, config=SampleConfig(steps=2, guidance_scale=7.5))
    other_negative = _sample(
        model, ["a photo of a duck"], seed=2, config=SampleConfig(steps=2, guidance_scale=7.5, negative_prompt="blue")
    )
    assert not torch.allclose(base.latents, other_prompt.latents, atol=1e-4)
    assert not torch.allclose(base.latents, other_negative.latents, atol=1e-4)


def test_progress_and_cancel(model: MultiViewDiffusion) -> None:
    seen: list[tuple[int, int]] = []
    _sample_with = dict(config=SampleConfig(steps=4), generator=torch.Generator().manual_seed(0))
    sample_views(model, ["a duck"], CAMERAS, on_step=lambda s, n: seen.append((s, n)), **_sample_with)
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]

    calls = []

    def cancel_on_third_check() -> bool:
        calls.append(1)
        return len(calls) == 3

    steps: list[int] = []
    with pytest.raises(SamplingCancelled, match="before step 3 of 4"):
        sample_views(
            model, ["a duck"], CAMERAS, SampleConfig(steps=4), torch.Generator().manual_seed(0),
            on_step=lambda s, n: steps.append(s), should_cancel=cancel_on_third_check,
        )  # fmt: skip
    assert steps == [1, 2]


def test_bad_input_is_refused(model: MultiViewDiffusion) -> None:
    with pytest.raises(ValueError, match=r"cameras must have shape \(4, 16\)"):
        sample_views(model, ["a duck"], CAMERAS[:3], FAST, torch.Generator())
    with pytest.raises(ValueError, match="prompts"):
        sample_views(model, "a duck", CAMERAS, FAST, torch.Generator())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="steps"):
        SampleConfig(steps=0)
