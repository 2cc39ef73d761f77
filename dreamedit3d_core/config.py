"""The pipelines' configurations: each stage's own config class, gathered in one typed object per pipeline.

Each stage package holds its config class (`RenderConfig` in `render/`, `SampleConfig` in `mvdiffusion/`, ...).
Their defaults are the paper's reference numbers. A preset is a YAML file in `dreamedit3d_core/presets/` of
overrides on those defaults, and `PipelineConfig` always starts from one: `PipelineConfig()` is the `tiny`
preset, `PipelineConfig(preset="world")` the `world` preset, and any other field given is merged over the
preset (mappings merge, everything else replaces). That is the only preset mechanism.

Presets (`preset_names()`):
- `tiny`: random tiny models on the CPU, small images and few steps: seconds per stage (tests). Edits are noise.
- `world`: our own small model trained on the procedural parts world (shipped weights), for objects made of
  coloured primitives, minutes per asset on a CPU (the demo).
- `mvdream`: real MVDream weights from a local folder (`model.path`), the paper's reference settings.

A config is validated as a whole before any stage runs (unknown keys are errors, not ignored).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

# Each stage's settings from its own config module: reading a config imports no torch, trimesh or Blender.
from dreamedit3d_core.evaluate.config import EvaluateConfig, EvaluationViewsConfig
from dreamedit3d_core.execution import execution_field
from dreamedit3d_core.ingest.config import IngestConfig
from dreamedit3d_core.masks.config import MaskConfig
from dreamedit3d_core.merge.config import MergeConfig
from dreamedit3d_core.mvdiffusion.settings import ModelConfig, SampleConfig
from dreamedit3d_core.personalize.config import FinetuneConfig, InvertConfig
from dreamedit3d_core.pretrain.config import PretrainConfig
from dreamedit3d_core.reconstruct.config import ReconstructConfig
from dreamedit3d_core.render.config import RenderConfig
from dreamedit3d_core.world.config import WorldDatasetConfig

PRESETS_DIR = Path(__file__).resolve().parent / "presets"
DEFAULT_PRESET = "tiny"


def preset_names() -> list[str]:
    """The presets shipped in the package, by name."""
    return sorted(path.stem for path in PRESETS_DIR.glob("*.yaml"))


@cache
def _preset_file(name: str) -> dict[str, Any]:
    path = PRESETS_DIR / f"{name}.yaml"
    settings = yaml.safe_load(path.read_text()) or {}
    if not isinstance(settings, dict):
        raise ValueError(f"preset file {path} must hold a mapping of stage settings")
    return settings


def preset_settings(name: str) -> dict[str, Any]:
    """The overrides a preset makes on the stage configs' defaults (a fresh copy)."""
    if not isinstance(name, str) or name not in preset_names():
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(preset_names())}")
    return copy.deepcopy(_preset_file(name))


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge `override` into `base` (mappings merge, everything else replaces)."""
    merged = copy.deepcopy(dict(base))
    for name, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(name), Mapping):
            merged[name] = merge(merged[name], value)
        else:
            merged[name] = copy.deepcopy(value)
    return merged


class PipelineConfig(BaseModel):
    """Every stage's settings for editing one asset; a stage's artifact key hashes only the sections it reads
    (see tasks/catalog.py), without their execution-only fields."""

    model_config = ConfigDict(extra="forbid")

    preset: str = DEFAULT_PRESET  # the preset the other settings start from (docs/presets.md)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    render: RenderConfig = Field(default_factory=RenderConfig)
    mask: MaskConfig = Field(default_factory=MaskConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    invert: InvertConfig = Field(default_factory=InvertConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    reconstruct: ReconstructConfig = Field(default_factory=ReconstructConfig)
    merge: MergeConfig = Field(default_factory=MergeConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    evaluation_views: EvaluationViewsConfig = Field(default_factory=EvaluationViewsConfig)
    # steps 3 and 4 of the paper: learn a token per component (`invert`) and fine-tune the model on the asset
    # (`finetune`). false, not the paper's recipe: neither stage runs and `sample` draws the edit with the base
    # model: each edited component alone with its initializer word ("a photo of a cube in blue"), the source's
    # own renders everywhere else. On the world model it edits as often as personalisation did, at none of its
    # cost (docs/world_edits.md)
    personalize: bool = True

    @model_validator(mode="before")
    @classmethod
    def _start_from_the_preset(cls, data: Any) -> Any:
        """The named preset's settings first, then what was given, merged over them."""
        if not isinstance(data, Mapping):
            return data
        name = data.get("preset", DEFAULT_PRESET)
        return merge({**preset_settings(name), "preset": name}, data)

    @model_validator(mode="after")
    def _without_tokens_the_sampler_draws_words(self) -> PipelineConfig:
        """Without personalisation there are no tokens to draw: only the regional sampler with initializer words
        and the source outside the edited components can make the edit."""
        if self.personalize:
            return self
        needs = {"local_edit": True, "regional_prompts": True, "region_words": "initializer", "known_region": "source"}
        wrong = [f"sample.{name}: {getattr(self.sample, name)!r}" for name, value in needs.items() if getattr(self.sample, name) != value]
        if wrong:
            asked = ", ".join(f"sample.{name}: {value!r}" for name, value in needs.items())
            raise ValueError(
                f"personalize: false draws each edited component with its initializer word on the base model, which "
                f"knows no tokens; it needs {asked} (got {', '.join(wrong)})"
            )
        return self


def pipeline_config(preset: str = DEFAULT_PRESET, overrides: Mapping[str, Any] | None = None) -> PipelineConfig:
    """The preset's config with `overrides` (e.g. parsed from a YAML file) merged in, validated. An override
    file may name its own preset (`preset: world`), which then replaces `preset`."""
    overrides = dict(overrides or {})
    return PipelineConfig.model_validate({**overrides, "preset": overrides.get("preset", preset)})


class WorldTrainingConfig(BaseModel):
    """The world model's pipeline: render the procedural parts world's dataset, then train the model on it."""

    model_config = ConfigDict(extra="forbid")

    dataset: WorldDatasetConfig = Field(default_factory=WorldDatasetConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    model_seed: int = 0  # random initialisation of the model trained from scratch
    device: str = execution_field("auto")  # auto, cpu or cuda
