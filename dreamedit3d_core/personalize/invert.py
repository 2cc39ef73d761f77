"""Phase 1 (`invert`): one learned token per component, by multi-view textual inversion.

Only the new embedding rows learn: the UNet, the VAE and the rest of the text encoder are frozen, and every
other row of the embedding table is put back bit for bit after each optimizer step. The model is changed in
place (its tokenizer and text encoder gain the tokens); after a cancellation, throw it away.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from dreamedit3d_core.mvdiffusion import MultiViewDiffusion
from dreamedit3d_core.personalize.config import InvertConfig
from dreamedit3d_core.personalize.data import TrainingData, flip_views
from dreamedit3d_core.personalize.loop import StepCallback, train_steps
from dreamedit3d_core.personalize.objective import check_float32, check_training_setup
from dreamedit3d_core.personalize.probe import attention_preview, probe_attention
from dreamedit3d_core.personalize.tokens import (
    FrozenRows,
    add_placeholder_tokens,
    check_tokens,
    get_token_embeddings,
    token_ids,
)


@dataclass(frozen=True)
class InversionResult:
    embeddings: dict[str, torch.Tensor]  # token -> (1, dim) float32 on the CPU
    initializer_words: dict[str, str]  # token -> the word its embedding started from
    log: list[dict[str, float]]  # step, loss, diffusion_loss, attention_loss, prior_loss, lr, seconds
    isolation_before: list[dict[str, object]]  # phase, token, view, attention_isolation, mask_area
    isolation_after: list[dict[str, object]]
    probe_before: dict[str, float]  # diffusion_loss, attention_loss at the fixed probe timesteps and noise
    probe_after: dict[str, float]
    attention_maps: np.ndarray  # (V, K, r, r) float32, the probe's maps after training
    attention_preview: np.ndarray  # (H, W, 3) uint8: per token and view, its map over the view, its mask


def invert_tokens(
    model: MultiViewDiffusion,
    data: TrainingData,
    tokens: Sequence[str],
    initializer_words: Sequence[str],
    config: InvertConfig | None = None,
    *,
    on_step: StepCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> InversionResult:
    """Learn `tokens` (one per component of `data`, in order) from the views, masks and cameras."""
    config = config or InvertConfig()
    check_tokens(tokens)
    check_training_setup(model, data, tokens, config)
    check_float32(model.text_encoder)
    initializers = add_placeholder_tokens(model, tokens, initializer_words, config.class_word)
    ids = token_ids(model, tokens)
    before = probe_attention(model, data, tokens, config)
    variants = [data, flip_views(model, data)] if config.augmentation == "flip" else [data]

    embedding = model.text_encoder.get_input_embeddings()
    for module in (model.unet, model.vae, model.text_encoder):
        module.requires_grad_(False)
    embedding.weight.requires_grad_(True)
    rows = FrozenRows(embedding, ids)
    norms = embedding.weight[ids].detach().norm(dim=-1, keepdim=True)  # (T, 1): the initializer words' norms

    def after_step() -> None:
        rows.restore()
        if config.token_norm == "initializer":  # direction-only learning: back onto each row's sphere
            with torch.no_grad():
                learned = embedding.weight[ids]
                embedding.weight[ids] = learned / learned.norm(dim=-1, keepdim=True).clamp_min(1e-12) * norms
    optimizer = torch.optim.AdamW(
        [embedding.weight], lr=config.lr, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay
    )
    generator = torch.Generator().manual_seed(config.seed)
    checkpointing = model.unet.is_gradient_checkpointing
    if config.gradient_checkpointing:
        model.unet.enable_gradient_checkpointing()
    model.unet.train()
    model.text_encoder.train()
    log: list[dict[str, float]] = []
    try:
        train_steps(
            model, variants, tokens, ids, config, [embedding.weight], optimizer, generator, log,
            after_step=after_step, on_step=on_step, should_cancel=should_cancel,
        )  # fmt: skip
    finally:
        rows.restore()
        embedding.weight.requires_grad_(False)
        embedding.weight.grad = None
        if not checkpointing:
            model.unet.disable_gradient_checkpointing()
        model.unet.eval()
        model.text_encoder.eval()

    after = probe_attention(model, data, tokens, config)
    return InversionResult(
        embeddings=get_token_embeddings(model, tokens),
        initializer_words=initializers,
        log=log,
        isolation_before=before.rows("before_invert"),
        isolation_after=after.rows("after_invert"),
        probe_before=before.losses(),
        probe_after=after.losses(),
        attention_maps=after.maps,
        attention_preview=attention_preview(data, after),
    )
