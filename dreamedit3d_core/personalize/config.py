"""Settings of the two personalisation phases: `invert` (learn one token per component) and `finetune`.

Defaults are the reference numbers (Break-a-Scene / DreamEdit3D): phase 1 = 400 steps at lr 5e-4 on the new
embedding rows only; phase 2 = 400 steps at lr 2e-6 on the UNet and the text encoder, gradient clipping 1.0;
attention loss weight 1e-2 on 16x16 cross-attention maps. Presets (dreamedit3d_core/presets/*.yaml) override
them, e.g. the `tiny` preset's handful of steps on 8x8 maps for the tiny model on a CPU.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dreamedit3d_core.asset_settings import asset_field
from dreamedit3d_core.execution import execution_field
from dreamedit3d_core.mvdiffusion.settings import DEFAULT_NEGATIVE_PROMPT

MixedPrecision = Literal["auto", "no", "bf16"]
MaskedMean = Literal["image", "mask"]


class ProbeConfig(BaseModel):
    """The fixed timesteps and noise at which attention isolation and probe losses are measured."""

    model_config = ConfigDict(extra="forbid")

    timesteps: tuple[int, ...] = (250, 500, 750)
    seed: int = 1234

    @field_validator("timesteps")
    @classmethod
    def _check_timesteps(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(t < 0 for t in value):
            raise ValueError(f"probe timesteps must be a non-empty list of non-negative steps, got {value}")
        return value


class TrainingConfig(BaseModel):
    """What both phases share: the losses, the prompts, randomness, speed and memory options."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(400, ge=0)
    lr: float = Field(5e-4, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    grad_clip: float | None = Field(1.0, gt=0)  # None: no clipping

    # Weight of the pixels outside every component in the diffusion loss. 0 is Break-a-Scene's masked loss
    # (a large pretrained model keeps the background plausible by itself); 1 also teaches the tokens the
    # plain white ground the asset was rendered on, which a small model needs (else its tokens fill the frame)
    background_weight: float = Field(0.0, ge=0, le=1)
    masked_mean: MaskedMean = "image"  # masked diffusion loss averaged over the image (reference) or the mask
    attention_weight: float = Field(1e-2, ge=0)  # lambda; 0 turns the alignment loss off
    attention_resolution: int = Field(16, ge=1)  # side of the cross-attention maps the loss compares
    attention_blocks: tuple[Literal["down", "mid", "up"], ...] = ("down", "up")

    template: str = "a photo of {}"  # "{}" is replaced by the chosen tokens joined with `joiner`
    joiner: str = " and "
    # not the paper's recipe: each token with its component's colour word ("a photo of <asset0> in brown and
    # <asset2> in orange", colours named from the albedo render by the mask stage), so that the word explains
    # the colour and the token learns what words cannot say; an edit word can then change the colour
    attribute_words: bool = False
    subset: Literal["random", "all"] = "random"  # random: a random non-empty subset of components per step
    # "flip": all views flipped together with mirrored cameras (exact; it shows the mirrored object)
    augmentation: Literal["none", "flip"] = "none"
    flip_probability: float = Field(0.5, ge=0, le=1)

    mixed_precision: MixedPrecision = "auto"  # auto: bf16 autocast on CUDA, float32 elsewhere
    gradient_checkpointing: bool = execution_field(False)  # the same gradients, less memory, more time
    seed: int = asset_field(0)
    probe: ProbeConfig = Field(default_factory=ProbeConfig)

    @field_validator("template")
    @classmethod
    def _check_template(cls, value: str) -> str:
        if value.count("{}") != 1:
            raise ValueError(f"template must contain exactly one '{{}}' for the tokens, got {value!r}")
        return value


class InvertConfig(TrainingConfig):
    """Phase 1: multi-view textual inversion with cross-attention alignment."""

    steps: int = Field(400, ge=0)
    lr: float = Field(5e-4, gt=0)
    class_word: str = asset_field("object")  # initializer for components whose word the tokenizer does not know
    # "learned": embeddings move freely (the paper's). "initializer", not the paper's recipe: only their direction
    # learns, each row kept at its initializer word's norm (Directional Textual Inversion, arXiv 2512.13672:
    # tokens whose norm grows outvote the words beside them)
    token_norm: Literal["learned", "initializer"] = "learned"


class FinetuneConfig(TrainingConfig):
    """Phase 2: fine-tuning of the multi-view UNet (and the text encoder) with the learned tokens."""

    steps: int = Field(400, ge=0)
    lr: float = Field(2e-6, gt=0)
    train_text_encoder: bool = True
    # "all": every UNet weight (the paper's). "cross_attention_kv", not the paper's recipe: only the keys and values
    # of the UNet's cross-attention, which read the text (Custom Diffusion); the rest of the UNet stays the base model's
    unet_weights: Literal["all", "cross_attention_kv"] = "all"
    # False: the token embedding table (learned tokens included) stays exactly as phase 1 left it
    train_token_embeddings: bool = False
    lora_rank: int | None = Field(None, ge=1)  # set: train LoRA adapters (peft) instead of all weights
    lora_lr: float = Field(1e-4, gt=0)  # LoRA adapters need a far larger step than full fine-tuning
    use_8bit_adam: bool = False  # bitsandbytes' AdamW8bit, CUDA only

    prior_preservation: bool = False
    # the class prompt, or several: class sample i is made from prompt i % len(prompts), and each step's prior
    # object is drawn with the prompt it was made from
    prior_prompt: str | tuple[str, ...] = asset_field("a photo of an object")
    prior_weight: float = Field(1.0, ge=0)
    prior_images: int = Field(2, ge=1)  # 4-view class samples made by the base model before training
    prior_sample_steps: int = Field(50, ge=1)
    # how the class samples are drawn: as the sample stage draws edits (the world preset sets its own)
    prior_guidance_scale: float = Field(7.5, ge=0)
    prior_negative_prompt: str = asset_field(DEFAULT_NEGATIVE_PROMPT)

    checkpoint_every: int = execution_field(50, ge=1)  # in-stage resume points

    @model_validator(mode="after")
    def _check(self) -> FinetuneConfig:
        if self.train_token_embeddings and not self.train_text_encoder:
            raise ValueError("train_token_embeddings needs train_text_encoder")
        if self.unet_weights != "all" and self.lora_rank is not None:
            raise ValueError("unet_weights 'cross_attention_kv' cannot be combined with LoRA (lora_rank)")
        if self.train_token_embeddings and self.lora_rank is not None:
            raise ValueError("train_token_embeddings cannot be combined with LoRA (adapters do not touch embeddings)")
        if not self.prior_prompts or not all(p.strip() for p in self.prior_prompts):
            raise ValueError("prior_prompt must be a non-empty prompt or a non-empty list of them")
        return self

    @property
    def prior_prompts(self) -> tuple[str, ...]:
        """The class prompts as a tuple (one when `prior_prompt` is a single string)."""
        return (self.prior_prompt,) if isinstance(self.prior_prompt, str) else tuple(self.prior_prompt)
