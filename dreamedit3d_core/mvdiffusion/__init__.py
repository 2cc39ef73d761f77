"""MVDream (multi-view diffusion) on diffusers: model bundle, attention, recorder, sampler, conversion."""

from dreamedit3d_core.mvdiffusion.attention import (
    AttentionBackend,
    CrossAttnProcessor,
    MultiViewAttnProcessor,
    attach_multiview_processors,
)
from dreamedit3d_core.mvdiffusion.config import MultiViewDiffusionConfig
from dreamedit3d_core.mvdiffusion.convert import convert_mvdream_checkpoint
from dreamedit3d_core.mvdiffusion.model import MultiViewDiffusion, PerformanceConfig
from dreamedit3d_core.mvdiffusion.recorder import CrossAttentionRecorder
from dreamedit3d_core.mvdiffusion.sampling import EditConfig, SampleConfig, SampleOutput, SamplingCancelled, sample_views
from dreamedit3d_core.mvdiffusion.vocabulary import build_word_tokenizer

__all__ = [
    "AttentionBackend",
    "CrossAttentionRecorder",
    "CrossAttnProcessor",
    "MultiViewAttnProcessor",
    "MultiViewDiffusion",
    "MultiViewDiffusionConfig",
    "PerformanceConfig",
    "EditConfig",
    "SampleConfig",
    "SampleOutput",
    "SamplingCancelled",
    "attach_multiview_processors",
    "build_word_tokenizer",
    "convert_mvdream_checkpoint",
    "sample_views",
]
