"""Pretraining of a small multi-view base model from scratch (the `world` preset's weights)."""

from dreamedit3d_core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "config": ("PretrainConfig",),
        "loop": ("PretrainData", "PretrainResult", "pretrain"),
    },
)
