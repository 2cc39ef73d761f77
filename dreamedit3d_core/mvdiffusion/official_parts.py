"""The VAE, text encoder and tokenizer of an official MVDream checkpoint, without a Stable Diffusion folder.

sd-v2.1-base-4view.pt carries the whole latent diffusion model: `first_stage_model.*` (the SD 2.1 VAE) and
`cond_stage_model.model.*` (OpenCLIP ViT-H/14's text tower, of which MVDream uses the penultimate layer,
followed by the final layer norm). diffusers' own LDM utilities convert both; the tokenizer is CLIP's BPE,
built from the vocabulary file the open_clip package ships. Used when no sd_base_dir is given.
"""

from __future__ import annotations

import gzip
import re
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from diffusers import AutoencoderKL
from diffusers.loaders.single_file_utils import (
    convert_ldm_vae_checkpoint,
    convert_open_clip_checkpoint,
    create_vae_diffusers_config_from_ldm,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model.model."
# OpenCLIP keys MVDream's conditioning never reads: it stops before the last block and never projects
# (attn_mask: the causal mask, saved by some open_clip versions; CLIPTextModel builds its own).
TEXT_UNUSED = ("text_projection", "logit_scale", "attn_mask")
TEXT_USED = ("token_embedding.weight", "positional_embedding", "ln_final.weight", "ln_final.bias")
RESBLOCK = re.compile(re.escape(TEXT_PREFIX) + r"transformer\.resblocks\.(\d+)\.")
OPENCLIP_HEAD_WIDTH = 64  # OpenCLIP text towers use 64-channel heads (ViT-H/14: width 1024, 16 heads)


def _storage(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage().data_ptr()


def _load_exact(model: torch.nn.Module, weights: Mapping[str, torch.Tensor], what: str) -> None:
    try:
        result = model.load_state_dict(dict(weights), strict=False, assign=True)
    except RuntimeError as error:
        raise ValueError(f"the checkpoint's {what} weights do not fit: {error}") from None
    empty = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    problems = sorted(set(result.missing_keys) | set(empty)) + sorted(result.unexpected_keys)
    if problems:
        raise ValueError(f"{what}: {len(problems)} weights missing or without a place: {', '.join(problems[:20])}")


def convert_official_vae(
    checkpoint: Mapping[str, torch.Tensor], official_config: Mapping[str, Any], image_size: int, dtype: torch.dtype
) -> tuple[AutoencoderKL, set[str]]:
    """`first_stage_model.*` -> AutoencoderKL, and the checkpoint keys it used (all of them, or ValueError)."""
    official = {k: v for k, v in checkpoint.items() if k.startswith(VAE_PREFIX)}
    if not official:
        raise ValueError("the checkpoint has no first_stage_model.* (VAE) weights: pass sd_base_dir")
    ddconfig = official_config["model"]["params"].get("first_stage_config", {}).get("params", {}).get("ddconfig", {})
    needed = ("ch", "ch_mult", "num_res_blocks", "z_channels", "in_channels", "out_ch")
    missing = [k for k in needed if k not in ddconfig]
    if missing:
        raise ValueError(
            f"the YAML's model.params.first_stage_config.params.ddconfig lacks {', '.join(missing)}, needed to "
            "convert the checkpoint's VAE; complete it or pass sd_base_dir"
        )
    with warnings.catch_warnings():  # image_size is a deprecated argument, but the alternative is a guess
        warnings.simplefilter("ignore", FutureWarning)
        config = create_vae_diffusers_config_from_ldm(official_config, {}, image_size=image_size)
    converted = convert_ldm_vae_checkpoint(official, config)
    used = {_storage(v) for v in converted.values() if v is not None}  # attention weights come back as views
    leftover = sorted(k for k, v in official.items() if _storage(v) not in used)
    if leftover:
        raise ValueError(f"{len(leftover)} official VAE weights were not converted: {', '.join(leftover[:20])}")
    with torch.device("meta"):
        vae = AutoencoderKL.from_config(config)
    _load_exact(vae, {k: v for k, v in converted.items() if v is not None}, "VAE")
    return (vae if vae.dtype == dtype else vae.to(dtype)).eval(), set(official)


def convert_official_text_encoder(
    checkpoint: Mapping[str, torch.Tensor], tokenizer: CLIPTokenizer, dtype: torch.dtype
) -> tuple[CLIPTextModel, set[str]]:
    """OpenCLIP text tower -> CLIPTextModel of its penultimate layer (as SD 2.x / MVDream use it)."""
    official = {k: v for k, v in checkpoint.items() if k.startswith(TEXT_PREFIX)}
    missing = [k for k in TEXT_USED if TEXT_PREFIX + k not in official]
    if missing:
        raise ValueError(f"the checkpoint lacks the OpenCLIP text weights {', '.join(missing)}: pass sd_base_dir")
    blocks = sorted({int(m.group(1)) for k in official if (m := RESBLOCK.match(k))})
    if len(blocks) < 2 or blocks != list(range(len(blocks))):
        raise ValueError(f"the checkpoint's OpenCLIP text tower has blocks {blocks}: expected 0..N-1 with N >= 2")
    last = f"{TEXT_PREFIX}transformer.resblocks.{blocks[-1]}."
    unused = {k for k in official if k.startswith(last) or k.removeprefix(TEXT_PREFIX) in TEXT_UNUSED}
    used = {k: v for k, v in official.items() if k not in unused}
    unknown = sorted(k for k in used if not RESBLOCK.match(k) and k.removeprefix(TEXT_PREFIX) not in TEXT_USED)
    if unknown:
        raise ValueError(f"unknown OpenCLIP text weights in the checkpoint: {', '.join(unknown[:20])}")

    vocab_size, width = used[TEXT_PREFIX + "token_embedding.weight"].shape
    if vocab_size != len(tokenizer):
        raise ValueError(f"the text tower has {vocab_size} token rows but the tokenizer has {len(tokenizer)} tokens")
    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=width,
        intermediate_size=used[f"{TEXT_PREFIX}transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        num_hidden_layers=len(blocks) - 1,  # the penultimate layer's output is the conditioning
        num_attention_heads=max(1, width // OPENCLIP_HEAD_WIDTH),
        max_position_embeddings=used[TEXT_PREFIX + "positional_embedding"].shape[0],
        hidden_act="gelu",
        projection_dim=width,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    text_encoder = CLIPTextModel(config)  # not on meta: its position_ids buffer is not in any checkpoint
    converted = convert_open_clip_checkpoint(text_encoder, used, prefix=TEXT_PREFIX)
    if not hasattr(text_encoder, "text_model"):  # transformers >= 5.6 flattened CLIPTextModel
        converted = {k.removeprefix("text_model."): v for k, v in converted.items()}
    _load_exact(text_encoder, converted, "text encoder")
    return (text_encoder if text_encoder.dtype == dtype else text_encoder.to(dtype)).eval(), set(official)


def openclip_tokenizer(max_length: int = 77) -> CLIPTokenizer:
    """CLIP's BPE tokenizer (as SD 2.x's, padding with "!"), from open_clip's packaged vocabulary file."""
    try:
        from open_clip.tokenizer import bytes_to_unicode, default_bpe
    except ImportError as error:
        raise ValueError(
            f"building the OpenCLIP tokenizer needs the open_clip package ({error}); pass sd_base_dir"
        ) from None
    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]  # CLIP's 48894 merges
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(
        vocab={t: i for i, t in enumerate(tokens)},
        merges=merges,
        pad_token="!",
        model_max_length=max_length,
    )
