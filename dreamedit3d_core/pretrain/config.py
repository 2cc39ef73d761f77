"""Settings of base-model pretraining (the small multi-view model we train from scratch)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dreamedit3d_core.execution import execution_field


class PretrainConfig(BaseModel):
    """Plain DDPM epsilon training of the whole bundle (UNet + text encoder) on captioned 4-view objects."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(20000, ge=0)
    batch_objects: int = Field(32, ge=1)  # objects per step; each brings all its views
    lr: float = Field(3e-4, gt=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)  # cosine decay after warm-up ends at lr * min_lr_ratio
    warmup_steps: int = Field(500, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float | None = Field(1.0, gt=0)
    ema_decay: float = Field(0.999, ge=0, lt=1)  # the shipped weights are the exponential moving average
    caption_dropout: float = Field(0.1, ge=0, le=1)  # empty prompt, so classifier-free guidance has a target
    # False: the randomly initialised text encoder stays as it is (a fixed, distinct code per word and
    # position, like a frozen CLIP); trained jointly from scratch, it can collapse to nearly the same output
    # for every caption before the UNet learns to read it (seen on the H200: captions differed by < 0.06)
    train_text_encoder: bool = False
    flip: bool = True  # flip all views of an object together with mirrored cameras (exact augmentation)
    mixed_precision: Literal["auto", "no", "bf16"] = "auto"  # auto: bf16 autocast on CUDA
    checkpoint_every: int = execution_field(1000, ge=1)
    log_every: int = execution_field(50, ge=1)
    seed: int = 0

    def learning_rate(self, step: int) -> float:
        """Linear warm-up, then cosine decay to `lr * min_lr_ratio` at the last step."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        span = max(self.steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
