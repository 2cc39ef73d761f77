"""Settings of the mask stage: which components an asset has and how their masks are made.

A YAML file loads straight into `MaskConfig.model_validate(yaml.safe_load(text))`, for example

    mode: sam
    class_word: toy
    sam:
      checkpoint: /models/sam_vit_b_01ec64.pth
      model_type: vit_b
      prompts:                    # component name -> 3D points (normalised asset frame) or part names
        head: [[0.0, -0.2, 0.6]]
        body: [[0.0, -0.4, 0.0], [0.1, -0.3, -0.2]]
      view_prompts:               # component name -> view index -> points / box in pixels
        head:
          2: {points: [[120.5, 40.5]], box: [90, 10, 160, 80]}

Pixel coordinates follow dreamedit3d_core.geometry.cameras: origin at the top-left corner of the image,
u to the right, v downwards, pixel centres at half-integers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dreamedit3d_core.asset_settings import asset_field
from dreamedit3d_core.execution import execution_field

Point3 = tuple[float, float, float]


class ViewPromptConfig(BaseModel):
    """Prompts for one component in one view, in pixels."""

    model_config = ConfigDict(extra="forbid")

    points: list[tuple[float, float]] = Field(default_factory=list)
    labels: list[int] | None = None  # 1 = on the component, 0 = not on it; default all 1
    box: tuple[float, float, float, float] | None = None  # (u0, v0, u1, v1)

    @model_validator(mode="after")
    def _check(self) -> ViewPromptConfig:
        if not self.points and self.box is None:
            raise ValueError("a view prompt needs points or a box")
        if self.labels is not None:
            if len(self.labels) != len(self.points):
                raise ValueError(f"view prompt has {len(self.points)} points but {len(self.labels)} labels")
            if any(label not in (0, 1) for label in self.labels):
                raise ValueError(f"view prompt labels must be 0 or 1, got {self.labels}")
        if self.box is not None and not (self.box[0] < self.box[2] and self.box[1] < self.box[3]):
            raise ValueError(f"view prompt box {self.box} is not (u0, v0, u1, v1) with u0 < u1 and v0 < v1")
        return self

    def point_labels(self) -> list[int]:
        return list(self.labels) if self.labels is not None else [1] * len(self.points)


class SamConfig(BaseModel):
    """Segment Anything: a local checkpoint and the prompts that name an asset's components."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: Path | None = None
    model_type: Literal["vit_h", "vit_l", "vit_b"] = "vit_h"
    device: str = execution_field("cpu")
    # component name -> prompts in 3D: points on the surface (normalised asset frame) or part names/patterns
    prompts: dict[str, list[Point3 | str]] = asset_field(default_factory=dict)
    # component name -> view index -> prompts in that view's pixels
    view_prompts: dict[str, dict[int, ViewPromptConfig]] = asset_field(default_factory=dict)
    # a 3D point is visible in a view where it lies within this distance of the rendered surface
    depth_tolerance: float = asset_field(0.03, gt=0.0)
    # other components' prompts become background points: SAM then separates neighbouring components
    negatives_from_other_components: bool = asset_field(True)
    # who gets a pixel that several SAM masks claim: the nearest prompt, or the highest predicted IoU
    overlap_rule: Literal["nearest_prompt", "score"] = asset_field("nearest_prompt")

    @model_validator(mode="after")
    def _check(self) -> SamConfig:
        for name, prompts in self.prompts.items():
            if not prompts:
                raise ValueError(f"SAM component '{name}' has an empty list of prompts")
        for name, views in self.view_prompts.items():
            if not views:
                raise ValueError(f"SAM component '{name}' has no view prompts")
            negative_views = [view for view in views if view < 0]
            if negative_views:
                raise ValueError(f"SAM component '{name}': view indices must be >= 0, got {negative_views}")
        return self

    def component_names(self) -> list[str]:
        """Components in the order they were named: 3D prompts first, then per-view-only ones."""
        return list(self.prompts) + [name for name in self.view_prompts if name not in self.prompts]


class MaskConfig(BaseModel):
    """What the mask stage does with one asset."""

    model_config = ConfigDict(extra="forbid")

    # auto: parts when the asset has more than one part; else SAM when prompts are given; else whole
    mode: Literal["auto", "parts", "whole", "sam"] = asset_field("auto")
    # component name -> part names, glob patterns (case-insensitive) or part ids; other parts stay alone
    groups: dict[str, list[str | int]] = asset_field(default_factory=dict)
    # parts (not configured groups) with less than this share of all views' foreground pixels
    min_coverage: float = asset_field(0.005, ge=0.0, lt=1.0)
    # where such small parts go: the neighbour with the longest shared outline, one 'rest' component, or away
    small_parts: Literal["neighbour", "rest", "drop"] = asset_field("neighbour")
    # name of the 'rest' component; a configured group's name sends small parts into that group
    rest_name: str = asset_field("rest")
    # initializer word where no part, group, material or prompt name gives one
    class_word: str = asset_field("object")
    allow_overlap: bool = asset_field(False)
    sam: SamConfig = Field(default_factory=SamConfig)

    @field_validator("class_word")
    @classmethod
    def _one_lowercase_word(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z]+", value):
            raise ValueError(f"class_word must be one lowercase word (letters a-z), got {value!r}")
        return value

    @field_validator("groups")
    @classmethod
    def _non_empty_groups(cls, groups: dict[str, list[str | int]]) -> dict[str, list[str | int]]:
        for name, members in groups.items():
            if not name.strip():
                raise ValueError("a group has an empty name")
            if not members:
                raise ValueError(f"group '{name}' is empty: list the part names or patterns it holds")
        return groups
