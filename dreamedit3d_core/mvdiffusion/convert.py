"""Convert MVDream's official checkpoint (LDM layout, e.g. sd-v2.1-base-4view.pt) to our diffusers bundle.

The UNet goes through diffusers' own LDM utilities, with the diffusers config built from the official YAML
before the camera embedding is added; the camera MLP `camera_embed.0/.2` then becomes the projection class
embedding `class_embedding.linear_1/.2`. Every UNet key of the checkpoint must be used and every diffusers
weight filled, or the conversion fails with the leftovers listed. The text encoder, tokenizer and VAE come
from a local Stable Diffusion 2.1-base folder in diffusers layout, or else from the checkpoint itself
(official_parts.py).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from itertools import chain
from pathlib import Path
from typing import Any

import torch
import yaml
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, create_unet_diffusers_config_from_ldm
from safetensors.torch import load_file
from transformers import CLIPTextModel, CLIPTokenizer

from dreamedit3d_core.mvdiffusion.architecture import MultiViewDiffusionConfig
from dreamedit3d_core.mvdiffusion.model import MultiViewDiffusion, config_from_components, ddim_scheduler
from dreamedit3d_core.mvdiffusion.official_parts import (
    TEXT_PREFIX,
    VAE_PREFIX,
    convert_official_text_encoder,
    convert_official_vae,
    openclip_tokenizer,
)

logger = logging.getLogger(__name__)

UNET_PREFIX = "model.diffusion_model."
CAMERA_KEYS = {
    "class_embedding.linear_1.weight": "camera_embed.0.weight",
    "class_embedding.linear_1.bias": "camera_embed.0.bias",
    "class_embedding.linear_2.weight": "camera_embed.2.weight",
    "class_embedding.linear_2.bias": "camera_embed.2.bias",
}
# LatentDiffusionInterface buffers: all derived from the beta schedule, which we rebuild from the YAML.
SCHEDULE_KEYS = {
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
}
# The VAE and text encoder inside the official checkpoint (converted, or replaced by an SD 2.1-base folder's).
PART_PREFIXES = (VAE_PREFIX, TEXT_PREFIX)
# MultiViewUNetModel options whose non-default values the diffusers UNet cannot express.
UNSUPPORTED = {
    "num_classes": None, "use_scale_shift_norm": False, "resblock_updown": False, "conv_resample": True,
    "dims": 2, "disable_self_attentions": None, "num_attention_blocks": None, "disable_middle_self_attn": False,
    "use_new_attention_order": False, "adm_in_channels": None, "n_embed": None,
}  # fmt: skip


def load_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Official weights as a flat {key: tensor}: safetensors, or a legacy pickle read with weights_only."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        state = load_file(str(path))
    else:
        try:
            try:  # memory-mapped: a 5 GB checkpoint is not read into memory twice
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as error:
                if "mmap" not in str(error):
                    raise
                state = torch.load(path, map_location="cpu", weights_only=True)  # pre-zip legacy format
        except Exception as error:  # a pickle with objects other than tensors, or not a checkpoint at all
            raise ValueError(
                f"{path} is not a plain PyTorch state dict that loads with weights_only=True: {error}"
            ) from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]  # PyTorch Lightning's wrapping of LDM checkpoints
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a flat dict of tensors")
    return dict(state)


def read_official_config(path: str | Path) -> dict[str, Any]:
    """The official YAML (`model.params.unet_config.params`, ...) as a dict, checked for what we need."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config {path} does not exist")
    config = yaml.safe_load(path.read_text())
    try:
        params = config["model"]["params"]["unet_config"]["params"]
    except (KeyError, TypeError):
        raise ValueError(f"{path} has no model.params.unet_config.params: not an MVDream/LDM config") from None
    required = ("model_channels", "channel_mult", "attention_resolutions", "num_res_blocks", "context_dim",
                "in_channels", "out_channels", "camera_dim")  # fmt: skip
    missing = [key for key in required if key not in params]
    if missing:
        raise ValueError(f"{path}: model.params.unet_config.params lacks {', '.join(missing)}")
    if params.get("camera_dim") is None:
        raise ValueError(f"{path}: camera_dim is not set: not a multi-view (MVDream) UNet")
    if not params.get("use_spatial_transformer", False):
        raise ValueError(f"{path}: use_spatial_transformer is false; MVDream's UNet uses spatial transformers")
    for key, default in UNSUPPORTED.items():
        if params.get(key, default) != default:
            raise ValueError(f"{path}: {key}={params[key]!r} is not supported by the conversion")
    for key in ("num_res_blocks", "transformer_depth"):
        if not isinstance(params.get(key, 1), int):
            raise ValueError(f"{path}: {key} must be one integer for all levels, got {params[key]!r}")
    if isinstance(params["context_dim"], list) and len(set(params["context_dim"])) != 1:
        raise ValueError(f"{path}: context_dim must be one width, got {params['context_dim']!r}")
    return config


def official_image_size(config: Mapping[str, Any]) -> int:
    """Pixel size the model was trained at: the VAE's resolution, else the UNet's latent size times 8."""
    model_params = config["model"]["params"]
    ddconfig = model_params.get("first_stage_config", {}).get("params", {}).get("ddconfig", {})
    if "resolution" in ddconfig:
        return int(ddconfig["resolution"])
    factor = 2 ** (len(ddconfig.get("ch_mult", [1, 2, 4, 4])) - 1)
    return int(model_params["unet_config"]["params"].get("image_size", 32)) * factor


def unet_config_from_official(config: Mapping[str, Any]) -> dict[str, Any]:
    """diffusers UNet2DConditionModel config for the official YAML, camera embedding included."""
    params = config["model"]["params"]["unet_config"]["params"]
    model_params = dict(config["model"]["params"])
    model_params.setdefault("first_stage_config", {"params": {"ddconfig": {"ch_mult": [1, 2, 4, 4]}}})
    image_size = official_image_size(config)
    with warnings.catch_warnings():  # passing image_size is deprecated in diffusers but avoids guessing it
        warnings.simplefilter("ignore", FutureWarning)
        unet_config = create_unet_diffusers_config_from_ldm({"model": {"params": model_params}}, {}, image_size)
    # diffusers infers the head count only for linear projections; MultiViewUNetModel's rule is general
    channels = [params["model_channels"] * m for m in params["channel_mult"]]
    head_channels = params.get("num_head_channels", -1)
    heads = [c // head_channels for c in channels] if head_channels != -1 else [params["num_heads"]] * len(channels)
    unet_config["attention_head_dim"] = heads
    unet_config["transformer_layers_per_block"] = params.get("transformer_depth", 1)
    unet_config["use_linear_projection"] = bool(params.get("use_linear_in_transformer", False))
    return unet_config


def convert_unet_state_dict(
    checkpoint: Mapping[str, torch.Tensor], unet_config: Mapping[str, Any]
) -> dict[str, torch.Tensor]:
    """Official UNet weights -> diffusers names (camera MLP included); leftovers raise ValueError."""
    official = {k: v for k, v in checkpoint.items() if k.startswith(UNET_PREFIX)}
    if not official:
        raise ValueError(f"the checkpoint has no {UNET_PREFIX}* weights: not an LDM/MVDream checkpoint")
    converted = convert_ldm_unet_checkpoint(official, dict(unet_config))
    for diffusers_key, official_key in CAMERA_KEYS.items():
        converted[diffusers_key] = official.get(UNET_PREFIX + official_key)
    unfilled = sorted(k for k, v in converted.items() if v is None)
    if unfilled:
        raise ValueError(f"the checkpoint lacks the weights for {len(unfilled)} UNet parameters: {_listing(unfilled)}")
    used = {id(v) for v in converted.values()}
    leftover = sorted(k for k, v in official.items() if id(v) not in used)
    if leftover:
        raise ValueError(f"{len(leftover)} official UNet weights were not converted: {_listing(leftover)}")
    return converted


def build_converted_unet(
    converted: Mapping[str, torch.Tensor],
    unet_config: Mapping[str, Any],
    dtype: torch.dtype,
    official: Mapping[str, torch.Tensor] | None = None,
) -> UNet2DConditionModel:
    """The diffusers UNet holding exactly `converted`; missing or unexpected weights raise ValueError.

    `official` (the checkpoint) only serves to name the official source of unexpected weights.
    """
    config = dict(unet_config, class_embed_type="projection")
    config["projection_class_embeddings_input_dim"] = int(converted["class_embedding.linear_1.weight"].shape[1])
    with torch.device("meta"):  # no random init of ~900M parameters that are overwritten anyway
        unet = UNet2DConditionModel.from_config(config)
    try:
        result = unet.load_state_dict(dict(converted), strict=False, assign=True)
    except RuntimeError as error:
        raise ValueError(f"official weights do not fit the UNet the YAML describes: {error}") from None
    if result.unexpected_keys:
        source = {id(v): k for k, v in (official or {}).items()}
        names = [
            f"{k} (official {source[id(converted[k])]})" if id(converted[k]) in source else k
            for k in sorted(result.unexpected_keys)
        ]
        raise ValueError(f"{len(names)} converted weights have no place in the UNet: {_listing(names)}")
    empty = [n for n, t in chain(unet.named_parameters(), unet.named_buffers()) if t.is_meta]
    if result.missing_keys or empty:
        names = sorted(set(result.missing_keys) | set(empty))
        raise ValueError(f"{len(names)} UNet weights were not filled by the checkpoint: {_listing(names)}")
    return (unet if unet.dtype == dtype else unet.to(dtype)).eval()


def check_other_keys(
    checkpoint: Mapping[str, torch.Tensor], config: MultiViewDiffusionConfig, source: Path, replaced: bool
) -> None:
    """Non-UNet keys: schedule buffers must match the YAML's schedule; VAE/text keys were converted (or are
    `replaced` by the SD 2.1-base folder's); anything else is an error."""
    rest = [k for k in checkpoint if not k.startswith(UNET_PREFIX)]
    parts = [k for k in rest if k.startswith(PART_PREFIXES)]
    schedule = [k for k in rest if k in SCHEDULE_KEYS]
    unknown = sorted(set(rest) - set(parts) - set(schedule))
    if unknown:
        raise ValueError(
            f"{source} has {len(unknown)} weights that are neither UNet, VAE, text encoder nor noise schedule: "
            f"{_listing(unknown)}"
        )
    scheduler = ddim_scheduler(config)
    for key, expected in (("betas", scheduler.betas), ("alphas_cumprod", scheduler.alphas_cumprod)):
        if key in checkpoint:
            value = checkpoint[key].double().flatten()
            if value.shape != expected.shape or (value - expected.double()).abs().max() > 1e-5:
                raise ValueError(f"{source}: the checkpoint's {key} do not match the YAML's noise schedule")
    if replaced and parts:
        logger.info("%s: %d VAE/text-encoder weights replaced by the SD 2.1-base folder's", source, len(parts))


def load_sd_base_components(
    sd_base_dir: str | Path, dtype: torch.dtype = torch.float32
) -> tuple[AutoencoderKL, CLIPTextModel, CLIPTokenizer]:
    root = Path(sd_base_dir)
    missing = [c for c in ("vae", "text_encoder", "tokenizer") if not (root / c).is_dir()]
    if missing:
        folders = ", ".join(f"{m}/" for m in missing)
        raise ValueError(f"{root} is not a Stable Diffusion 2.1-base folder in diffusers layout: missing {folders}")
    vae = AutoencoderKL.from_pretrained(root / "vae", torch_dtype=dtype)
    text_encoder = CLIPTextModel.from_pretrained(root / "text_encoder", dtype=dtype)
    tokenizer = CLIPTokenizer.from_pretrained(root / "tokenizer")
    return vae.eval(), text_encoder.eval(), tokenizer


def convert_mvdream_checkpoint(
    checkpoint_path: str | Path,
    config_yaml_path: str | Path | None,
    sd_base_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    *,
    num_views: int = 4,
    dtype: torch.dtype = torch.float32,
) -> MultiViewDiffusion:
    """Official MVDream checkpoint + its YAML -> MultiViewDiffusion; saved in diffusers layout if out_dir.

    The VAE, text encoder and tokenizer come from `sd_base_dir` (a Stable Diffusion 2.1-base folder in
    diffusers layout) when given, else from the checkpoint itself (it carries them) and open_clip's BPE
    vocabulary. `checkpoint_path` may also be an already converted folder, which is loaded (and copied).
    """
    source = Path(checkpoint_path)
    if source.is_dir():
        model = MultiViewDiffusion.from_pretrained(source, dtype=dtype)
        if out_dir is not None:
            model.save_pretrained(out_dir)
        return model
    if config_yaml_path is None:
        raise ValueError(f"converting {source} needs the official YAML config (config_yaml_path)")
    official = read_official_config(config_yaml_path)
    unet_config = unet_config_from_official(official)
    image_size = official_image_size(official)
    checkpoint = load_checkpoint(source)
    converted = convert_unet_state_dict(checkpoint, unet_config)
    unet = build_converted_unet(converted, unet_config, dtype, checkpoint)

    if sd_base_dir is not None:
        vae, text_encoder, tokenizer = load_sd_base_components(sd_base_dir, dtype)
        origin = str(sd_base_dir)
    else:
        tokenizer = openclip_tokenizer()
        vae, _ = convert_official_vae(checkpoint, official, image_size, dtype)
        text_encoder, _ = convert_official_text_encoder(checkpoint, tokenizer, dtype)
        origin = str(source)
    if text_encoder.config.hidden_size != unet.config.cross_attention_dim:
        raise ValueError(
            f"{origin}: text encoder width {text_encoder.config.hidden_size} does not match the UNet's "
            f"context_dim {unet.config.cross_attention_dim}"
        )
    if vae.config.latent_channels != unet.config.in_channels:
        raise ValueError(f"{origin}: VAE latent channels do not match the UNet's input channels")

    schedule = official["model"]["params"]
    if schedule.get("parameterization", "eps") != "eps":
        raise ValueError(f"{config_yaml_path}: only eps-prediction checkpoints are supported")
    config = config_from_components(unet, vae, text_encoder, num_views, image_size)
    config = config.model_copy(
        update={
            "beta_start": float(schedule.get("linear_start", config.beta_start)),
            "beta_end": float(schedule.get("linear_end", config.beta_end)),
            "num_train_timesteps": int(schedule.get("timesteps", config.num_train_timesteps)),
            "scaling_factor": float(schedule.get("scale_factor", config.scaling_factor)),
        }
    )
    check_other_keys(checkpoint, config, source, replaced=sd_base_dir is not None)
    vae.register_to_config(scaling_factor=config.scaling_factor)
    model = MultiViewDiffusion(unet, vae, text_encoder, tokenizer, ddim_scheduler(config), config)
    if out_dir is not None:
        model.save_pretrained(out_dir)
    return model


def _listing(names: list[str], shown: int = 20) -> str:
    more = f", ... ({len(names) - shown} more)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
