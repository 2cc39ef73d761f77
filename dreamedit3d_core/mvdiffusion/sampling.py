"""Multi-view DDIM sampling with classifier-free guidance, as MVDream's sampler does it.

Each prompt gives one object of V views; all prompts run in one batch. The unconditional branch uses the
negative prompt and the same cameras as the conditional one. Local edits (`local_edit.py`, not the paper's
recipe) change the views only inside the edited components' regions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler
from diffusers.utils.torch_utils import randn_tensor

from dreamedit3d_core.mvdiffusion.local_edit import LocalEditPlan, plan_local_edit
from dreamedit3d_core.mvdiffusion.model import MultiViewDiffusion
from dreamedit3d_core.mvdiffusion.prompts import describe_kept
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
) -> SampleOutput:
    """E prompts x V views, drawn freely (the paper's sampler). `on_step(step, total)` after each step;
    `should_cancel()` before each step."""
    check_inputs(model, prompts, cameras)
    num_prompts, views, device = len(prompts), model.num_views, model.device
    scheduler = DDIMScheduler.from_config(model.scheduler.config)
    scheduler.set_timesteps(config.steps, device=device)
    texts = [p + config.prompt_suffix for p in prompts]
    embeds = model.encode_prompts([config.negative_prompt] + texts)  # (1 + E, L, D)
    negative = embeds[:1].expand(num_prompts * views, -1, -1)  # (E*V, L, D)
    positive = embeds[1:].repeat_interleave(views, dim=0)  # (E, L, D) -> (E*V, L, D)
    prompt_embeds = torch.cat([negative, positive])  # (2*E*V, L, D)
    camera_batch = cameras.to(device=device, dtype=torch.float32).repeat(2 * num_prompts, 1)  # (2*E*V, 16)
    latents = _initial_noise(model, num_prompts, generator) * scheduler.init_noise_sigma  # (E*V, C, h, w)

    total = len(scheduler.timesteps)
    for step, t in enumerate(scheduler.timesteps):
        if should_cancel is not None and should_cancel():
            raise SamplingCancelled(f"sampling cancelled before step {step + 1} of {total}")
        model_input = scheduler.scale_model_input(torch.cat([latents, latents]), t)  # (2*E*V, C, h, w)
        noise_uncond, noise_text = model.noise_prediction(model_input, t, prompt_embeds, camera_batch).float().chunk(2)
        guided = noise_uncond + config.guidance_scale * (noise_text - noise_uncond)
        latents = scheduler.step(guided, t, latents, eta=config.eta, generator=generator).prev_sample
        if on_step is not None:
            on_step(step + 1, total)
    return _output(model, latents, num_prompts)


def _initial_noise(model: MultiViewDiffusion, objects: int, generator: torch.Generator) -> torch.Tensor:
    size = model.config.latent_size
    shape = (objects * model.num_views, model.config.latent_channels, size, size)
    return randn_tensor(shape, generator=generator, device=generator.device, dtype=torch.float32).to(model.device)


def _output(model: MultiViewDiffusion, latents: torch.Tensor, objects: int, cells: torch.Tensor | None = None) -> SampleOutput:
    """Decoded views of `objects` x V latents (objects*V, C, h, w); `cells` (V, 1, h, w): the edit region."""
    images = model.decode_latents(latents)  # (E*V, 3, H, W)
    pixels = images_to_uint8(images)  # (E*V, H, W, 3)
    views = model.num_views
    masks = None
    if cells is not None:
        masks = np.broadcast_to(cells[:, 0].bool().cpu().numpy(), (objects, *cells[:, 0].shape)).copy()  # (E, V, h, w)
    return SampleOutput(
        views=pixels.reshape(objects, views, *pixels.shape[1:]),  # (E*V, H, W, 3) -> (E, V, H, W, 3)
        latents=latents.float().cpu().reshape(objects, views, *latents.shape[1:]),  # -> (E, V, C, h, w)
        edit_masks=masks,
    )


def _alpha_before(scheduler: DDIMScheduler, t: torch.Tensor) -> torch.Tensor:
    """alpha_bar of the timestep a DDIM step from `t` lands on (as `DDIMScheduler.step` computes it); after the
    last step 1: what the sampler returns is taken as the clean image."""
    previous = int(t) - scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    return scheduler.alphas_cumprod[previous] if previous >= 0 else torch.tensor(1.0)


@torch.no_grad()
def sample_local_edit(
    model: MultiViewDiffusion,
    plan: LocalEditPlan,
    samples: int,
    cameras: torch.Tensor,
    config: SampleConfig,
    generator: torch.Generator,
    on_step: Callable[[int, int], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> SampleOutput:
    """`samples` x V views of one edit that may change the views only inside `plan`'s regions (`local_edit.py`).

    `config.region_context` "object": one edit trajectory per sample, its prediction in each region from that
    region's prompt (guided per region); after every step the latents outside every region are the known
    region's: a trajectory of the plain prompt from the same noise, or the source's latents noised to the step.
    "alone": each region is drawn on a trajectory of its own over the empty ground (white, noised to the step),
    seeing neither the kept parts nor the other regions, and put in place at the end."""
    prompts = [region.prompt for region in plan.regions]
    check_inputs(model, prompts, cameras)
    views, device, size = model.num_views, model.device, model.config.latent_size
    if plan.regions[0].cells.shape != (views, 1, size, size):
        raise ValueError(f"region cells must be ({views}, 1, {size}, {size}), got {tuple(plan.regions[0].cells.shape)}")
    scheduler = DDIMScheduler.from_config(model.scheduler.config)
    scheduler.set_timesteps(config.steps, device=device)
    regions, alone, plain = len(prompts), config.region_context == "alone", plan.plain_prompt is not None

    # embedding rows: 0 the negative prompt, 1..R the regions' prompts, R+1 the plain prompt; each trajectory
    # lists its rows, the unconditional one first
    texts = [p + config.prompt_suffix for p in prompts + ([plan.plain_prompt] if plain else [])]
    embeds = model.encode_prompts([config.negative_prompt] + texts)  # (1 + B, L, D)
    edits = [[0, 1 + r] for r in range(regions)] if alone else [[0, *range(1, 1 + regions)]]
    trajectories = edits + ([[0, 1 + regions]] if plain else [])
    rows = [index for trajectory in trajectories for index in trajectory]
    prompt_embeds = embeds[rows].repeat_interleave(samples * views, dim=0)  # (N, L, D) -> (N*S*V, L, D)
    camera_batch = cameras.to(device=device, dtype=torch.float32).repeat(len(rows) * samples, 1)  # (N*S*V, 16)
    weights = plan.weights().to(device).repeat(1, samples, 1, 1, 1)  # (R, V, 1, h, w) -> (R, S*V, 1, h, w)
    cells = torch.stack([region.cells for region in plan.regions]).to(device).repeat(1, samples, 1, 1, 1)  # (R, S*V, 1, h, w)
    inside = plan.cells.to(device).repeat(samples, 1, 1, 1)  # (V, 1, h, w) -> (S*V, 1, h, w)

    noise = _initial_noise(model, samples, generator)  # (S*V, C, h, w)

    def noised(clean: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:  # with the edit's own noise
        return alpha.sqrt() * clean + (1 - alpha).sqrt() * noise

    source = ground = None
    if plan.source_latents is not None:
        source = plan.source_latents.to(device=device, dtype=torch.float32).repeat(samples, 1, 1, 1)  # (S*V, C, h, w)
    if alone:
        white = np.full((views, model.config.image_size, model.config.image_size, 3), 255, np.uint8)
        ground = source_latents(model, white).to(device).repeat(samples, 1, 1, 1)  # the empty ground (S*V, C, h, w)

    def keep(latents: list[torch.Tensor], alpha: torch.Tensor) -> None:
        """After a step (and at the start): every edit trajectory outside its region <- what is known there."""
        if alone:
            for r in range(regions):
                latents[r] = cells[r] * latents[r] + (1 - cells[r]) * noised(ground, alpha)
        else:
            outside = latents[-1] if plain else noised(source, alpha)
            latents[0] = inside * latents[0] + (1 - inside) * outside

    latents = [noise * scheduler.init_noise_sigma for _ in trajectories]
    if source is not None or alone:
        keep(latents, scheduler.alphas_cumprod[int(scheduler.timesteps[0])])
    total = len(scheduler.timesteps)
    for step, t in enumerate(scheduler.timesteps):
        if should_cancel is not None and should_cancel():
            raise SamplingCancelled(f"sampling cancelled before step {step + 1} of {total}")
        inputs = torch.cat([latents[k].repeat(len(rows_k), 1, 1, 1) for k, rows_k in enumerate(trajectories)])
        prediction = model.noise_prediction(scheduler.scale_model_input(inputs, t), t, prompt_embeds, camera_batch).float()
        guided, offset = [], 0
        for k, rows_k in enumerate(trajectories):
            branch = prediction[offset * samples * views : (offset + len(rows_k)) * samples * views]
            branch = branch.reshape(len(rows_k), *noise.shape)  # (rows, S*V, C, h, w)
            offset += len(rows_k)
            uncond, text = branch[0], branch[1:]
            if len(rows_k) > 2:  # one trajectory, several regions: each cell from its region's prompt
                text = (weights * text).sum(dim=0, keepdim=True)
            guided.append(uncond + config.guidance_scale * (text[0] - uncond))
        stepped = scheduler.step(torch.cat(guided), t, torch.cat(latents), eta=config.eta, generator=generator).prev_sample
        latents = list(stepped.chunk(len(trajectories)))
        keep(latents, _alpha_before(scheduler, t))
        if on_step is not None:
            on_step(step + 1, total)
    if alone:  # the regions, each where it belongs, in the known surroundings
        drawn = (weights * torch.stack(latents[:regions])).sum(dim=0)
        outside = latents[-1] if plain else source
        latents[0] = inside * drawn + (1 - inside) * outside
    return _output(model, latents[0], samples, plan.cells)


@torch.no_grad()
def source_latents(model: MultiViewDiffusion, rgb: np.ndarray) -> torch.Tensor:
    """The source's views (V, H, W, 3) uint8 on white, at the model's size, through its autoencoder: the mean
    latents (V, C, h, w), scaled as the UNet sees them."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 4 or rgb.shape[0] != model.num_views or rgb.shape[-1] != 3:
        raise ValueError(f"source views must be uint8 ({model.num_views}, H, W, 3), got {rgb.dtype} {tuple(rgb.shape)}")
    images = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (V, H, W, 3) -> (V, 3, H, W)
    size = model.config.image_size
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(-1, 1)
    posterior = model.vae.encode(images.to(device=model.vae.device, dtype=model.vae.dtype)).latent_dist
    return posterior.mean.float() * model.vae.config.scaling_factor


def sample_edit(
    model: MultiViewDiffusion,
    edit: EditConfig,
    cameras: np.ndarray,
    config: SampleConfig,
    *,
    component_masks: np.ndarray | None = None,
    tokens: Sequence[str] | None = None,
    initializer_words: Mapping[str, str] | None = None,
    attributes: Mapping[str, str] | None = None,
    source_views: np.ndarray | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> SampleOutput:
    """`edit.samples` samples of one edit prompt from the seed `edit.seed`, at MVDream cameras (V, 16).

    With `config.local_edit` the edit may change only its edited components: their masks (K, V, H, W) from the
    same cameras, named by `tokens` (one per component); regional prompts with initializer words need
    `initializer_words` (token -> word), and the source as the known region needs `source_views` (V, H, W, 3)
    uint8 on white (its renders). `attributes` (token -> "in green"): a model trained with attribute words is
    prompted as it was trained, each kept token with its words."""
    generator = torch.Generator(device="cpu").manual_seed(edit.seed)
    camera_tensor = torch.from_numpy(np.asarray(cameras, dtype=np.float32))  # (V, 16)
    if not config.local_edit:
        prompt = describe_kept(edit.prompt, attributes or {})
        return sample_views(model, [prompt] * edit.samples, camera_tensor, config, generator, on_step=on_step)
    if component_masks is None or tokens is None:
        raise ValueError("sample.local_edit needs the component masks and their tokens (the mask stage's artifacts)")
    if config.known_region == "source" and source_views is None:
        raise ValueError("sample.known_region 'source' needs the source's views (the render stage's renders)")
    latents = source_latents(model, source_views) if config.known_region == "source" else None
    plan = plan_local_edit(
        edit.prompt, tokens, component_masks, config, model.config.latent_size,
        initializer_words=initializer_words, attributes=attributes, source_latents=latents,
    )  # fmt: skip
    return sample_local_edit(model, plan, edit.samples, camera_tensor, config, generator, on_step=on_step)


def views_sheet(views: np.ndarray) -> np.ndarray:
    """(E, V, H, W, 3) sampled views -> one picture (E*H, V*W, 3): a row of views per sample."""
    views = np.asarray(views)
    return np.ascontiguousarray(views.transpose(0, 2, 1, 3, 4).reshape(views.shape[0] * views.shape[2], -1, 3))
