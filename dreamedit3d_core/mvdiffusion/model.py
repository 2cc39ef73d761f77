"""The multi-view diffusion bundle: MVDream's UNet (diffusers), VAE, text encoder, tokenizer, scheduler.

The camera MLP (16 -> 1280 -> 1280, SiLU) is diffusers' projection class embedding: cameras go in as
`class_labels` and are added to the timestep embedding. Multi-view self-attention lives in the attention
processors, which are attached on construction (and so after every `from_pretrained`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from dreamedit3d_core.mvdiffusion.attention import attach_multiview_processors
from dreamedit3d_core.mvdiffusion.architecture import CONFIG_NAME, MultiViewDiffusionConfig
from dreamedit3d_core.mvdiffusion.settings import AttentionBackend, PerformanceConfig
from dreamedit3d_core.mvdiffusion.pixel_autoencoder import PixelUnshuffleAutoencoder
from dreamedit3d_core.mvdiffusion.vocabulary import PROMPT_WORDS, build_word_tokenizer

logger = logging.getLogger(__name__)

COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
SDPA_KERNELS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "math": SDPBackend.MATH,
}


def ddim_scheduler(config: MultiViewDiffusionConfig) -> DDIMScheduler:
    """SD 2.1-base's schedule with MVDream's DDIM spacing (timesteps 1, 21, ..., 981 for 50 steps); with
    zero terminal SNR, "trailing" spacing instead, so that sampling starts at the last (pure noise) step."""
    zero_snr = config.zero_terminal_snr
    return DDIMScheduler(
        num_train_timesteps=config.num_train_timesteps,
        beta_start=config.beta_start,
        beta_end=config.beta_end,
        beta_schedule="scaled_linear",  # = LDM's "linear": linspace of square roots, squared
        clip_sample=False,
        set_alpha_to_one=zero_snr,
        steps_offset=0 if zero_snr else 1,
        timestep_spacing="trailing" if zero_snr else "leading",
        prediction_type=config.prediction_type,
        rescale_betas_zero_snr=zero_snr,
    )


def build_unet(config: MultiViewDiffusionConfig) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=config.latent_size,
        in_channels=config.latent_channels,
        out_channels=config.latent_channels,
        down_block_types=tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in config.attention_levels),
        up_block_types=tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(config.attention_levels)),
        block_out_channels=config.block_out_channels,
        layers_per_block=config.layers_per_block,
        # diffusers' SD 2 configs call the number of heads `attention_head_dim`
        attention_head_dim=tuple(c // config.head_channels for c in config.block_out_channels),
        cross_attention_dim=config.cross_attention_dim,
        use_linear_projection=config.use_linear_projection,
        transformer_layers_per_block=config.transformer_layers_per_block,
        norm_num_groups=config.norm_num_groups,
        class_embed_type="projection",
        projection_class_embeddings_input_dim=config.camera_dim,
    )


def build_vae(config: MultiViewDiffusionConfig) -> AutoencoderKL | PixelUnshuffleAutoencoder:
    if config.vae_kind == "pixel_unshuffle":
        return PixelUnshuffleAutoencoder(factor=config.pixel_factor, scaling_factor=config.scaling_factor)
    levels = len(config.vae_block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=config.vae_block_out_channels,
        layers_per_block=config.vae_layers_per_block,
        latent_channels=config.latent_channels,
        norm_num_groups=config.vae_norm_num_groups,
        sample_size=config.image_size,
        scaling_factor=config.scaling_factor,
    )


def load_vae(folder: Path, dtype: torch.dtype) -> AutoencoderKL | PixelUnshuffleAutoencoder:
    """The saved image <-> latent map, of whichever class its config.json names."""
    config_file = folder / "config.json"
    class_name = json.loads(config_file.read_text()).get("_class_name") if config_file.is_file() else None
    if class_name == PixelUnshuffleAutoencoder.__name__:
        return PixelUnshuffleAutoencoder.from_pretrained(folder, torch_dtype=dtype)
    return AutoencoderKL.from_pretrained(folder, torch_dtype=dtype)


def build_text_encoder(config: MultiViewDiffusionConfig, tokenizer: CLIPTokenizer) -> CLIPTextModel:
    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=max(config.text_vocab_size or 0, len(tokenizer)),
            hidden_size=config.text_hidden_size,
            intermediate_size=config.text_intermediate_size,
            num_hidden_layers=config.text_layers,
            num_attention_heads=config.text_heads,
            max_position_embeddings=config.max_prompt_length,
            hidden_act=config.text_hidden_act,
            projection_dim=config.text_hidden_size,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )


def config_from_components(
    unet: UNet2DConditionModel, vae: AutoencoderKL, text_encoder: CLIPTextModel, num_views: int, image_size: int
) -> MultiViewDiffusionConfig:
    """Describe loaded components (e.g. a converted checkpoint) in our config's terms."""
    u, v, t = unet.config, vae.config, text_encoder.config
    heads = u.attention_head_dim if isinstance(u.attention_head_dim, (list, tuple)) else [u.attention_head_dim]
    layers = u.transformer_layers_per_block
    return MultiViewDiffusionConfig(
        num_views=num_views,
        image_size=image_size,
        camera_dim=u.projection_class_embeddings_input_dim,
        block_out_channels=tuple(u.block_out_channels),
        attention_levels=tuple(b.startswith("CrossAttn") for b in u.down_block_types),
        layers_per_block=u.layers_per_block,
        head_channels=u.block_out_channels[0] // heads[0],
        transformer_layers_per_block=layers if isinstance(layers, int) else layers[0],
        use_linear_projection=u.use_linear_projection,
        cross_attention_dim=u.cross_attention_dim,
        norm_num_groups=u.norm_num_groups,
        latent_channels=u.in_channels,
        vae_block_out_channels=tuple(v.block_out_channels),
        vae_layers_per_block=v.layers_per_block,
        vae_norm_num_groups=v.norm_num_groups,
        scaling_factor=v.scaling_factor,
        text_vocab_size=t.vocab_size,
        text_hidden_size=t.hidden_size,
        text_layers=t.num_hidden_layers,
        text_heads=t.num_attention_heads,
        text_intermediate_size=t.intermediate_size,
        max_prompt_length=t.max_position_embeddings,
        text_hidden_act=t.hidden_act,
    )


class MultiViewDiffusion:
    """MVDream bundle: `unet`, `vae`, `text_encoder`, `tokenizer`, `scheduler`, `num_views`, `config`."""

    def __init__(
        self,
        unet: UNet2DConditionModel,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        scheduler: DDIMScheduler,
        config: MultiViewDiffusionConfig,
        attention: AttentionBackend = "auto",
    ) -> None:
        if unet.config.class_embed_type != "projection":
            raise ValueError("the UNet has no camera embedding (class_embed_type='projection'): not an MVDream UNet")
        if unet.config.projection_class_embeddings_input_dim != config.camera_dim:
            raise ValueError(
                f"the UNet takes {unet.config.projection_class_embeddings_input_dim}-number cameras, "
                f"the config says {config.camera_dim}"
            )
        if unet.config.cross_attention_dim != text_encoder.config.hidden_size:
            raise ValueError(
                f"UNet cross-attention width {unet.config.cross_attention_dim} does not match the text encoder's "
                f"hidden size {text_encoder.config.hidden_size}"
            )
        self.unet, self.vae, self.text_encoder = unet, vae, text_encoder
        self.tokenizer, self.scheduler, self.config = tokenizer, scheduler, config
        self.sdpa_kernels: list[SDPBackend] = []
        attach_multiview_processors(unet, config.num_views, attention)

    # ---- construction -------------------------------------------------------------------------------

    @classmethod
    def build_random(
        cls,
        config: MultiViewDiffusionConfig,
        seed: int = 0,
        device: str | torch.device = "cpu",
        words: Sequence[str] = PROMPT_WORDS,
    ) -> MultiViewDiffusion:
        """Random init at the given sizes (full-size MVDream for benchmarks); same seed, same weights.

        Weights are initialised directly on `device` (fast for full size on a GPU); the global RNG is left
        as it was. The tokenizer is the built-in word-level one over `words` (one token each).
        """
        device = torch.device(device)
        tokenizer = build_word_tokenizer(tuple(words), max_length=config.max_prompt_length)
        cuda_devices = []  # fork_rng wants CUDA device indices
        if device.type == "cuda":
            cuda_devices = [torch.cuda.current_device() if device.index is None else device.index]
        with torch.random.fork_rng(devices=cuda_devices):
            torch.manual_seed(seed)
            with device:
                unet = build_unet(config)
                vae = build_vae(config)
                text_encoder = build_text_encoder(config, tokenizer)
        return cls(unet.eval(), vae.eval(), text_encoder.eval(), tokenizer, ddim_scheduler(config), config)

    @classmethod
    def build_tiny(cls, seed: int = 0) -> MultiViewDiffusion:
        """A few channels, 64 px, 4 views, word-level tokenizer: the test and CPU-benchmark preset."""
        return cls.build_random(MultiViewDiffusionConfig.tiny(), seed=seed)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        attention: AttentionBackend = "auto",
    ) -> MultiViewDiffusion:
        """Load a diffusers-layout folder (unet/, vae/, text_encoder/, tokenizer/, scheduler/, our JSON)."""
        root = Path(path)
        missing = [c for c in COMPONENTS if not (root / c).is_dir()]
        if missing:
            folders = ", ".join(f"{m}/" for m in missing)
            raise ValueError(f"{root} is not a multi-view diffusion folder: missing {folders}")
        unet = UNet2DConditionModel.from_pretrained(root / "unet", torch_dtype=dtype)
        vae = load_vae(root / "vae", dtype)
        text_encoder = CLIPTextModel.from_pretrained(root / "text_encoder", dtype=dtype)
        tokenizer = CLIPTokenizer.from_pretrained(root / "tokenizer")
        scheduler = DDIMScheduler.from_pretrained(root / "scheduler")
        if (root / CONFIG_NAME).is_file():
            config = MultiViewDiffusionConfig.load(root)
        elif isinstance(vae, PixelUnshuffleAutoencoder):
            raise ValueError(f"{root} has a pixel-unshuffle autoencoder but no {CONFIG_NAME} describing the model")
        else:
            image_size = unet.config.sample_size * 2 ** (len(vae.config.block_out_channels) - 1)
            config = config_from_components(unet, vae, text_encoder, num_views=4, image_size=image_size)
            logger.warning("%s has no %s: assuming 4 views at %d px", root, CONFIG_NAME, image_size)
        model = cls(unet.eval(), vae.eval(), text_encoder.eval(), tokenizer, scheduler, config, attention)
        return model.to(device)

    def save_pretrained(self, path: str | Path, *, dtype: torch.dtype | None = None) -> Path:
        """Write the diffusers folder layout with safetensors weights, plus our config JSON.

        `dtype` (e.g. torch.float16, to ship weights at half the size) casts copies; the model is untouched.
        `from_pretrained(dtype=torch.float32)` reads such weights back as float32.
        """
        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        for name in ("unet", "vae", "text_encoder"):
            module = getattr(self, name)
            if dtype is not None and module.dtype != dtype:
                module = copy.deepcopy(module).to(dtype)
            module.save_pretrained(root / name, safe_serialization=True)
        self.tokenizer.save_pretrained(root / "tokenizer")
        self.scheduler.save_pretrained(root / "scheduler")
        config = self.config
        if config.text_vocab_size is not None:  # personalisation adds tokens: record the real vocabulary
            config = config.model_copy(update={"text_vocab_size": self.text_encoder.config.vocab_size})
        config.save(root)
        return root

    # ---- placement and speed ------------------------------------------------------------------------

    @property
    def num_views(self) -> int:
        return self.config.num_views

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> MultiViewDiffusion:
        for module in (self.unet, self.vae, self.text_encoder):
            if device is not None:
                module.to(device)
            if dtype is not None and module.dtype != dtype:
                module.to(dtype)
        return self

    def set_attention_backend(self, attention: AttentionBackend) -> None:
        attach_multiview_processors(self.unet, self.num_views, attention)

    def apply_performance(self, performance: PerformanceConfig) -> MultiViewDiffusion:
        self.to(dtype=DTYPES[performance.dtype])
        self.set_attention_backend(performance.attention)
        self.sdpa_kernels = [SDPA_KERNELS[k] for k in performance.sdpa_kernels]
        if performance.gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
        else:
            self.unet.disable_gradient_checkpointing()
        if performance.compile:
            self.unet.compile()  # in place: parameter names and save_pretrained stay as they are
        return self

    @contextlib.contextmanager
    def _attention_kernels(self) -> Iterator[None]:
        if self.sdpa_kernels:
            with sdpa_kernel(self.sdpa_kernels):
                yield
        else:
            yield

    # ---- the pieces personalisation and sampling use -------------------------------------------------

    def tokenize(self, prompts: Sequence[str]) -> torch.Tensor:
        """Token ids (N, L), padded to the text encoder's length; too-long prompts are cut with a warning."""
        if isinstance(prompts, str) or not prompts:
            raise ValueError("prompts must be a non-empty list of strings")
        length = self.text_encoder.config.max_position_embeddings
        full = self.tokenizer(list(prompts), padding=False, truncation=False).input_ids
        for prompt, ids in zip(prompts, full, strict=True):
            if len(ids) > length:
                logger.warning("prompt %r has %d tokens; only the first %d are used", prompt, len(ids), length)
        return self.tokenizer(
            list(prompts), padding="max_length", max_length=length, truncation=True, return_tensors="pt"
        ).input_ids

    def encode_prompts(self, prompts: Sequence[str]) -> torch.Tensor:
        """Text embeddings (N, L, D) for the UNet's cross-attention (last hidden state, as SD 2.x)."""
        input_ids = self.tokenize(prompts).to(self.text_encoder.device)
        return self.text_encoder(input_ids).last_hidden_state

    def noise_prediction(
        self,
        latents: torch.Tensor,
        t: int | float | torch.Tensor,
        prompt_embeds: torch.Tensor,
        cameras: torch.Tensor,
    ) -> torch.Tensor:
        """Predicted noise (B*V, C, h, w) for latents (B*V, C, h, w), embeds (B*V, L, D), cameras (B*V, 16).

        The B*V images must be grouped by object: views 0..V-1 of object 0, then of object 1, ...
        """
        n = latents.shape[0]
        if latents.ndim != 4 or n % self.num_views:
            raise ValueError(
                f"latents must be (B*V, C, h, w) with V={self.num_views}, got shape {tuple(latents.shape)}"
            )
        if prompt_embeds.shape[0] != n or cameras.shape[0] != n:
            raise ValueError(
                f"latents, prompt_embeds and cameras need the same first dimension, got {n}, "
                f"{prompt_embeds.shape[0]} and {cameras.shape[0]}"
            )
        if cameras.ndim != 2 or cameras.shape[1] != self.config.camera_dim:
            raise ValueError(f"cameras must be (B*V, {self.config.camera_dim}), got shape {tuple(cameras.shape)}")
        dtype = self.unet.dtype
        with self._attention_kernels():
            return self.unet(
                latents.to(dtype),
                t,
                encoder_hidden_states=prompt_embeds.to(dtype),
                class_labels=cameras.to(device=latents.device, dtype=dtype),
            ).sample

    def encode_images(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images (N, 3, H, W) in [-1, 1] -> scaled latents (N, C, H/f, W/f), sampled with `generator`."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (N, 3, H, W) in [-1, 1], got shape {tuple(images.shape)}")
        posterior = self.vae.encode(images.to(device=self.vae.device, dtype=self.vae.dtype)).latent_dist
        return posterior.sample(generator) * self.vae.config.scaling_factor

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents (N, C, h, w) -> images (N, 3, H, W), nominally in [-1, 1] (not clamped)."""
        latents = latents.to(device=self.vae.device, dtype=self.vae.dtype)
        return self.vae.decode(latents / self.vae.config.scaling_factor).sample
