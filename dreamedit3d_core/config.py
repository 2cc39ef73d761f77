"""The pipeline's configuration: one typed config per stage, presets, and YAML-style overrides.

Presets:
- `tiny`: random tiny models on the CPU, small images and few steps: seconds per stage (tests). Edits are noise.
- `world`: our own small model trained on the procedural parts world (shipped weights), for objects made of
  coloured primitives, minutes per asset on a CPU (the demo); with prior preservation and local edits (not the
  paper's recipe) it recolours a part on some objects, not on most.
- `mvdream`: real MVDream weights from a local folder (`model.path`), the paper's reference settings.

A config is validated as a whole before any stage runs (unknown keys are errors, not ignored).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dreamedit3d_core.evaluate import EvaluateConfig
from dreamedit3d_core.ingest import IngestConfig
from dreamedit3d_core.masks import MaskConfig
from dreamedit3d_core.mvdiffusion import SampleConfig
from dreamedit3d_core.mvdiffusion.loading import ModelConfig
from dreamedit3d_core.personalize import FinetuneConfig, InvertConfig
from dreamedit3d_core.reconstruct import ReconstructConfig
from dreamedit3d_core.render import RenderConfig
from dreamedit3d_core.world.captions import world_captions

STAGES = ("ingest", "render", "mask", "invert", "finetune", "sample", "reconstruct", "evaluate")
PER_EDIT_STAGES = ("sample", "reconstruct", "evaluate")  # once per edit prompt; the others once per asset
GPU_STAGES = ("invert", "finetune", "sample")  # run on the gpu work pool when the flow runs distributed


class EvaluationViewsConfig(BaseModel):
    """The camera set the source and the edited mesh are both rendered from (8 by default; 70 as the reference)."""

    model_config = ConfigDict(extra="forbid")

    views: int = Field(8, ge=1, le=360)
    elevation: float = 15.0


class PipelineConfig(BaseModel):
    """Every stage's settings. Each stage's artifact key hashes only its own section."""

    model_config = ConfigDict(extra="forbid")

    preset: str = "tiny"
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    render: RenderConfig = Field(default_factory=RenderConfig)
    mask: MaskConfig = Field(default_factory=MaskConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    invert: InvertConfig = Field(default_factory=InvertConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    reconstruct: ReconstructConfig = Field(default_factory=ReconstructConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    evaluation_views: EvaluationViewsConfig = Field(default_factory=EvaluationViewsConfig)


# class prompts of the world preset's prior preservation: captions of 16 random parts-world objects
WORLD_PRIOR_PROMPTS = tuple(world_captions(16, seed=1))

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "render": {"image_size": 64, "samples": 8},
        "model": {"source": "tiny"},
        "invert": {"steps": 4, "attention_resolution": 8},
        "finetune": {"steps": 4, "attention_resolution": 8, "checkpoint_every": 2},
        "sample": {"steps": 8},
        "reconstruct": {"grid_resolution": 64},
        "evaluate": {"surface_samples": 5000},
    },
    "world": {
        # the small model we trained on the procedural parts world (`dreamedit3d world train`), on a CPU in
        # minutes; renders and sampled views at the model's 64 px, with the orbit it was trained on
        "render": {"image_size": 64, "samples": 8},
        "model": {"source": "world"},
        # the renders' white ground is supervised too (background_weight): without it the small model's
        # tokens learn to fill the whole frame
        "invert": {"steps": 150, "lr": 5e-3, "attention_resolution": 16, "background_weight": 1.0},
        # phase 2 keeps the text encoder as pretraining left it (fixed there too): trained at this step size it
        # drifts, and the views lose their cameras (every view the same). 300 steps give the asset back; 60 or
        # 120 gave a blob of its colours (demo object, 2026-11-26). Not the paper's recipe: DreamBooth's prior
        # preservation with the base model's samples of 16 world captions, or phase 2 forgets what colour words
        # do (the edit is ignored); and local edits, or the colour spreads over the whole object
        # (bench_world_edits.py measures both against the paper's recipe)
        "finetune": {
            "steps": 300, "lr": 1e-4, "train_text_encoder": False, "attention_resolution": 16,
            "background_weight": 1.0, "checkpoint_every": 100,
            "prior_preservation": True, "prior_prompt": WORLD_PRIOR_PROMPTS, "prior_images": 16,
            "prior_guidance_scale": 5.0, "prior_negative_prompt": "",  # as the sample stage below
        },
        "sample": {"steps": 50, "guidance_scale": 5.0, "negative_prompt": "", "local_edit": True},
        "reconstruct": {"grid_resolution": 64},
        "evaluate": {"surface_samples": 5000},
    },
    "mvdream": {
        "render": {"image_size": 256, "samples": 32},
        "model": {"source": "pretrained"},  # float32 weights; training autocasts to bf16 on CUDA
        "sample": {"steps": 50, "guidance_scale": 7.5},
    },
}


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge `override` into `base` (mappings merge, everything else replaces)."""
    merged = copy.deepcopy(dict(base))
    for name, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(name), Mapping):
            merged[name] = merge(merged[name], value)
        else:
            merged[name] = copy.deepcopy(value)
    return merged


def pipeline_config(preset: str = "tiny", overrides: Mapping[str, Any] | None = None) -> PipelineConfig:
    """The preset's config with `overrides` (e.g. parsed from a YAML file) merged in, validated."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(sorted(PRESETS))}")
    overrides = dict(overrides or {})
    if overrides.get("preset", preset) != preset:
        preset = overrides["preset"]
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(sorted(PRESETS))}")
    return PipelineConfig.model_validate(merge({"preset": preset, **PRESETS[preset]}, overrides))
