"""Settings of the evaluate stage's metrics."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from dreamedit3d_core.asset_settings import asset_field
from dreamedit3d_core.execution import execution_field
from dreamedit3d_core.evaluate.verdict import VerdictConfig


class ClipConfig(BaseModel):
    """CLIP from a local weights file; without one, CLIP scores are reported as not computed."""

    model_config = ConfigDict(extra="forbid")

    model_name: str = "ViT-B-32"  # an open_clip architecture name
    weights: Path | None = None  # safetensors (or a legacy .pt/.bin state dict, read with weights_only=True)
    # an architecture open_clip does not ship (e.g. a tiny test model): registered under `model_name`
    model_config_override: dict | None = None
    device: str = execution_field("cpu")


class EvaluateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # meshes: points sampled on each surface; F-score counts matches closer than the threshold
    # (unit-sphere frame: 0.02 is 1% of the object's diameter)
    surface_samples: int = Field(default=50_000, ge=100)
    fscore_threshold: float = Field(default=0.02, gt=0.0)
    seed: int = asset_field(0)
    # multi-view consistency: a reprojected pixel counts only where its depth agrees with the target
    # view's depth within this (world units), i.e. it is not occluded there
    depth_tolerance: float = Field(default=0.02, gt=0.0)
    # masks and silhouettes from RGBA: alpha above this is foreground (0-1)
    alpha_threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    clip: ClipConfig = Field(default_factory=ClipConfig)
    # the report shows source and edit side by side in an interactive 3D viewer (the <model-viewer> that
    # scripts/install.sh vendors; without it, pictures); off keeps reports small (no ~1 MB script, no meshes)
    report_3d: bool = True
    # the verdict on each edit ("applied", "partly applied", "not applied"): its thresholds (verdict.py)
    verdict: VerdictConfig = Field(default_factory=VerdictConfig)


class EvaluationViewsConfig(BaseModel):
    """The camera set the source and the edited mesh are both rendered from (8 by default; 70 as the reference)."""

    model_config = ConfigDict(extra="forbid")

    views: int = Field(8, ge=1, le=360)
    elevation: float = 15.0
