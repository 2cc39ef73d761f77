"""Personalisation of the multi-view diffusion model to one asset: `invert` (a token per component), `finetune`."""

from dreamedit3d_core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "config": ("FinetuneConfig", "InvertConfig", "ProbeConfig", "TrainingConfig"),
        "data": ("TrainingData", "flip_views", "mirror_cameras", "prepare_training_data"),
        "finetune": ("FinetuneResult", "finetune_model", "prior_latents_for"),
        "invert": ("InversionResult", "invert_tokens"),
        "loop": ("PersonalizationCancelled",),
        "probe": ("AttentionProbe", "attention_isolation", "attention_preview", "probe_attention"),
        "tokens": ("add_placeholder_tokens", "get_token_embeddings", "load_token_embeddings", "save_token_embeddings", "set_token_embeddings", "token_file_name"),
    },
)
