"""The training loop both phases run: draw a batch, losses with the recorder on, backward, clip, step."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from dreamedit3d_core.mvdiffusion import CrossAttentionRecorder, MultiViewDiffusion
from dreamedit3d_core.personalize.config import TrainingConfig
from dreamedit3d_core.personalize.data import TrainingData
from dreamedit3d_core.personalize.objective import autocast, personalization_losses, sample_batch

StepCallback = Callable[[int, int, dict[str, float]], None]
LOSS_KEYS = ("loss", "diffusion_loss", "attention_loss", "prior_loss")


class PersonalizationCancelled(RuntimeError):
    """Raised by `invert_tokens` / `finetune_model` when `should_cancel()` answers True."""


@dataclass(frozen=True)
class PriorSet:
    """Class samples of the base model for prior preservation."""

    latents: torch.Tensor  # (E, V, C, h, w)
    prompts: tuple[str, ...]  # (E,): the class prompt each sample was made from
    weight: float

    def draw(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, str, float]:
        index = int(torch.randint(0, self.latents.shape[0], (1,), generator=generator))
        latents = self.latents[index]  # (V, C, h, w)
        noise = torch.randn(latents.shape, generator=generator, device=generator.device).to(latents.device)
        return latents, noise, self.prompts[index], self.weight


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_steps(
    model: MultiViewDiffusion,
    variants: Sequence[TrainingData],
    tokens: Sequence[str],
    ids: Sequence[int],
    config: TrainingConfig,
    parameters: Sequence[torch.nn.Parameter],
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    log: list[dict[str, float]],
    *,
    start_step: int = 0,
    after_step: Callable[[], None] | None = None,
    prior: PriorSet | None = None,
    on_step: StepCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
    save: Callable[[int], None] | None = None,
    save_every: int | None = None,
) -> None:
    """Steps `start_step + 1 ... config.steps`, appending a row per step to `log`.

    `save(step)` is called every `save_every` steps and before a cancellation, so that nothing is lost.
    """
    device = model.device
    total = config.steps
    num_train_timesteps = model.scheduler.config.num_train_timesteps
    recorder = CrossAttentionRecorder(
        model.unet, resolution=config.attention_resolution, blocks=config.attention_blocks
    )
    for step in range(start_step, total):
        if should_cancel is not None and should_cancel():
            if save is not None:
                save(step)
            raise PersonalizationCancelled(f"personalisation cancelled before step {step + 1} of {total}")
        began = time.perf_counter()
        batch, data = sample_batch(variants, tokens, config, generator, num_train_timesteps)
        prior_inputs = prior.draw(generator) if prior is not None else None
        optimizer.zero_grad(set_to_none=True)
        # backward inside the recorder: checkpointed blocks run their forward again and must record again
        with recorder:
            with autocast(device, config.mixed_precision):
                losses = personalization_losses(model, data, batch, ids, config, recorder, prior_inputs)
            losses.loss.backward()
        recorder.clear()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
        optimizer.step()
        if after_step is not None:
            after_step()
        synchronize(device)
        row = {
            "step": step + 1,
            "loss": float(losses.loss.detach()),
            "diffusion_loss": float(losses.diffusion.detach()),
            "attention_loss": float(losses.attention.detach()),
            "prior_loss": float(losses.prior.detach()),
            "lr": float(optimizer.param_groups[0]["lr"]),
            "seconds": time.perf_counter() - began,
        }
        log.append(row)
        if on_step is not None:
            on_step(step + 1, total, {key: row[key] for key in LOSS_KEYS})
        if save is not None and save_every is not None and (step + 1) % save_every == 0 and step + 1 < total:
            save(step + 1)
