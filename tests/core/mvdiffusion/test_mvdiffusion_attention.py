"""Multi-view self-attention and per-view cross-attention, on single layers and in the tiny UNet."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor, AttnProcessor2_0

from dreamedit3d_core.geometry.cameras import mvdream_orbit
from dreamedit3d_core.mvdiffusion import (
    CrossAttnProcessor,
    MultiViewAttnProcessor,
    MultiViewDiffusion,
    attach_multiview_processors,
)
from dreamedit3d_core.mvdiffusion.attention import xformers_available


def _attention(cross_dim: int | None = None) -> Attention:
    torch.manual_seed(0)
    return Attention(query_dim=32, cross_attention_dim=cross_dim, heads=2, dim_head=16).eval()


def _tokens(batch: int, n: int = 10, c: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, n, c, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def test_one_view_equals_stock_processor() -> None:
    attn, x = _attention(), _tokens(3)
    expected = AttnProcessor2_0()(attn, x)
    assert torch.allclose(MultiViewAttnProcessor(1)(attn, x), expected, atol=1e-6)


@torch.no_grad()
def test_four_views_attend_to_each_other_but_not_to_other_objects() -> None:
    attn, x = _attention(), _tokens(8)  # 2 objects x 4 views
    processor = MultiViewAttnProcessor(4)
    out = processor(attn, x)
    grouped = AttnProcessor2_0()(attn, x.reshape(2, 40, 32)).reshape(8, 10, 32)
    assert torch.allclose(out, grouped, atol=1e-6)

    changed = x.clone()
    changed[2] += 1.0  # object 0, view 2
    out_changed = processor(attn, changed)
    for view in (0, 1, 3):
        assert not torch.allclose(out_changed[view], out[view], atol=1e-4), f"view {view} ignored view 2"
    assert torch.equal(out_changed[4:], out[4:]), "object 1 must not see object 0"


def test_batch_must_be_whole_objects() -> None:
    with pytest.raises(ValueError, match="4-view objects"):
        MultiViewAttnProcessor(4)(_attention(), _tokens(6))


@torch.no_grad()
def test_cross_attention_stays_per_view() -> None:
    attn = _attention(cross_dim=24)
    x, context = _tokens(4), torch.randn(4, 7, 24, generator=torch.Generator().manual_seed(2))
    processor = CrossAttnProcessor("layer")
    out = processor(attn, x, context)
    assert torch.allclose(out, AttnProcessor2_0()(attn, x, context), atol=1e-6)
    changed = x.clone()
    changed[2] += 1.0
    out_changed = processor(attn, changed, context)
    assert torch.equal(out_changed[[0, 1, 3]], out[[0, 1, 3]])
    assert not torch.allclose(out_changed[2], out[2], atol=1e-4)


def _unet_inputs(model: MultiViewDiffusion) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    latents = torch.randn(4, 4, 16, 16, generator=g)
    embeds = torch.randn(4, 77, 32, generator=g)
    cameras = torch.from_numpy(mvdream_orbit().mvdream_vectors())
    return latents, embeds, cameras


@torch.no_grad()
def test_unet_views_see_each_other_only_with_multiview_processors() -> None:
    model = MultiViewDiffusion.build_tiny(0)
    latents, embeds, cameras = _unet_inputs(model)
    changed = latents.clone()
    changed[0] += 0.5

    before = model.noise_prediction(latents, 500, embeds, cameras)
    after = model.noise_prediction(changed, 500, embeds, cameras)
    assert all(not torch.allclose(after[v], before[v], atol=1e-5) for v in (1, 2, 3))

    model.unet.set_attn_processor(AttnProcessor2_0())  # plain SD: every view on its own
    before = model.noise_prediction(latents, 500, embeds, cameras)
    after = model.noise_prediction(changed, 500, embeds, cameras)
    assert torch.allclose(after[1:], before[1:], atol=1e-6)


@torch.no_grad()
def test_cameras_change_the_prediction() -> None:
    model = MultiViewDiffusion.build_tiny(0)
    latents, embeds, cameras = _unet_inputs(model)
    other = torch.from_numpy(mvdream_orbit(elevation_deg=30.0, azimuth_start_deg=90.0).mvdream_vectors())
    a = model.noise_prediction(latents, 500, embeds, cameras)
    b = model.noise_prediction(latents, 500, embeds, other)
    assert not torch.allclose(a, b, atol=1e-4)


@torch.no_grad()
def test_stock_and_sdpa_backends_agree() -> None:
    model = MultiViewDiffusion.build_tiny(0)
    latents, embeds, cameras = _unet_inputs(model)
    sdpa = model.noise_prediction(latents, 500, embeds, cameras)
    model.set_attention_backend("stock")
    assert all(
        isinstance(p, (MultiViewAttnProcessor, CrossAttnProcessor)) and p.backend == "stock"
        for p in model.unet.attn_processors.values()
    )
    stock = model.noise_prediction(latents, 500, embeds, cameras)
    assert torch.allclose(sdpa, stock, atol=1e-5)


def test_unknown_or_missing_backend_is_refused() -> None:
    model = MultiViewDiffusion.build_tiny(0)
    with pytest.raises(ValueError, match="unknown attention backend"):
        attach_multiview_processors(model.unet, 4, "flash3")  # type: ignore[arg-type]
    if not xformers_available():
        with pytest.raises(ValueError, match="xformers is not installed"):
            model.set_attention_backend("xformers")


def test_stock_processor_is_diffusers_plain_one() -> None:
    attn, x = _attention(), _tokens(4)
    with torch.no_grad():
        ours = MultiViewAttnProcessor(4, "stock")(attn, x)
        plain = AttnProcessor()(attn, x.reshape(1, 40, 32)).reshape(4, 10, 32)
    assert torch.allclose(ours, plain, atol=1e-6)
