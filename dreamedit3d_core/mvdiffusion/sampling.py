"""Multi-view DDIM sampling with classifier-free guidance, as MVDream's sampler does it.

Each prompt gives one object of V views; all prompts run in one batch. The unconditional branch uses the
negative prompt and the same cameras as the conditional one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import DDIMScheduler
from diffusers.utils.torch_utils import randn_tensor

from dreamedit3d_core.mvdiffusion.local_edit import LocalEdit, edit_region
from dreamedit3d_core.mvdiffusion.model import MultiViewDiffusion
from dreamedit3d_core.mvdiffusion.prompts import plain_prompt
from dreamedit3d_core.mvdiffusion.settings import EditConfig, SampleConfig


class SamplingCancelled(RuntimeError):
    """Raised by `sample_views` when `should_cancel()` answers True."""


@dataclass(frozen=True)
class SampleOutput:
    views: np.ndarray  # (E, V, H, W, 3) uint8
    latents: torch.Tensor  # (E, V, C, h, w) float32, on the CPU
    edit_masks: np.ndarray | None = None  # (E, V, h, w) bool with edit regions: where the edit branch was kept


def images_to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8."""
    images = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round()
    return images.permute(0, 2, 3, 1).to(torch.uint8).cpu().numpy()


def check_inputs(model: MultiViewDiffusion, prompts: Sequence[str], cameras: torch.Tensor) -> None:
    if isinstance(prompts, str) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompts must be a non-empty list of strings")
    expected = (model.num_views, model.config.camera_dim)
    if tuple(cameras.shape) != expected:
        raise ValueError(f"cameras must have shape {expected} (one row per view), got {tuple(cameras.shape)}")
    if not torch.isfinite(cameras).all():
        raise ValueError("cameras contain NaN or infinite values")


@torch.no_grad()
def sample_views(
    model: MultiViewDiffusion,
    prompts: Sequence[str],
    cameras: torch.Tensor,
    config: SampleConfig,
    generator: torch.Generator,
    on_step: Callable[[int, int], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    edit_regions: np.ndarray | None = None,
) -> SampleOutput:
    """E prompts x V views. `on_step(step, total)` after each step; `should_cancel()` before each step.

    With `config.local_edit`, `edit_regions` (E, V, H, W) bool says where each prompt may change the views
    (`local_edit.edit_region`); everywhere else they are those of the prompt without its edit words.
    """
    check_inputs(model, prompts, cameras)
    num_prompts, views, device = len(prompts), model.num_views, model.device
    if config.local_edit != (edit_regions is not None):
        raise ValueError("edit_regions (one mask per prompt and view) go with local_edit, and only with it")
    if edit_regions is not None and tuple(np.shape(edit_regions)[:2]) != (num_prompts, views):
        raise ValueError(f"edit_regions must be ({num_prompts}, {views}, H, W), got shape {np.shape(edit_regions)}")
    scheduler = DDIMScheduler.from_config(model.scheduler.config)
    scheduler.set_timesteps(config.steps, device=device)
    local = None
    if edit_regions is not None:
        regions = torch.from_numpy(np.array(edit_regions, dtype=bool))  # a copy: broadcast views are read-only
        local = LocalEdit(regions, model.config.latent_size, config.local_edit_grow)
    objects = list(prompts) + ([plain_prompt(p) for p in prompts] if local else [])  # edits, then their plain

    texts = [p + config.prompt_suffix for p in objects]
    embeds = model.encode_prompts([config.negative_prompt] + texts)  # (1 + O, L, D)
    negative = embeds[:1].expand(len(objects) * views, -1, -1)  # (O*V, L, D)
    positive = embeds[1:].repeat_interleave(views, dim=0)  # (O, L, D) -> (O*V, L, D)
    prompt_embeds = torch.cat([negative, positive])  # (2*O*V, L, D)
    camera_batch = cameras.to(device=device, dtype=torch.float32).repeat(2 * len(objects), 1)  # (2*O*V, 16)

    size = model.config.latent_size
    shape = (num_prompts * views, model.config.latent_channels, size, size)
    generator_device = generator.device
    latents = randn_tensor(shape, generator=generator, device=generator_device, dtype=torch.float32).to(device)
    latents = latents * scheduler.init_noise_sigma
    if local is not None:
        latents = local.initial_latents(latents)  # (O*V, C, h, w)

    total = len(scheduler.timesteps)
    for step, t in enumerate(scheduler.timesteps):
        if should_cancel is not None and should_cancel():
            raise SamplingCancelled(f"sampling cancelled before step {step + 1} of {total}")
        model_input = scheduler.scale_model_input(torch.cat([latents, latents]), t)  # (2*O*V, C, h, w)
        noise = model.noise_prediction(model_input, t, prompt_embeds, camera_batch).float()
        noise_uncond, noise_text = noise.chunk(2)
        guided = noise_uncond + config.guidance_scale * (noise_text - noise_uncond)
        latents = scheduler.step(guided, t, latents, eta=config.eta, generator=generator).prev_sample
        if local is not None:
            latents = local.blend(latents)
        if on_step is not None:
            on_step(step + 1, total)

    latents = latents[: num_prompts * views]  # the edits (their plain branches were only the background)
    images = model.decode_latents(latents)  # (E*V, 3, H, W)
    pixels = images_to_uint8(images)  # (E*V, H, W, 3)
    masks = None
    if local is not None:
        masks = local.mask[:, 0].bool().cpu().numpy().reshape(num_prompts, views, size, size)
    return SampleOutput(
        views=pixels.reshape(num_prompts, views, *pixels.shape[1:]),  # (E*V, H, W, 3) -> (E, V, H, W, 3)
        latents=latents.float().cpu().reshape(num_prompts, views, *latents.shape[1:]),  # -> (E, V, C, h, w)
        edit_masks=masks,
    )


def sample_edit(
    model: MultiViewDiffusion,
    edit: EditConfig,
    cameras: np.ndarray,
    config: SampleConfig,
    *,
    component_masks: np.ndarray | None = None,
    tokens: Sequence[str] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> SampleOutput:
    """`edit.samples` samples of one edit prompt from the seed `edit.seed`, at MVDream cameras (V, 16).

    With `config.local_edit` the edit may change only its edited components: their masks (K, V, H, W) from the
    same cameras, named by `tokens` (one per component)."""
    regions = None
    if config.local_edit:
        if component_masks is None or tokens is None:
            raise ValueError("sample.local_edit needs the component masks and their tokens (the mask stage's artifacts)")
        region = edit_region(component_masks, tokens, edit.prompt)  # (V, H, W)
        regions = np.broadcast_to(region, (edit.samples, *region.shape))  # one per sample
    generator = torch.Generator(device="cpu").manual_seed(edit.seed)
    camera_tensor = torch.from_numpy(np.asarray(cameras, dtype=np.float32))  # (V, 16)
    return sample_views(
        model, [edit.prompt] * edit.samples, camera_tensor, config, generator, on_step=on_step, edit_regions=regions
    )


def views_sheet(views: np.ndarray) -> np.ndarray:
    """(E, V, H, W, 3) sampled views -> one picture (E*H, V*W, 3): a row of views per sample."""
    views = np.asarray(views)
    return np.ascontiguousarray(views.transpose(0, 2, 1, 3, 4).reshape(views.shape[0] * views.shape[2], -1, 3))
