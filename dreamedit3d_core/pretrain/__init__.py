"""Pretraining of a small multi-view base model from scratch (the `world` preset's weights)."""

from dreamedit3d_core.pretrain.config import PretrainConfig
from dreamedit3d_core.pretrain.loop import PretrainData, PretrainResult, pretrain

__all__ = ["PretrainConfig", "PretrainData", "PretrainResult", "pretrain"]
