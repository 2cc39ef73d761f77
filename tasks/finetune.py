"""Stage `finetune` (phase 2): the multi-view model fine-tuned on the asset with its learned tokens.

Resumable inside the stage: checkpoints go to the store's scratch folder for this artifact key every
`checkpoint_every` steps, and a killed run continues from the last one (the ledger's details say from
which step). The scratch folder is removed once the fine-tuned model is committed.

The class samples for prior preservation depend on the base model, the cameras and the prior settings, not
on the asset: they are a shared artifact (`StageInputs.shared`, stage "prior"), drawn by the first asset of
a library and read by every other.
"""

from __future__ import annotations

import hashlib
import sys

import numpy as np
import torch

from dreamedit3d_core.personalize import finetune_model, load_token_embeddings, prepare_training_data, prior_latents_for
from dreamedit3d_core.personalize.config import FinetuneConfig
from dreamedit3d_core.personalize.data import TrainingData, attribute_phrases
from tasks.artifacts import (
    CAMERAS,
    COMPONENTS,
    FINETUNE_ATTENTION_ISOLATION,
    FINETUNE_ATTENTION_PREVIEW,
    FINETUNE_LOG,
    FINETUNED_MODEL,
    MASKS,
    RENDERS,
    TOKEN_EMBEDDINGS,
)
from tasks.models import base_model, base_model_digest
from tasks.progress import progress
from tasks.running import StageInputs, StageOutputs

PRIOR_SETTINGS = ("prior_prompt", "prior_images", "prior_sample_steps", "prior_guidance_scale", "prior_negative_prompt", "seed")


def finetune(inputs: StageInputs, outputs: StageOutputs) -> dict:
    components = inputs.load(COMPONENTS)
    tokens = components["token"]
    config = inputs.settings("finetune")
    model, model_was = base_model(inputs.settings("model"))
    load_token_embeddings(inputs.load(TOKEN_EMBEDDINGS), model, tokens)
    attributes = attribute_phrases(components["colour"])
    data = prepare_training_data(
        model, inputs.load(RENDERS).rgb_white, inputs.load(MASKS), inputs.load(CAMERAS).mvdream_vectors(), attributes
    )
    prior = shared_prior(inputs, model, data, config) if config.prior_preservation else None
    with progress("finetune") as on_step:
        result = finetune_model(
            model, data, tokens, config, checkpoint_dir=inputs.scratch_dir(), on_step=on_step, prior_latents=prior
        )
    outputs.save(FINETUNED_MODEL, result.model.save_pretrained)
    outputs.save(FINETUNE_LOG, result.log)
    outputs.save(FINETUNE_ATTENTION_ISOLATION, result.isolation_before + result.isolation_after)
    outputs.save(FINETUNE_ATTENTION_PREVIEW, result.attention_preview)
    return {
        "tokens": list(tokens),
        "base_model": model_was,  # loaded by this process now, or reused from an earlier stage
        "resumed_from_step": result.resumed_from_step,
        "trained_parameters": len(result.trained_parameters),
        # how the model must be prompted: each token with these words (attribute-aware training), or bare
        "attribute_words": dict(zip(tokens, attributes, strict=True)) if config.attribute_words else {},
        "probe_before": result.probe_before,
        "probe_after": result.probe_after,
    }


def shared_prior(inputs: StageInputs, model: object, data: TrainingData, config: FinetuneConfig) -> torch.Tensor:
    """The class samples every asset fine-tuned with these settings shares: drawn once (by the first asset)
    and read from the store by every other."""
    settings = {name: getattr(config, name) for name in PRIOR_SETTINGS}
    cameras = np.ascontiguousarray(data.cameras.cpu().numpy())
    digests = {
        "base_model": base_model_digest(inputs.settings("model")),
        "cameras": hashlib.sha256(cameras.tobytes() + str(cameras.shape).encode()).hexdigest(),
    }
    def draw() -> dict[str, np.ndarray]:
        sys.stderr.write(
            f"finetune: drawing {config.prior_images} class samples of the base model for prior preservation "
            f"({config.prior_sample_steps} steps each; once: every later asset with these settings reads them)\n"
        )
        return {"latents": prior_latents_for(model, data.cameras, config).numpy()}  # type: ignore[arg-type]

    arrays = inputs.shared("prior", inputs.stage.code_version, settings, digests, draw)
    return torch.from_numpy(arrays["latents"])

