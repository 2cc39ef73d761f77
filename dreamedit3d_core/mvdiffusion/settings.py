"""The pipeline's settings for the multi-view model: which weights (`ModelConfig`), how they run
(`PerformanceConfig`), how views are sampled (`SampleConfig`) and what one edit asks for (`EditConfig`).

Plain pydantic, no torch: reading or validating a config never imports the model code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dreamedit3d_core.asset_settings import asset_field
from dreamedit3d_core.execution import execution_field

AttentionBackend = Literal["auto", "sdpa", "xformers", "stock"]
ATTENTION_BACKENDS: tuple[str, ...] = ("auto", "sdpa", "xformers", "stock")

DEFAULT_NEGATIVE_PROMPT = (
    "ugly, blurry, pixelated obscure, unnatural colors, poor lighting, dull, unclear, cropped, lowres, "
    "low quality, artifacts, duplicate"
)


class SampleConfig(BaseModel):
    """DDIM settings: MVDream/Break-a-Scene use 50 steps and guidance 7.5 with a negative prompt."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(50, ge=1, le=1000)
    guidance_scale: float = Field(7.5, ge=0.0)
    eta: float = Field(0.0, ge=0.0)
    negative_prompt: str = asset_field(DEFAULT_NEGATIVE_PROMPT)
    prompt_suffix: str = asset_field("")  # MVDream's own demo appends ", 3d asset"
    # not the paper's recipe: change only the edited components (`local_edit.py`). Outside their masks (grown by
    # `local_edit_grow` latent cells, or `shape_edit_grow` when the words change a shape) the views are the known
    # region: the plain prompt's own drawing from the same noise, or the source's renders noised to each step
    local_edit: bool = False
    local_edit_grow: int = Field(1, ge=0)
    shape_edit_grow: int = Field(3, ge=0)
    known_region: Literal["plain_prompt", "source"] = "plain_prompt"
    # with local_edit, not the paper's recipe: inside each edited component's region the prediction is conditioned
    # on its own words only ("a photo of <asset1> in blue"; "initializer": "a photo of a pyramid in blue";
    # "token_and_initializer": "a photo of a <asset1> pyramid in blue")
    regional_prompts: bool = False
    region_words: Literal["token", "initializer", "token_and_initializer"] = "token"
    # "object": each region is drawn within the object around it; "alone", not the paper's recipe: each region is
    # drawn on its own over the empty ground, then put in place (a kept part's colour cannot bleed into it)
    region_context: Literal["object", "alone"] = "object"

    @model_validator(mode="after")
    def _regional_needs_local(self) -> SampleConfig:
        if self.regional_prompts and not self.local_edit:
            raise ValueError("sample.regional_prompts needs sample.local_edit (the regions are the edited components)")
        return self


class EditConfig(BaseModel):
    """What one edit samples: the prompt, its seed and how many samples (each V views)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1)
    seed: int = 0
    samples: int = Field(1, ge=1, le=16)


class PerformanceConfig(BaseModel):
    """Speed and memory options; the defaults are the exact float32 path."""

    model_config = ConfigDict(extra="forbid")

    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    gradient_checkpointing: bool = False
    attention: AttentionBackend = "auto"  # auto: xformers on CUDA when installed, else PyTorch SDPA
    sdpa_kernels: tuple[Literal["flash", "efficient", "cudnn", "math"], ...] = ()  # empty: PyTorch chooses
    compile: bool = False


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
