"""MVDream (multi-view diffusion) on diffusers: model bundle, attention, recorder, sampler, conversion.

The settings (`settings.py`, `architecture.py`) are plain pydantic; everything else imports torch when first used.
"""

from dreamedit3d_core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "attention": ("CrossAttnProcessor", "MultiViewAttnProcessor", "attach_multiview_processors"),
        "architecture": ("MultiViewDiffusionConfig",),
        "convert": ("convert_mvdream_checkpoint",),
        "model": ("MultiViewDiffusion",),
        "recorder": ("CrossAttentionRecorder",),
        "sampling": ("SampleOutput", "SamplingCancelled", "sample_views"),
        "settings": ("AttentionBackend", "EditConfig", "ModelConfig", "PerformanceConfig", "SampleConfig"),
        "vocabulary": ("build_word_tokenizer",),
    },
)
