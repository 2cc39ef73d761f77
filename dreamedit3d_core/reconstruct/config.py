"""Settings of the reconstruct stage: 4 views + cameras -> one textured mesh.

A YAML section loads straight into `ReconstructConfig.model_validate(...)`, for example

    method: visual_hull          # or lgm (needs a local safetensors file: lgm.weights)
    grid_resolution: 192
    target_faces: 30000
    texture_size: 1024
    lgm:
      weights: /models/lgm/model_fp16.safetensors
      preset: big
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dreamedit3d_core.execution import execution_field


class ForegroundConfig(BaseModel):
    """How the object's silhouette is read from a view."""

    model_config = ConfigDict(extra="forbid")

    # RGBA views: a pixel is foreground where alpha exceeds this (0-1)
    alpha_threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    # white-background views: foreground where any channel is darker than 255 minus this (0-255)
    white_tolerance: int = Field(default=12, ge=1, le=254)
    # morphological opening radius in pixels: removes single-pixel speckles of sampling noise
    open_radius: int = Field(default=1, ge=0, le=8)
    # islands and holes smaller than this share of the view's foreground are removed / filled
    min_region_fraction: float = Field(default=0.002, ge=0.0, lt=0.5)


class TextureConfig(BaseModel):
    """How the views are baked into the texture."""

    model_config = ConfigDict(extra="forbid")

    size: int = Field(default=1024, ge=16, le=8192)
    # view weight = cos(normal, direction to camera) ** sharpness: high values pick the most frontal view
    # while still blending smoothly where two views see a surface equally well
    sharpness: float = Field(default=6.0, ge=0.0, le=64.0)
    # texels whose best view sees them more obliquely than this are left to the fill (degrees)
    max_view_angle_deg: float = Field(default=80.0, gt=0.0, le=90.0)
    # a view's colour fades out within this many pixels of its silhouette edge (anti-aliased background)
    edge_fade_px: float = Field(default=2.0, ge=0.0, le=16.0)
    # visibility: a texel is seen by a view when its depth is within this of the mesh's own depth map,
    # in units of the reconstruction grid's voxel size
    depth_tolerance_voxels: float = Field(default=1.5, gt=0.0)


class LGMReconstructConfig(BaseModel):
    """The LGM adapter (ashawkey/LGM): 4 views -> 3D Gaussians -> density grid -> mesh."""

    model_config = ConfigDict(extra="forbid")

    weights: Path | None = None  # local safetensors file (model_fp16.safetensors for `big`)
    preset: Literal["big", "small", "tiny"] = "big"
    device: str = execution_field("cpu")
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    # the density (sum of opacity-weighted Gaussian kernels) whose level set becomes the surface
    density_level: float = Field(default=0.5, gt=0.0)
    # Gaussians are evaluated on the grid within this many standard deviations
    kernel_sigmas: float = Field(default=3.0, gt=0.5, le=6.0)
    # intersect LGM's shape with the views' visual hull: it keeps the silhouettes exact
    clip_to_visual_hull: bool = True


class ReconstructConfig(BaseModel):
    """What the reconstruct stage does with one set of views."""

    model_config = ConfigDict(extra="forbid")

    # the full reconstruction as a stage of its own (the paper's output); the edit's mesh is the merge stage's,
    # which reconstructs only when an edited component maps to no geometry. Whether it runs, not what it makes.
    enabled: bool = execution_field(False)
    method: Literal["visual_hull", "lgm"] = "visual_hull"
    foreground: ForegroundConfig = Field(default_factory=ForegroundConfig)
    # marching-cubes grid over the cube [-bound, bound]^3 (the object lies inside the unit sphere)
    grid_resolution: int = Field(default=128, ge=16, le=512)
    bound: float = Field(default=1.05, gt=0.0)
    # the carve is first evaluated on a grid this many times coarser, then refined near the surface only
    coarse_factor: int = Field(default=4, ge=1, le=8)
    # cut each piece flat below its lowest surface point a view sees: removes the keel the hull grows
    # under objects that all cameras look down on (see underside.py)
    cut_unseen_underside: bool = True
    # "sees": at a cosine between normal and view direction above this. Low values keep more of a
    # rounded underside (0.05: best on Duck and fuze); 0.2 also cuts most of a ground plane's slab
    underside_min_cosine: float = Field(default=0.05, ge=0.0, lt=1.0)
    # connected pieces smaller than this share of the largest piece's area are dropped (carving debris)
    min_component_fraction: float = Field(default=0.01, ge=0.0, le=1.0)
    smoothing_iterations: int = Field(default=3, ge=0, le=200)  # Taubin (shrink-free), after decimation
    target_faces: int = Field(default=20000, ge=100)
    texture: TextureConfig = Field(default_factory=TextureConfig)
    lgm: LGMReconstructConfig = Field(default_factory=LGMReconstructConfig)

    @property
    def voxel_size(self) -> float:
        return 2.0 * self.bound / (self.grid_resolution - 1)
