"""Which multi-view model a pipeline starts from: a tiny random one, our own small world model, or real
weights from a local folder. The world model is a folder like any converted MVDream checkpoint and goes
through the same `MultiViewDiffusion.from_pretrained`."""

from __future__ import annotations

import torch

from dreamedit3d_core.mvdiffusion.model import MultiViewDiffusion
from dreamedit3d_core.mvdiffusion.settings import ModelConfig, model_folder


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("model.device is 'cuda' but no CUDA GPU is available")
    return torch.device(device)


def load_base_model(config: ModelConfig) -> MultiViewDiffusion:
    """The model the pipeline personalises, on the configured device with its performance options."""
    return load_base_weights(config, resolve_device(config.device)).apply_performance(config.performance)


def load_base_weights(config: ModelConfig, device: torch.device) -> MultiViewDiffusion:
    """The base model's weights as stored (float32, no performance options applied), on `device`."""
    folder = model_folder(config)
    if folder is None:
        return MultiViewDiffusion.build_tiny(seed=config.seed).to(device)
    if not folder.is_dir():
        hint = "train one with `dreamedit3d world train`" if config.source == "world" else (
            "convert weights with `dreamedit3d convert-mvdream`"
        )
        raise ValueError(f"model folder {folder} does not exist ({hint})")
    return MultiViewDiffusion.from_pretrained(folder, device=device)
