"""Sizes of the multi-view diffusion bundle: enough to build it at random init and to describe a loaded one."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CONFIG_NAME = "multiview_diffusion.json"


class MultiViewDiffusionConfig(BaseModel):
    """MVDream-style bundle sizes. Defaults are sd-v2.1-base-4view (MVDream's 256 px, 4-view model)."""

    model_config = ConfigDict(extra="forbid")

    num_views: int = Field(4, ge=1)
    image_size: int = Field(256, ge=8)
    camera_dim: int = 16

    # UNet (diffusers UNet2DConditionModel); `attention_levels[i]` = level i has transformer blocks.
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    attention_levels: tuple[bool, ...] = (True, True, True, False)
    layers_per_block: int = 2
    head_channels: int = 64  # channels per attention head, as MVDream's num_head_channels
    transformer_layers_per_block: int = 1
    use_linear_projection: bool = True
    cross_attention_dim: int = 1024
    norm_num_groups: int = 32
    latent_channels: int = 4

    # Image <-> latent map. "kl": diffusers AutoencoderKL, one downsampling per level after the first.
    # "pixel_unshuffle": the exact, weight-free PixelUnshuffleAutoencoder (latent_channels = 3 * pixel_factor^2).
    vae_kind: Literal["kl", "pixel_unshuffle"] = "kl"
    pixel_factor: int = Field(4, ge=1)
    vae_block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    vae_layers_per_block: int = 2
    vae_norm_num_groups: int = 32
    scaling_factor: float = 0.18215

    # Text encoder (transformers CLIPTextModel; SD 2.x keeps OpenCLIP-H's first 23 layers).
    text_vocab_size: int | None = 49408  # None: the size of the tokenizer
    text_hidden_size: int = 1024
    text_layers: int = 23
    text_heads: int = 16
    text_intermediate_size: int = 4096
    max_prompt_length: int = 77
    text_hidden_act: Literal["gelu", "quick_gelu"] = "gelu"

    # DDPM training schedule (SD 2.1-base, MVDream: linear_start 0.00085, linear_end 0.012, 1000 steps).
    beta_start: float = 0.00085
    beta_end: float = 0.012
    num_train_timesteps: int = 1000
    # What the UNet predicts. MVDream: epsilon. Our world model: v (Salimans & Ho) with the schedule rescaled
    # to zero terminal SNR (Lin et al. 2024), so sampling starts from pure noise exactly as trained and the
    # prediction at the noisiest steps is the image itself rather than a 1/sqrt(alpha)-amplified residual.
    prediction_type: Literal["epsilon", "v_prediction"] = "epsilon"
    zero_terminal_snr: bool = False

    @model_validator(mode="after")
    def _check_sizes(self) -> MultiViewDiffusionConfig:
        if len(self.attention_levels) != len(self.block_out_channels):
            raise ValueError(
                f"attention_levels has {len(self.attention_levels)} entries but block_out_channels has "
                f"{len(self.block_out_channels)}"
            )
        for channels in self.block_out_channels:
            if channels % self.head_channels:
                raise ValueError(f"block width {channels} is not a multiple of head_channels {self.head_channels}")
        if self.vae_kind == "pixel_unshuffle" and self.latent_channels != 3 * self.pixel_factor**2:
            raise ValueError(
                f"pixel unshuffle by {self.pixel_factor} gives {3 * self.pixel_factor**2} latent channels, "
                f"but latent_channels is {self.latent_channels}"
            )
        if self.image_size % self.vae_scale_factor:
            raise ValueError(
                f"image_size {self.image_size} is not a multiple of the VAE factor {self.vae_scale_factor}"
            )
        if self.latent_size % 2 ** (len(self.block_out_channels) - 1):
            raise ValueError(
                f"latent size {self.latent_size} cannot be halved {len(self.block_out_channels) - 1} times by the UNet"
            )
        return self

    @property
    def vae_scale_factor(self) -> int:
        if self.vae_kind == "pixel_unshuffle":
            return self.pixel_factor
        return 2 ** (len(self.vae_block_out_channels) - 1)

    @property
    def latent_size(self) -> int:
        return self.image_size // self.vae_scale_factor

    @classmethod
    def tiny(cls) -> MultiViewDiffusionConfig:
        """A few channels, 64 px images, 16x16 latents: every code path of the full model, in milliseconds."""
        return cls(
            image_size=64,
            block_out_channels=(32, 64),
            attention_levels=(True, True),
            layers_per_block=1,
            head_channels=16,
            cross_attention_dim=32,
            vae_block_out_channels=(16, 32, 32),
            vae_layers_per_block=1,
            vae_norm_num_groups=8,
            text_vocab_size=None,
            text_hidden_size=32,
            text_layers=2,
            text_heads=2,
            text_intermediate_size=64,
            norm_num_groups=8,
        )

    @classmethod
    def world_small(cls) -> MultiViewDiffusionConfig:
        """The model we train ourselves on the procedural parts world: 64 px, exact pixel-unshuffle latents
        (16 x 16 x 48), a three-level UNet with attention everywhere (7.1 M parameters) and a small word-level
        text encoder (0.8 M): about 16 MB of float16 safetensors."""
        return cls(
            image_size=64,
            block_out_channels=(64, 128, 128),
            attention_levels=(True, True, True),
            layers_per_block=1,
            head_channels=32,
            cross_attention_dim=128,
            norm_num_groups=16,
            latent_channels=48,
            vae_kind="pixel_unshuffle",
            pixel_factor=4,
            scaling_factor=1.0,
            text_vocab_size=None,
            text_hidden_size=128,
            text_layers=3,
            text_heads=4,
            text_intermediate_size=512,
            max_prompt_length=32,
            prediction_type="v_prediction",
            zero_terminal_snr=True,
        )

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / CONFIG_NAME
        path.write_text(self.model_dump_json(indent=2))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> MultiViewDiffusionConfig:
        path = Path(directory) / CONFIG_NAME
        if not path.is_file():
            raise ValueError(f"{path} is missing: {directory} is not a saved MultiViewDiffusion folder")
        return cls.model_validate_json(path.read_text())
