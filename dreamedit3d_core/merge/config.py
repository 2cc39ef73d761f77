"""Settings of the merge stage: how an edit's sampled views go back onto the source asset."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dreamedit3d_core.asset_settings import asset_field
from dreamedit3d_core.reconstruct.config import ForegroundConfig, TextureConfig


def _texture() -> TextureConfig:
    return TextureConfig(size=512)


class MergeConfig(BaseModel):
    """The merged asset is the source asset with only the edited components changed."""

    model_config = ConfigDict(extra="forbid")

    # appearance: the component keeps its geometry and gets a texture baked from the views; shape: it is rebuilt
    # from the views; auto: shape when the sampled silhouette leaves the component's mask (below)
    edit_kind: Literal["auto", "appearance", "shape"] = asset_field("auto")
    # auto: a shape edit when more than this share of the component's pixels is gained (sampled foreground
    # beyond its grown mask and the kept components) or lost (its mask beyond the grown sampled foreground) ...
    shape_threshold: float = Field(0.35, gt=0.0)
    # how far (as a share of the image side) the masks are grown before comparing: the views are not exact
    shape_margin: float = Field(0.04, ge=0.0, lt=0.5)
    # ... and when the views agree on the new shape: the surface rebuilt from them covers at least this share
    # (intersection over union, mean over the views) of the new region in every view; a blurred or drifting
    # view does not make a shape, and the component is re-textured instead
    shape_agreement: float = Field(0.6, ge=0.0, le=1.0)
    # the baked texture of each edited part (size, view weights, edge fade); view depth tolerance in world units
    texture: TextureConfig = Field(default_factory=_texture)
    depth_tolerance: float = Field(0.02, gt=0.0)
    # source UVs are kept when they lie in [0, 1] and overlap on less than this share of their area
    max_uv_overlap: float = Field(0.01, ge=0.0, lt=1.0)
    # the sampled views' silhouettes (white background)
    foreground: ForegroundConfig = Field(default_factory=ForegroundConfig)
    # a shape edit's new geometry: visual hull on this grid, then at most this many faces
    grid_resolution: int = Field(96, ge=16, le=512)
    target_faces: int = Field(5000, ge=100)
