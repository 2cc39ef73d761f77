"""Which multi-view model a pipeline starts from: a tiny random one, our own small world model, or real
weights from a local folder. The world model is a folder like any converted MVDream checkpoint and goes
through the same `MultiViewDiffusion.from_pretrained`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, model_validator

from dreamedit3d_core.execution import execution_field
from dreamedit3d_core.mvdiffusion.model import MultiViewDiffusion, PerformanceConfig


# The small model we trained on the procedural parts world (`dreamedit3d world train`), shipped in the package.
WORLD_MODEL_DIR = Path(__file__).resolve().parents[1] / "weights" / "world_small"


class ModelConfig(BaseModel):
    """`tiny`: random tiny weights built in code (no download, seconds on a CPU; edits are noise).
    `world`: our small model trained on the procedural parts world: the shipped weights, or `path` for a
    world model trained with `dreamedit3d world train`.
    `pretrained`: a diffusers-layout folder, e.g. written by `dreamedit3d convert-mvdream`."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["tiny", "world", "pretrained"] = "tiny"
    path: str | None = None
    seed: int = 0  # random init of the tiny model
    # how the model runs, not which weights it has (bf16, compiled or checkpointed, it is the same model)
    device: Literal["auto", "cpu", "cuda"] = execution_field("auto")
    performance: PerformanceConfig = execution_field(default_factory=PerformanceConfig)

    @model_validator(mode="after")
    def _pretrained_needs_a_path(self) -> ModelConfig:
        if self.source == "pretrained" and not self.path:
            raise ValueError(
                "model.path must name a converted MVDream folder when model.source is 'pretrained' "
                "(convert the official checkpoint with `dreamedit3d convert-mvdream`)"
            )
        return self


def model_folder(config: ModelConfig) -> Path | None:
    """The weights folder the config names (None for the tiny model built in code)."""
    if config.source == "tiny":
        return None
    if config.source == "world" and not config.path:
        return WORLD_MODEL_DIR
    if not config.path:
        raise ValueError("model.source is 'pretrained' but model.path is not set (a converted MVDream folder)")
    return Path(config.path).expanduser()


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("model.device is 'cuda' but no CUDA GPU is available")
    return torch.device(device)


def load_base_model(config: ModelConfig) -> MultiViewDiffusion:
    """The model the pipeline personalises, on the configured device with its performance options."""
    device = resolve_device(config.device)
    folder = model_folder(config)
    if folder is None:
        model = MultiViewDiffusion.build_tiny(seed=config.seed).to(device)
    else:
        if not folder.is_dir():
            hint = "train one with `dreamedit3d world train`" if config.source == "world" else (
                "convert weights with `dreamedit3d convert-mvdream`"
            )
            raise ValueError(f"model folder {folder} does not exist ({hint})")
        model = MultiViewDiffusion.from_pretrained(folder, device=device)
    return model.apply_performance(config.performance)
