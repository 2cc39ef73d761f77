"""The ingest stage's settings: the file's up axis, normalisation, and the limits a file must stay within."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dreamedit3d_core.asset_settings import asset_field
from dreamedit3d_core.execution import execution_field
from dreamedit3d_core.ingest.limits import IngestLimits

UpAxis = Literal["auto", "+x", "-x", "+y", "-y", "+z", "-z"]
DEFAULT_UP_AXIS: dict[str, str] = {".glb": "+y", ".gltf": "+y", ".obj": "+y", ".ply": "+y", ".stl": "+y"}
SUPPORTED_SUFFIXES = tuple(DEFAULT_UP_AXIS)


class IngestConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    up_axis: UpAxis = asset_field("auto")  # the file's up axis; "auto" = DEFAULT_UP_AXIS for its format
    normalize: bool = True  # centre and scale to the unit bounding sphere (off: keep coordinates, only rotate)
    degenerate_area: float = Field(1e-12, ge=0.0)  # faces below this * (bbox diagonal)^2 are dropped
    limits: IngestLimits = execution_field(default_factory=IngestLimits)  # sizes checked before allocating
    timeout_s: float = execution_field(600.0, gt=0)  # wall clock for reading one asset (the ingest stage)
