"""Settings of the render stage."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dreamedit3d_core.asset_settings import asset_field
from dreamedit3d_core.execution import execution_field
from dreamedit3d_core.geometry.cameras import CameraSet, orbit_cameras


class RenderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # views: MVDream's orbit; fov and distance are fixed (cameras.distance_to_fit_unit_sphere), so a
    # normalised asset fills the frame the same way whatever it is
    image_size: int = asset_field(256, ge=8, le=4096)
    elevation: float = Field(15.0, ge=-90.0, le=90.0)
    azimuths: list[float] = Field(default_factory=lambda: [0.0, 90.0, 180.0, 270.0], min_length=1)
    fov_deg: float = Field(40.0, gt=1.0, lt=170.0)  # as cameras.mvdream_orbit
    # engine (Cycles)
    samples: int = Field(32, ge=1)  # Cycles samples per pixel
    denoise: bool = True  # OpenImageDenoise
    denoise_prefilter: Literal["NONE", "FAST", "ACCURATE"] = "FAST"
    max_bounces: int = Field(4, ge=0)
    filter_width: float = Field(1.5, ge=0.01, le=10.0)  # pixel filter of the colour render, pixels
    device: Literal["auto", "cpu", "gpu"] = execution_field("auto")  # auto: OptiX/CUDA/HIP/... when Cycles finds one
    threads: int = execution_field(0, ge=0)  # 0: all cores
    passes_only: bool = False  # depth, normals, part ids only: 1 sample, no denoiser (colour is noisy)
    # look
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)  # sRGB colour under `rgb_white`
    ambient_strength: float = Field(0.6, ge=0.0)  # uniform white world light
    key_light_strength: float = Field(1.2, ge=0.0)  # soft sun from above
    # process
    blender_executable: str | None = execution_field(None)  # None: run the scene script with this Python's bpy
    timeout_s: float = execution_field(1800.0, gt=0.0)

    def orbit(self, views: int, elevation: float | None = None) -> RenderConfig:
        """The same renderer on an orbit of `views` evenly spaced azimuths from 0 (turntables, evaluation)."""
        update: dict = {"azimuths": [index * 360.0 / views for index in range(views)]}
        if elevation is not None:
            update["elevation"] = elevation
        return self.model_copy(update=update)

    def camera_set(self) -> CameraSet:
        """The configured orbit at the fixed distance that fits the unit sphere."""
        return orbit_cameras(self.azimuths, self.elevation, fov_deg=self.fov_deg, image_size=self.image_size)
