"""LGM's architecture sizes (ashawkey/LGM, `core/options.py`), as a config a tiny random test model shares.

The released checkpoint (`model_fp16.safetensors`) is the `big` preset: a U-Net from 4 views of 256 px
with 9 channels (RGB + Plücker ray) to 4 x 128 x 128 Gaussians of 14 numbers each.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

GAUSSIAN_CHANNELS = 14  # position 3, opacity 1, scale 3, rotation quaternion 4, colour 3
INPUT_CHANNELS = 9  # RGB 3 (ImageNet-normalised) + Plücker ray 6


class LGMArchitectureConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_size: int = Field(default=256, ge=8)
    down_channels: tuple[int, ...] = (64, 128, 256, 512, 1024, 1024)
    down_attention: tuple[bool, ...] = (False, False, False, True, True, True)
    mid_attention: bool = True
    up_channels: tuple[int, ...] = (1024, 1024, 512, 256, 128)
    up_attention: tuple[bool, ...] = (True, True, True, False, False)
    layers_per_block: int = Field(default=2, ge=1)
    attention_heads: int = Field(default=16, ge=1)
    norm_groups: int = Field(default=32, ge=1)
    splat_size: int = Field(default=128, ge=1)
    # the cameras LGM was trained with: an orbit of this radius, this vertical field of view
    fovy_deg: float = Field(default=49.1, gt=1.0, lt=170.0)
    cam_radius: float = Field(default=1.5, gt=0.0)
    num_views: int = Field(default=4, ge=1)

    @model_validator(mode="after")
    def _check(self) -> LGMArchitectureConfig:
        if len(self.down_attention) != len(self.down_channels):
            raise ValueError("down_attention needs one flag per entry of down_channels")
        if len(self.up_attention) != len(self.up_channels):
            raise ValueError("up_attention needs one flag per entry of up_channels")
        if len(self.up_channels) > len(self.down_channels):
            raise ValueError("the U-Net cannot have more up blocks than down blocks")
        mirrored = tuple(reversed(self.down_channels))[: len(self.up_channels)]
        if self.up_channels != mirrored:
            raise ValueError(
                f"up_channels must mirror down_channels (the skips' widths): "
                f"expected {mirrored}, got {self.up_channels}"
            )
        for channels in (*self.down_channels, *self.up_channels):
            if channels % self.norm_groups:
                raise ValueError(f"{channels} channels are not divisible into {self.norm_groups} norm groups")
        attended = [c for c, on in zip(self.down_channels, self.down_attention, strict=True) if on]
        attended += [c for c, on in zip(self.up_channels, self.up_attention, strict=True) if on]
        attended += [self.down_channels[-1]] if self.mid_attention else []
        for channels in attended:
            if channels % self.attention_heads:
                raise ValueError(f"{channels} channels are not divisible into {self.attention_heads} heads")
        expected = self.input_size // 2 ** (len(self.down_channels) - 1) * 2 ** (len(self.up_channels) - 1)
        if self.input_size % 2 ** (len(self.down_channels) - 1) or expected != self.splat_size:
            raise ValueError(
                f"splat_size must be input_size / 2^(down blocks - 1) * 2^(up blocks - 1) = {expected}, "
                f"got {self.splat_size}"
            )
        return self

    @classmethod
    def preset(cls, name: str) -> LGMArchitectureConfig:
        """LGM's own configurations: `big` (the released weights), `small`, `tiny` (its ablation)."""
        presets = {
            "big": {},
            "small": {
                "up_channels": (1024, 1024, 512, 256),
                "up_attention": (True, True, True, False),
                "splat_size": 64,
            },
            "tiny": {
                "down_channels": (32, 64, 128, 256, 512),
                "down_attention": (False, False, False, False, True),
                "up_channels": (512, 256, 128),
                "up_attention": (True, False, False),
                "splat_size": 64,
            },
        }
        if name not in presets:
            raise ValueError(f"unknown LGM preset {name!r}; choose one of {', '.join(presets)}")
        return cls(**presets[name])
