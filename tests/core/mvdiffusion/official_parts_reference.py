"""Test-only: a tiny VAE and OpenCLIP text tower under the key names an official MVDream checkpoint uses.

The text tower is open_clip's own TextTransformer (so its keys and forward are the real ones); the VAE is a
diffusers AutoencoderKL renamed to LDM's names by the rules of LDM's Encoder/Decoder modules.
"""

from __future__ import annotations

import re

import torch
from diffusers import AutoencoderKL
from open_clip.transformer import TextTransformer

VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model.model."

# a VAE whose LDM ddconfig is: ch 32, ch_mult [1, 2, 2], num_res_blocks 1, z_channels 4 (GroupNorm(32) as LDM)
VAE_DDCONFIG = {
    "double_z": True, "z_channels": 4, "resolution": 32, "in_channels": 3, "out_ch": 3, "ch": 32,
    "ch_mult": [1, 2, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0,
}  # fmt: skip


def tiny_vae(seed: int = 0) -> AutoencoderKL:
    torch.manual_seed(seed)
    channels = tuple(VAE_DDCONFIG["ch"] * m for m in VAE_DDCONFIG["ch_mult"])
    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * len(channels),
        up_block_types=("UpDecoderBlock2D",) * len(channels),
        block_out_channels=channels,
        layers_per_block=VAE_DDCONFIG["num_res_blocks"],
        latent_channels=VAE_DDCONFIG["z_channels"],
        sample_size=VAE_DDCONFIG["resolution"],
    ).eval()


def ldm_vae_state_dict(vae: AutoencoderKL) -> dict[str, torch.Tensor]:
    """diffusers names -> LDM names (encoder.down.0.block.0.norm1, mid.attn_1.q as 1x1 conv, ...)."""
    levels = len(vae.config.block_out_channels)
    renames = [
        (r"^(encoder|decoder)\.conv_norm_out\.", r"\1.norm_out."),
        (r"mid_block\.resnets\.(\d+)\.", lambda m: f"mid.block_{int(m.group(1)) + 1}."),
        (r"mid_block\.attentions\.0\.group_norm\.", "mid.attn_1.norm."),
        (r"mid_block\.attentions\.0\.to_([qkv])\.", r"mid.attn_1.\1."),
        (r"mid_block\.attentions\.0\.to_out\.0\.", "mid.attn_1.proj_out."),
        (r"^encoder\.down_blocks\.(\d+)\.resnets\.", r"encoder.down.\1.block."),
        (r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample."),
        (r"^decoder\.up_blocks\.(\d+)\.resnets\.", lambda m: f"decoder.up.{levels - 1 - int(m.group(1))}.block."),
        (r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.",
         lambda m: f"decoder.up.{levels - 1 - int(m.group(1))}.upsample."),
        (r"\.conv_shortcut\.", ".nin_shortcut."),
    ]  # fmt: skip
    state = {}
    for key, value in vae.state_dict().items():
        for pattern, replacement in renames:
            key = re.sub(pattern, replacement, key)
        if ".attn_1." in key and key.endswith("weight") and value.ndim == 2:
            value = value[:, :, None, None]  # LDM's attention projections are 1x1 convolutions
        state[VAE_PREFIX + key] = value.clone()
    return state


def tiny_open_clip_text(width: int, layers: int = 3, seed: int = 0) -> TextTransformer:
    torch.manual_seed(seed)
    return TextTransformer(context_length=77, vocab_size=49408, width=width, heads=1, layers=layers, output_dim=width)


def open_clip_state_dict(text: TextTransformer) -> dict[str, torch.Tensor]:
    state = {TEXT_PREFIX + k: v.clone() for k, v in text.state_dict().items()}
    state[TEXT_PREFIX + "logit_scale"] = torch.tensor(4.6052)  # part of the full CLIP model MVDream saves
    return state


@torch.no_grad()
def penultimate_conditioning(text: TextTransformer, ids: torch.Tensor) -> torch.Tensor:
    """MVDream's FrozenOpenCLIPEmbedder(layer="penultimate"): all blocks but the last, then ln_final."""
    x = text.token_embedding(ids) + text.positional_embedding
    for block in text.transformer.resblocks[:-1]:
        x = block(x, attn_mask=text.attn_mask)
    return text.ln_final(x)
