"""Personalisation of the multi-view diffusion model to one asset: `invert` (a token per component), `finetune`."""

from dreamedit3d_core.personalize.config import FinetuneConfig, InvertConfig, ProbeConfig, TrainingConfig
from dreamedit3d_core.personalize.data import TrainingData, flip_views, mirror_cameras, prepare_training_data
from dreamedit3d_core.personalize.finetune import FinetuneResult, finetune_model
from dreamedit3d_core.personalize.invert import InversionResult, invert_tokens
from dreamedit3d_core.personalize.loop import PersonalizationCancelled
from dreamedit3d_core.personalize.probe import AttentionProbe, attention_isolation, attention_preview, probe_attention
from dreamedit3d_core.personalize.tokens import (
    add_placeholder_tokens,
    get_token_embeddings,
    load_token_embeddings,
    save_token_embeddings,
    set_token_embeddings,
    token_file_name,
)

__all__ = [
    "AttentionProbe",
    "FinetuneConfig",
    "FinetuneResult",
    "InversionResult",
    "InvertConfig",
    "PersonalizationCancelled",
    "ProbeConfig",
    "TrainingConfig",
    "TrainingData",
    "add_placeholder_tokens",
    "attention_isolation",
    "attention_preview",
    "finetune_model",
    "flip_views",
    "get_token_embeddings",
    "invert_tokens",
    "load_token_embeddings",
    "mirror_cameras",
    "prepare_training_data",
    "probe_attention",
    "save_token_embeddings",
    "set_token_embeddings",
    "token_file_name",
]
