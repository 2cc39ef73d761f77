"""An exact, weight-free image <-> latent map: pixel unshuffle, for models small enough to skip a VAE.

`factor` f turns an image (N, 3, H, W) into latents (N, 3 f^2, H/f, W/f) by moving each f x f block of pixels
into channels, and back. Nothing is learned and nothing is lost: decode(encode(x)) == x bit for bit, so the
diffusion model alone decides image quality. It answers the same calls as diffusers' AutoencoderKL
(`encode(x).latent_dist` with `mean`, `std`, `sample`, `mode`; `decode(z).sample`; `config.scaling_factor`),
and saves/loads as a diffusers model folder, so the bundle's code paths do not care which one they hold.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin


class PixelUnshuffleAutoencoder(ModelMixin, ConfigMixin):
    """Pixel unshuffle as a (deterministic) autoencoder; `latent_channels` = `in_channels` * factor^2."""

    @register_to_config
    def __init__(self, in_channels: int = 3, factor: int = 4, scaling_factor: float = 1.0) -> None:
        super().__init__()
        if factor < 1:
            raise ValueError(f"factor must be a positive integer, got {factor}")
        # One buffer so that the model has a device and dtype (ModelMixin reads them from its tensors).
        self.register_buffer("anchor", torch.zeros(1), persistent=True)

    @property
    def latent_channels(self) -> int:
        return self.config.in_channels * self.config.factor**2

    def encode(self, images: torch.Tensor, return_dict: bool = True) -> AutoencoderKLOutput:
        factor = self.config.factor
        if images.ndim != 4 or images.shape[1] != self.config.in_channels:
            raise ValueError(f"images must be (N, {self.config.in_channels}, H, W), got {tuple(images.shape)}")
        if images.shape[-1] % factor or images.shape[-2] % factor:
            raise ValueError(f"image size {tuple(images.shape[-2:])} is not a multiple of the factor {factor}")
        latents = F.pixel_unshuffle(images, factor)  # (N, C, H, W) -> (N, C f^2, H/f, W/f)
        # deterministic: std is zero, so sample() returns the mean whatever the generator
        posterior = DiagonalGaussianDistribution(torch.cat([latents, torch.zeros_like(latents)], dim=1), True)
        return AutoencoderKLOutput(latent_dist=posterior)

    def decode(self, latents: torch.Tensor, return_dict: bool = True) -> DecoderOutput:
        if latents.ndim != 4 or latents.shape[1] != self.latent_channels:
            raise ValueError(f"latents must be (N, {self.latent_channels}, h, w), got {tuple(latents.shape)}")
        return DecoderOutput(sample=F.pixel_shuffle(latents, self.config.factor))  # (N, C f^2, h, w) -> (N, C, fh, fw)
