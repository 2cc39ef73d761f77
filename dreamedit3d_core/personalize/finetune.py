"""Phase 2 (`finetune`): the multi-view UNet (and the text encoder) learn the asset with its tokens.

Same objective as phase 1, multi-view attention and cameras on. By default every UNet and text-encoder
weight trains except the token embedding table, so the learned tokens stay exactly as phase 1 left them
(`train_token_embeddings=True` trains the tokens' rows too; other rows are still put back). Low-memory
options: LoRA adapters (peft) merged into the weights at the end, 8-bit AdamW (bitsandbytes, CUDA),
bf16 autocast, gradient checkpointing.

With `checkpoint_dir`, the run saves a checkpoint every `checkpoint_every` steps (and when cancelled) and
a later call with the same model, data, tokens and settings continues from the last one; its result equals
an uninterrupted run's. The model is changed in place.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dreamedit3d_core.mvdiffusion import MultiViewDiffusion, SampleConfig, sample_views
from dreamedit3d_core.personalize.checkpoint import (
    Checkpoint,
    check_fingerprint,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from dreamedit3d_core.personalize.config import FinetuneConfig
from dreamedit3d_core.personalize.data import TrainingData, flip_views
from dreamedit3d_core.personalize.loop import PriorSet, StepCallback, train_steps
from dreamedit3d_core.personalize.objective import check_float32, check_training_setup
from dreamedit3d_core.personalize.probe import attention_preview, probe_attention
from dreamedit3d_core.personalize.tokens import FrozenRows, check_tokens, token_ids

logger = logging.getLogger(__name__)

UNET_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


@dataclass(frozen=True)
class FinetuneResult:
    model: MultiViewDiffusion  # the same object, fine-tuned (LoRA merged into its weights)
    log: list[dict[str, float]]  # step, loss, diffusion_loss, attention_loss, prior_loss, lr, seconds
    isolation_before: list[dict[str, object]]  # phase, token, view, attention_isolation, mask_area
    isolation_after: list[dict[str, object]]
    probe_before: dict[str, float]
    probe_after: dict[str, float]
    attention_maps: np.ndarray  # (V, K, r, r) float32 after training
    attention_preview: np.ndarray  # (H, W, 3) uint8
    resumed_from_step: int | None  # the checkpoint's step when the run continued one, else None
    trained_parameters: list[str]  # names ("unet.<name>", "text_encoder.<name>") of what trained


def check_optimizer(config: FinetuneConfig, device: torch.device) -> None:
    """Fail before any work when 8-bit Adam cannot run here."""
    if not config.use_8bit_adam:
        return
    if device.type != "cuda":
        raise ValueError(f"use_8bit_adam needs the model on a CUDA device (bitsandbytes), it is on {device.type}")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ValueError(
            "use_8bit_adam needs bitsandbytes, which is not installed: pip install bitsandbytes "
            "(the project's `gpu` extra), or turn use_8bit_adam off"
        )


def make_optimizer(
    parameters: Sequence[torch.nn.Parameter], config: FinetuneConfig, device: torch.device
) -> torch.optim.Optimizer:
    check_optimizer(config, device)
    lr = config.lora_lr if config.lora_rank is not None else config.lr
    options = {"lr": lr, "betas": config.betas, "eps": config.eps, "weight_decay": config.weight_decay}
    if not config.use_8bit_adam:
        return torch.optim.AdamW(parameters, **options)
    import bitsandbytes  # imported only here: installed only with the `gpu` extra

    return bitsandbytes.optim.AdamW8bit(parameters, **options)


def add_lora(module: torch.nn.Module, rank: int, targets: list[str], seed: int) -> None:
    """Inject LoRA adapters (only they train); their random init is seeded and leaves the global RNG alone."""
    from peft import LoraConfig, inject_adapter_in_model

    devices = [next(module.parameters()).device.index or 0] if next(module.parameters()).is_cuda else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=rank, target_modules=targets), module)


def merge_lora(module: torch.nn.Module) -> None:
    """Fold every adapter into its base layer and put the plain layer back (a standard module again)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name, layer in list(module.named_modules()):
        if isinstance(layer, BaseTunerLayer):
            layer.merge()
            parent_name, _, child = name.rpartition(".")
            parent = module.get_submodule(parent_name) if parent_name else module
            setattr(parent, child, layer.get_base_layer())
    if hasattr(module, "peft_config"):
        del module.peft_config


def select_trainable(model: MultiViewDiffusion, config: FinetuneConfig) -> dict[str, torch.nn.Parameter]:
    model.vae.requires_grad_(False)
    if config.lora_rank is not None:
        add_lora(model.unet, config.lora_rank, UNET_LORA_TARGETS, config.seed)
        if config.train_text_encoder:
            add_lora(model.text_encoder, config.lora_rank, TEXT_LORA_TARGETS, config.seed + 1)
        else:
            model.text_encoder.requires_grad_(False)
    else:
        model.unet.requires_grad_(config.unet_weights == "all")
        if config.unet_weights == "cross_attention_kv":  # the projections that read the text (Custom Diffusion)
            for name, parameter in model.unet.named_parameters():
                if ".attn2.to_k." in name or ".attn2.to_v." in name:
                    parameter.requires_grad_(True)
        model.text_encoder.requires_grad_(config.train_text_encoder)
        model.text_encoder.get_input_embeddings().weight.requires_grad_(config.train_token_embeddings)
    named = {f"unet.{n}": p for n, p in model.unet.named_parameters() if p.requires_grad}
    named.update({f"text_encoder.{n}": p for n, p in model.text_encoder.named_parameters() if p.requires_grad})
    return named


def _digest(*tensors: torch.Tensor) -> str:
    sha = hashlib.sha256()
    for tensor in tensors:
        sha.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()[:16]


def fingerprint(
    model: MultiViewDiffusion, data: TrainingData, tokens: Sequence[str], ids: Sequence[int], config: FinetuneConfig
) -> dict[str, Any]:
    """What must be the same for a resumed run to equal an uninterrupted one."""
    settings = config.model_dump(mode="json", exclude={"checkpoint_every"})
    rows = model.text_encoder.get_input_embeddings().weight[list(ids)]
    return {
        **{f"config.{key}": value for key, value in settings.items()},
        "tokens": list(tokens),
        "model": model.config.model_dump(mode="json"),
        "data": _digest(data.images, data.masks, data.cameras),
        "token_rows": _digest(rows),
    }


def prior_set(latents: torch.Tensor, config: FinetuneConfig, device: torch.device) -> PriorSet:
    """Class samples drawn beforehand (`prior_latents_for`), with the prompts they were drawn from."""
    prompts = [config.prior_prompts[i % len(config.prior_prompts)] for i in range(config.prior_images)]
    if len(latents) != len(prompts):
        raise ValueError(f"{len(latents)} prior samples given, the config asks for {len(prompts)}")
    return PriorSet(latents=latents.to(device), prompts=tuple(prompts), weight=config.prior_weight)


@torch.no_grad()
def prior_latents_for(model: MultiViewDiffusion, cameras: torch.Tensor, config: FinetuneConfig) -> torch.Tensor:
    """The base model's class samples for prior preservation, as latents (E, V, C, h, w) on the CPU: what
    `make_prior` draws before training, depending only on the base model, the cameras and the prior
    settings (no asset), so one set serves every asset fine-tuned with them."""
    prompts = [config.prior_prompts[i % len(config.prior_prompts)] for i in range(config.prior_images)]
    generator = torch.Generator().manual_seed(config.seed + 2)
    sample_config = SampleConfig(
        steps=config.prior_sample_steps,
        guidance_scale=config.prior_guidance_scale,
        negative_prompt=config.prior_negative_prompt,
    )
    return sample_views(model, prompts, cameras, sample_config, generator).latents.cpu()


def make_prior(
    model: MultiViewDiffusion, data: TrainingData, config: FinetuneConfig, checkpoint: Checkpoint | None
) -> PriorSet:
    """Class samples of the base model (before any fine-tuning step), as latents; a checkpoint keeps them."""
    if checkpoint is not None and "prior_latents" in checkpoint.extras:
        return prior_set(checkpoint.extras["prior_latents"], config, model.device)
    return prior_set(prior_latents_for(model, data.cameras, config), config, model.device)


def finetune_model(
    model: MultiViewDiffusion,
    data: TrainingData,
    tokens: Sequence[str],
    config: FinetuneConfig | None = None,
    *,
    checkpoint_dir: Path | None = None,
    on_step: StepCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
    prior_latents: torch.Tensor | None = None,
) -> FinetuneResult:
    """Fine-tune `model` (which already holds `tokens`, e.g. from load_token_embeddings) on `data`.

    `prior_latents`: the class samples for prior preservation made beforehand by `prior_latents_for` (they
    depend on the base model and the settings only, so every asset can share one set); drawn here when None."""
    config = config or FinetuneConfig()
    check_tokens(tokens)
    check_training_setup(model, data, tokens, config)
    ids = token_ids(model, tokens)
    device = model.device
    check_optimizer(config, device)
    check_float32(model.unet, *([model.text_encoder] if config.train_text_encoder else []))
    expected = fingerprint(model, data, tokens, ids, config)
    folder = latest_checkpoint(Path(checkpoint_dir)) if checkpoint_dir is not None else None
    checkpoint = load_checkpoint(folder) if folder is not None else None
    if checkpoint is not None:
        check_fingerprint(folder, checkpoint.fingerprint, expected)  # type: ignore[arg-type]
        if checkpoint.step > config.steps:
            raise ValueError(
                f"checkpoint {folder} is at step {checkpoint.step}, past the {config.steps} steps asked for"
            )
        logger.info("resuming fine-tuning from %s (step %d)", folder, checkpoint.step)

    if checkpoint is not None:
        records = checkpoint.records
        isolation_before, probe_before = records["isolation_before"], records["probe_before"]
    else:
        before = probe_attention(model, data, tokens, config)
        isolation_before, probe_before = before.rows("before_finetune"), before.losses()
    prior = None
    if config.prior_preservation:
        prior = make_prior(model, data, config, checkpoint) if prior_latents is None else prior_set(prior_latents, config, device)
    variants = [data, flip_views(model, data)] if config.augmentation == "flip" else [data]

    parameters = select_trainable(model, config)
    embedding = model.text_encoder.get_input_embeddings()
    rows = FrozenRows(embedding, ids) if config.train_token_embeddings else None
    optimizer = make_optimizer(list(parameters.values()), config, device)
    generator = torch.Generator().manual_seed(config.seed)
    log: list[dict[str, float]] = []
    start = 0
    if checkpoint is not None:
        if sorted(checkpoint.weights) != sorted(parameters):
            raise ValueError(f"checkpoint {folder} holds other parameters than this run trains")
        with torch.no_grad():
            for name, tensor in checkpoint.weights.items():
                parameters[name].copy_(tensor)
        optimizer.load_state_dict(checkpoint.optimizer)
        generator.set_state(checkpoint.extras["generator"])
        log = list(checkpoint.records["log"])
        start = checkpoint.step

    def save(step: int) -> None:
        if checkpoint_dir is None:
            return
        extras = {"generator": generator.get_state()}
        if prior is not None:
            extras["prior_latents"] = prior.latents
        records = {"log": log, "isolation_before": isolation_before, "probe_before": probe_before}
        state = Checkpoint(step, expected, dict(parameters), optimizer.state_dict(), extras, records)
        save_checkpoint(Path(checkpoint_dir), state)

    unet_checkpointing = model.unet.is_gradient_checkpointing
    text_checkpointing = model.text_encoder.is_activation_checkpointing
    if config.gradient_checkpointing:
        model.unet.enable_gradient_checkpointing()
        if config.train_text_encoder:
            model.text_encoder.activation_checkpointing_enable()
    model.unet.train()
    model.text_encoder.train()
    try:
        train_steps(
            model, variants, tokens, ids, config, list(parameters.values()), optimizer, generator, log,
            start_step=start, after_step=rows.restore if rows is not None else None, prior=prior,
            on_step=on_step, should_cancel=should_cancel, save=save, save_every=config.checkpoint_every,
        )  # fmt: skip
        if start < config.steps:
            save(config.steps)
    finally:
        optimizer.zero_grad(set_to_none=True)
        if not unet_checkpointing:
            model.unet.disable_gradient_checkpointing()
        if not text_checkpointing and model.text_encoder.is_activation_checkpointing:
            model.text_encoder.activation_checkpointing_disable()
        for module in (model.unet, model.text_encoder):
            module.requires_grad_(False)
            module.eval()

    trained = sorted(parameters)
    if config.lora_rank is not None:
        merge_lora(model.unet)
        merge_lora(model.text_encoder)
    after = probe_attention(model, data, tokens, config)
    return FinetuneResult(
        model=model,
        log=log,
        isolation_before=isolation_before,
        isolation_after=after.rows("after_finetune"),
        probe_before=probe_before,
        probe_after=after.losses(),
        attention_maps=after.maps,
        attention_preview=attention_preview(data, after),
        resumed_from_step=checkpoint.step if checkpoint is not None else None,
        trained_parameters=trained,
    )
