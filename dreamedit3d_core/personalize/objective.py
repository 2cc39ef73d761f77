"""The personalisation objective both phases minimise.

One step = one object: all V views with their cameras through the multi-view UNet, one shared timestep
(as at sampling time), a prompt naming a random subset of the components ("a photo of <asset0> and
<asset2>"). Loss = masked diffusion loss on the union of the chosen masks at latent resolution
+ lambda x attention alignment: each chosen token's cross-attention map (heads, and the down and up blocks
at the chosen resolution, averaged), divided by its max, against the token's mask (MSE).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dreamedit3d_core.mvdiffusion import CrossAttentionRecorder, MultiViewDiffusion
from dreamedit3d_core.personalize.config import MaskedMean, MixedPrecision, TrainingConfig
from dreamedit3d_core.personalize.data import TrainingData


@dataclass(frozen=True)
class Batch:
    """What one step trains on; every random draw of the step lives here."""

    components: list[int]  # chosen component indices, ascending
    prompt: str
    flipped: bool
    latents: torch.Tensor  # (V, C, h, w) a draw from the VAE posterior
    noise: torch.Tensor  # (V, C, h, w)
    timesteps: torch.Tensor  # (V,) long, one timestep shared by the views


def build_prompt(config: TrainingConfig, tokens: Sequence[str], attributes: Sequence[str] = ()) -> str:
    """"a photo of <asset0> and <asset2>"; with `config.attribute_words`, each token followed by its words
    (`attributes`, one per token, e.g. "in brown"): "a photo of <asset0> in brown and <asset2> in orange"."""
    if config.attribute_words and attributes:
        tokens = [f"{token} {words}".strip() for token, words in zip(tokens, attributes, strict=True)]
    return config.template.format(config.joiner.join(tokens))


def attention_resolutions(model: MultiViewDiffusion, blocks: Sequence[str] = ("down", "up")) -> list[int]:
    """Sides of the UNet's cross-attention maps in `blocks` (the latent size halves at each level)."""
    size, levels = model.config.latent_size, model.config.attention_levels
    sides = {size // 2**level for level, has in enumerate(levels) if has} if {"down", "up"} & set(blocks) else set()
    if "mid" in blocks:
        sides.add(size // 2 ** (len(levels) - 1))
    return sorted(sides, reverse=True)


def check_training_setup(
    model: MultiViewDiffusion, data: TrainingData, tokens: Sequence[str], config: TrainingConfig
) -> None:
    if data.num_components != len(tokens):
        raise ValueError(f"the data has {data.num_components} component masks but {len(tokens)} tokens were given")
    if data.num_views != model.num_views:
        raise ValueError(f"the data has {data.num_views} views, the model makes {model.num_views}")
    if tuple(data.images.shape[-2:]) != (model.config.image_size,) * 2:
        raise ValueError(
            f"the data is {data.images.shape[-1]} px, the model {model.config.image_size} px: "
            "make it with prepare_training_data(model, ...)"
        )
    resolutions = attention_resolutions(model, config.attention_blocks)
    if config.attention_resolution not in resolutions:
        raise ValueError(
            f"attention_resolution {config.attention_resolution} is not one the UNet has; "
            f"its cross-attention maps in blocks {config.attention_blocks} are {resolutions} wide"
        )
    if config.probe.timesteps and max(config.probe.timesteps) >= model.scheduler.config.num_train_timesteps:
        raise ValueError(
            f"probe timesteps {config.probe.timesteps} must be below {model.scheduler.config.num_train_timesteps}"
        )


def check_float32(*modules: torch.nn.Module) -> None:
    """Trained weights stay float32: steps of 2e-6 vanish in bf16 weights. Use mixed_precision for speed."""
    for module in modules:
        if module.dtype != torch.float32:
            raise ValueError(
                f"{type(module).__name__} has {module.dtype} weights; training needs float32 weights "
                "(load the model in float32 and set mixed_precision='bf16' for bf16 compute)"
            )


def autocast(device: torch.device, mode: MixedPrecision) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast on CUDA for 'auto' and 'bf16' (also on the CPU for 'bf16'); a no-op otherwise."""
    enabled = mode == "bf16" or (mode == "auto" and device.type == "cuda")
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def sample_batch(
    variants: Sequence[TrainingData],
    tokens: Sequence[str],
    config: TrainingConfig,
    generator: torch.Generator,
    num_train_timesteps: int,
) -> tuple[Batch, TrainingData]:
    """Draw one step's components, orientation, posterior sample, timestep and noise, in a fixed order."""
    count = len(tokens)
    if config.subset == "all":
        components = list(range(count))
    else:
        size = int(torch.randint(1, count + 1, (1,), generator=generator))
        components = sorted(torch.randperm(count, generator=generator)[:size].tolist())
    flipped = False
    if len(variants) > 1:
        flipped = bool(torch.rand((), generator=generator) < config.flip_probability)
    data = variants[1] if flipped else variants[0]
    latents = data.sample_latents(generator)
    timestep = torch.randint(0, num_train_timesteps, (1,), generator=generator)
    noise = torch.randn(latents.shape, generator=generator, device=generator.device).to(latents.device)
    batch = Batch(
        components=components,
        prompt=build_prompt(config, [tokens[k] for k in components], [data.attributes[k] for k in components] if data.attributes else ()),
        flipped=flipped,
        latents=latents,
        noise=noise,
        timesteps=timestep.expand(data.num_views).to(latents.device),  # (1,) -> (V,)
    )
    return batch, data


def token_positions(model: MultiViewDiffusion, prompt: str, ids: Sequence[int]) -> list[int]:
    """Position of each token id in the tokenized prompt; an error when the prompt was cut before it."""
    row = model.tokenize([prompt])[0].tolist()
    positions = []
    for token_id in ids:
        if token_id not in row:
            raise ValueError(
                f"token {model.tokenizer.convert_ids_to_tokens(token_id)} is not in the tokenized prompt "
                f"{prompt!r} (cut at {len(row)} tokens?)"
            )
        positions.append(row.index(token_id))
    return positions


def diffusion_target(
    model: MultiViewDiffusion, latents: torch.Tensor, noise: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """What the UNet is trained to predict, as the scheduler's prediction_type says."""
    prediction_type = model.scheduler.config.prediction_type
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        return model.scheduler.get_velocity(latents, noise, t)
    if prediction_type == "sample":
        return latents
    raise ValueError(f"unsupported scheduler prediction_type {prediction_type!r}")


def loss_weight(masks: torch.Tensor, components: Sequence[int], background_weight: float = 0.0) -> torch.Tensor:
    """(V, h, w) weight of the diffusion loss from component masks (K, V, h, w): the union of the chosen
    components, and `background_weight` on the pixels outside every component (the ground the asset is on)."""
    weight = masks[list(components)].amax(dim=0)
    if background_weight > 0:
        weight = torch.maximum(weight, background_weight * (1 - masks.amax(dim=0)))
    return weight


def masked_mse(
    prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, mean: MaskedMean = "image"
) -> torch.Tensor:
    """Squared error of prediction/target (N, C, h, w) under a mask (N, h, w) in [0, 1].

    "image": Break-a-Scene's form, mean over every pixel of (mask x prediction - mask x target)^2, the
    scale the reference attention weight 1e-2 was set against; "mask": mean over the masked pixels only.
    """
    error = prediction.float() - target.float()
    if mean == "image":
        return (error * weight[:, None]).square().mean()
    return (error.square().mean(dim=1) * weight).sum() / weight.sum().clamp_min(1e-8)


def alignment_loss(maps: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """MSE between maps (V, T, r, r), each divided by its max, and masks (V, T, r, r)."""
    peak = maps.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    return F.mse_loss(maps.float() / peak.float(), targets.float())


@dataclass
class StepLosses:
    loss: torch.Tensor
    diffusion: torch.Tensor
    attention: torch.Tensor
    prior: torch.Tensor


def personalization_losses(
    model: MultiViewDiffusion,
    data: TrainingData,
    batch: Batch,
    ids: Sequence[int],
    config: TrainingConfig,
    recorder: CrossAttentionRecorder,
    prior: tuple[torch.Tensor, torch.Tensor, str, float] | None = None,
) -> StepLosses:
    """Losses of one step, with gradients. The recorder must be attached (and stay so until backward).

    `prior` = (class latents (V, C, h, w), their noise, the class prompt, weight): a second object in the
    same batch with the plain diffusion loss (prior preservation).
    """
    views = data.num_views
    chosen = [ids[k] for k in batch.components]
    recorder.select(token_positions(model, batch.prompt, chosen))
    latents, noise, t, cameras = batch.latents, batch.noise, batch.timesteps, data.cameras
    if prior is None:
        embeds = model.encode_prompts([batch.prompt]).expand(views, -1, -1)  # (1, L, D) -> (V, L, D)
    else:
        prior_latents, prior_noise, prior_prompt, _ = prior
        both = model.encode_prompts([batch.prompt, prior_prompt])  # (2, L, D)
        embeds = both.repeat_interleave(views, dim=0)  # (2, L, D) -> (2V, L, D)
        latents = torch.cat([latents, prior_latents])  # (2V, C, h, w)
        noise = torch.cat([noise, prior_noise])
        t, cameras = t.repeat(2), cameras.repeat(2, 1)  # (V,) -> (2V,), (V, 16) -> (2V, 16)
    noisy = model.scheduler.add_noise(latents, noise, t)
    prediction = model.noise_prediction(noisy, t, embeds, cameras).float()
    target = diffusion_target(model, latents, noise, t).float()

    weight = loss_weight(data.masks_at(model.config.latent_size), batch.components, config.background_weight)
    diffusion = masked_mse(prediction[:views], target[:views], weight, config.masked_mean)
    maps = recorder.maps()[:views]  # (V, T, r, r)
    masks = data.masks_at(config.attention_resolution)[batch.components].transpose(0, 1)  # (T, V, r, r) -> (V, T, r, r)
    attention = alignment_loss(maps, masks)
    loss = diffusion + config.attention_weight * attention
    prior_loss = torch.zeros((), device=loss.device)
    if prior is not None:
        prior_loss = F.mse_loss(prediction[views:], target[views:])
        loss = loss + prior[3] * prior_loss
    return StepLosses(loss=loss, diffusion=diffusion, attention=attention, prior=prior_loss)
