"""LGM's network: an asymmetric U-Net over 4 views with attention across all views, then 3D Gaussians.

Written from the paper and the published architecture; module and parameter names follow the released
checkpoint's keys (`unet.down_blocks.3.attns.0.attn.qkv.weight`, ..., `conv.weight`) so that its
safetensors file loads with strict key checking.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from dreamedit3d_core.reconstruct.lgm.config import GAUSSIAN_CHANNELS, INPUT_CHANNELS, LGMArchitectureConfig

SKIP_SCALE = math.sqrt(0.5)  # residual sums are scaled to keep the activations' variance


class LGMWeightsError(ValueError):
    """The LGM weights file is missing or does not fit the configured architecture."""


class SelfAttention(nn.Module):
    """Multi-head self-attention over tokens (B, N, C); no bias on the qkv projection (as LGM)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        # (B, N, 3C) -> (3, B, heads, N, C/heads)
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))  # (B, heads, N, c) -> (B, N, C)


class MultiViewAttention(nn.Module):
    """Self-attention over the pixels of all views of one object at once: how LGM's views talk."""

    def __init__(self, dim: int, heads: int, groups: int, num_views: int) -> None:
        super().__init__()
        self.num_views = num_views
        self.norm = nn.GroupNorm(groups, dim, eps=1e-5)
        self.attn = SelfAttention(dim, heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch_views, channels, height, width = x.shape
        batch = batch_views // self.num_views
        tokens = self.norm(x)
        # (B*V, C, H, W) -> (B, V*H*W, C)
        tokens = tokens.reshape(batch, self.num_views, channels, height, width).permute(0, 1, 3, 4, 2)
        tokens = self.attn(tokens.reshape(batch, -1, channels))
        # (B, V*H*W, C) -> (B*V, C, H, W)
        tokens = tokens.reshape(batch, self.num_views, height, width, channels).permute(0, 1, 4, 2, 3)
        return (tokens.reshape(batch_views, channels, height, width) + x) * SKIP_SCALE


class ResnetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=1e-5)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=1e-5)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (h + self.shortcut(x)) * SKIP_SCALE


def _attention(enabled: bool, dim: int, config: LGMArchitectureConfig) -> nn.Module:
    if not enabled:
        return nn.Identity()
    return MultiViewAttention(dim, config.attention_heads, config.norm_groups, config.num_views)


class DownBlock(nn.Module):
    def __init__(self, cin: int, cout: int, attention: bool, downsample: bool, config: LGMArchitectureConfig) -> None:
        super().__init__()
        layers = config.layers_per_block
        self.nets = nn.ModuleList(
            [ResnetBlock(cin if i == 0 else cout, cout, config.norm_groups) for i in range(layers)]
        )
        self.attns = nn.ModuleList([_attention(attention, cout, config) for _ in range(layers)])
        self.downsample = nn.Conv2d(cout, cout, 3, stride=2, padding=1) if downsample else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for net, attn in zip(self.nets, self.attns, strict=True):
            x = attn(net(x))
            skips.append(x)
        if self.downsample is not None:
            x = self.downsample(x)
            skips.append(x)
        return x, skips


class MidBlock(nn.Module):
    def __init__(self, channels: int, config: LGMArchitectureConfig) -> None:
        super().__init__()
        self.nets = nn.ModuleList([ResnetBlock(channels, channels, config.norm_groups) for _ in range(2)])
        self.attns = nn.ModuleList([_attention(config.mid_attention, channels, config)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nets[1](self.attns[0](self.nets[0](x)))


class UpBlock(nn.Module):
    """Each layer concatenates one skip from the encoder; the last layer's skip comes from one level up."""

    def __init__(
        self, cin: int, cskip: int, cout: int, attention: bool, upsample: bool, config: LGMArchitectureConfig
    ) -> None:
        super().__init__()
        layers = config.layers_per_block + 1
        nets = []
        for i in range(layers):
            first_in = cin if i == 0 else cout
            skip = cskip if i == layers - 1 else cout
            nets.append(ResnetBlock(first_in + skip, cout, config.norm_groups))
        self.nets = nn.ModuleList(nets)
        self.attns = nn.ModuleList([_attention(attention, cout, config) for _ in range(layers)])
        self.upsample = nn.Conv2d(cout, cout, 3, padding=1) if upsample else None

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for net, attn in zip(self.nets, self.attns, strict=True):
            x = attn(net(torch.cat([x, skips.pop()], dim=1)))
        if self.upsample is not None:
            x = self.upsample(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return x


class UNet(nn.Module):
    def __init__(self, config: LGMArchitectureConfig) -> None:
        super().__init__()
        down, up = config.down_channels, config.up_channels
        self.conv_in = nn.Conv2d(INPUT_CHANNELS, down[0], 3, padding=1)
        self.down_blocks = nn.ModuleList(
            [
                DownBlock(down[max(i - 1, 0)], down[i], config.down_attention[i], i < len(down) - 1, config)
                for i in range(len(down))
            ]
        )
        self.mid_block = MidBlock(down[-1], config)
        self.up_blocks = nn.ModuleList(
            [
                UpBlock(
                    up[max(i - 1, 0)],
                    down[max(-2 - i, -len(down))],
                    up[i],
                    config.up_attention[i],
                    i < len(up) - 1,
                    config,
                )
                for i in range(len(up))
            ]
        )
        self.norm_out = nn.GroupNorm(config.norm_groups, up[-1], eps=1e-5)
        self.conv_out = nn.Conv2d(up[-1], GAUSSIAN_CHANNELS, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        skips = [x]
        for block in self.down_blocks:
            x, block_skips = block(x)
            skips.extend(block_skips)
        x = self.mid_block(x)
        for block in self.up_blocks:
            count = len(block.nets)
            x = block(x, skips[-count:])
            skips = skips[:-count]
        return self.conv_out(F.silu(self.norm_out(x)))


class LGMNetwork(nn.Module):
    """(B, 4, 9, S, S) inputs -> (B, 4 * splat^2, 14) Gaussians in LGM's frame:
    position (clamped to [-1, 1]^3), opacity, scale, unit quaternion (w, x, y, z), RGB in [0, 1]."""

    def __init__(self, config: LGMArchitectureConfig) -> None:
        super().__init__()
        self.config = config
        self.unet = UNet(config)
        self.conv = nn.Conv2d(GAUSSIAN_CHANNELS, GAUSSIAN_CHANNELS, 1)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        batch, views, channels, height, width = inputs.shape
        if views != self.config.num_views or channels != INPUT_CHANNELS or height != self.config.input_size:
            raise ValueError(
                f"LGM takes (B, {self.config.num_views}, {INPUT_CHANNELS}, {self.config.input_size}, "
                f"{self.config.input_size}) inputs, got {tuple(inputs.shape)}"
            )
        x = self.conv(self.unet(inputs.reshape(batch * views, channels, height, width)))  # (B*V, 14, s, s)
        splat = self.config.splat_size
        # (B*V, 14, s, s) -> (B, V*s*s, 14): one Gaussian per output pixel of every view
        x = x.reshape(batch, views, GAUSSIAN_CHANNELS, splat, splat).permute(0, 1, 3, 4, 2)
        x = x.reshape(batch, -1, GAUSSIAN_CHANNELS)
        position = x[..., 0:3].clamp(-1.0, 1.0)
        opacity = torch.sigmoid(x[..., 3:4])
        scale = 0.1 * F.softplus(x[..., 4:7])
        rotation = F.normalize(x[..., 7:11], dim=-1)
        colour = 0.5 * torch.tanh(x[..., 11:14]) + 0.5
        return torch.cat([position, opacity, scale, rotation, colour], dim=-1)


def load_lgm_weights(model: LGMNetwork, path: str | Path | None) -> LGMNetwork:
    """Loads a local safetensors checkpoint (e.g. LGM's model_fp16.safetensors) with strict key checks."""
    if path is None:
        raise LGMWeightsError(
            "LGM needs its weights: set reconstruct.lgm.weights to a local safetensors file "
            "(the released model_fp16.safetensors, preset 'big'); nothing is downloaded"
        )
    path = Path(path)
    if not path.is_file():
        raise LGMWeightsError(f"LGM weights file not found: {path}")
    if path.suffix != ".safetensors":
        raise LGMWeightsError(f"{path}: LGM weights must be a .safetensors file (pickles are never loaded)")
    state = {key: value for key, value in load_file(str(path)).items() if not key.startswith("lpips_loss")}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise LGMWeightsError(
            f"{path} does not fit the configured LGM architecture: {len(missing)} missing keys "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected keys (e.g. {unexpected[:3]}); check the preset"
        )
    wrong = [key for key in expected if expected[key].shape != state[key].shape]
    if wrong:
        key = wrong[0]
        raise LGMWeightsError(
            f"{path}: {len(wrong)} tensors have the wrong shape, e.g. {key}: "
            f"{tuple(state[key].shape)} in the file, {tuple(expected[key].shape)} in the model; check the preset"
        )
    on_meta = next(model.parameters()).is_meta
    # a model built on the meta device takes the file's tensors as they are (no second copy in memory)
    model.load_state_dict({key: value.to(expected[key].dtype) for key, value in state.items()}, assign=on_meta)
    return model
