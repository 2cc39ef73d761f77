"""Train a multi-view diffusion bundle from scratch: the DDPM loss (epsilon or v, as the model's scheduler
predicts) over captioned 4-view objects.

Every step draws `batch_objects` objects; each brings all V views with their cameras, one shared timestep and
one of its captions (or the empty prompt, for classifier-free guidance). The UNet and the text encoder learn
together; the image <-> latent map is frozen (for the pixel-unshuffle map there is nothing to learn). An
exponential moving average of the weights is kept and becomes the model at the end.

Runs resume: checkpoints (personalize.checkpoint's atomic, pickle-free format) hold the weights, the average,
the optimizer and both random generators, so a resumed run continues the same sequence of batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dreamedit3d_core.mvdiffusion import MultiViewDiffusion
from dreamedit3d_core.personalize.checkpoint import (
    Checkpoint,
    check_fingerprint,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from dreamedit3d_core.personalize.data import mirror_cameras
from dreamedit3d_core.personalize.objective import autocast, diffusion_target
from dreamedit3d_core.pretrain.config import PretrainConfig

# step, total steps, mean loss since the last report (None before the first)
ProgressFn = Callable[[int, int, float | None], None]


@dataclass(frozen=True)
class PretrainData:
    """Objects as the render stage sees them: 4 views on white, their captions, the shared camera orbit."""

    images: np.ndarray  # (N, V, S, S, 3) uint8
    captions: Sequence[Sequence[str]]  # N lists, each with one or more captions of that object
    cameras: np.ndarray  # (V, 16) float32 MVDream camera vectors, the same for every object

    def __post_init__(self) -> None:
        if self.images.ndim != 5 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be (N, V, S, S, 3) uint8, got {self.images.shape} {self.images.dtype}")
        if len(self.captions) != len(self.images) or any(len(c) == 0 for c in self.captions):
            raise ValueError(f"need at least one caption for each of the {len(self.images)} objects")
        if self.cameras.shape != (self.images.shape[1], 16):
            raise ValueError(f"cameras must be ({self.images.shape[1]}, 16), got {self.cameras.shape}")

    @property
    def num_objects(self) -> int:
        return int(self.images.shape[0])


@dataclass
class PretrainResult:
    steps: int
    resumed_from_step: int | None
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, mean loss over the log window)
    seconds: float = 0.0  # wall time of this call
    device: str = "cpu"
    stopped_early: bool = False  # the time limit ended the run before `config.steps`


def _caption_ids(model: MultiViewDiffusion, captions: Sequence[Sequence[str]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K, L) token ids (objects with fewer captions repeat their first) and (N,) caption counts."""
    most = max(len(c) for c in captions)
    flat = [c[k] if k < len(c) else c[0] for c in captions for k in range(most)]
    ids = model.tokenize(flat)  # (N * K, L)
    return ids.reshape(len(captions), most, -1), torch.tensor([len(c) for c in captions])  # -> (N, K, L)


def _fingerprint(model: MultiViewDiffusion, data: PretrainData, config: PretrainConfig) -> dict[str, object]:
    # what a resumed run must share with the interrupted one (log and checkpoint intervals may change)
    settings = config.model_dump(mode="json", exclude={"checkpoint_every", "log_every"})  # JSON: tuples as lists
    return {**settings, "objects": data.num_objects, "model": model.config.model_dump(mode="json")}


def pretrain(
    model: MultiViewDiffusion,
    data: PretrainData,
    config: PretrainConfig,
    *,
    checkpoint_dir: Path | None = None,
    progress: ProgressFn | None = None,
    stop_after: int | None = None,
    time_limit_s: float | None = None,
) -> PretrainResult:
    """Train `model` in place on `data`; at the end its weights are the moving average.

    `checkpoint_dir`: resume from its latest checkpoint and write new ones there. `stop_after`: return after
    this many steps of this call without averaging (for tests of resumption; the run is left mid-way).
    `time_limit_s`: end early once this much wall time has passed, as if that step were the last (checkpoint,
    then the average becomes the model); `result.stopped_early` says so.
    """
    if model.dtype != torch.float32:
        raise ValueError(f"pretraining needs float32 weights (mixed precision autocasts), got {model.dtype}")
    started = time.perf_counter()
    device = model.device
    views = data.images.shape[1]
    if views != model.num_views:
        raise ValueError(f"the data has {views} views per object, the model {model.num_views}")
    if data.images.shape[2] != model.config.image_size:
        raise ValueError(f"images are {data.images.shape[2]} px, the model takes {model.config.image_size} px")

    images = torch.from_numpy(np.ascontiguousarray(data.images)).to(device)  # (N, V, S, S, 3) uint8
    cameras = torch.from_numpy(data.cameras.astype(np.float32)).to(device)  # (V, 16)
    mirrored = mirror_cameras(cameras)
    caption_ids, caption_counts = _caption_ids(model, data.captions)
    caption_ids = caption_ids.to(device)
    empty_ids = model.tokenize([""])[0].to(device)  # (L,)

    unet, text_encoder = model.unet, model.text_encoder
    model.vae.requires_grad_(False)
    unet.train().requires_grad_(True)
    text_encoder.train(config.train_text_encoder).requires_grad_(config.train_text_encoder)
    named = [(f"unet.{n}", p) for n, p in unet.named_parameters()]
    if config.train_text_encoder:
        named += [(f"text_encoder.{n}", p) for n, p in text_encoder.named_parameters()]
    params = [p for _, p in named]
    # everything the model holds, trained or not: a resumed run must continue with the same frozen text encoder
    every = [(f"unet.{n}", p) for n, p in unet.named_parameters()]
    every += [(f"text_encoder.{n}", p) for n, p in text_encoder.named_parameters()]
    optimizer = torch.optim.AdamW(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    average = [p.detach().clone() for p in params]

    batch_generator = torch.Generator().manual_seed(config.seed)
    noise_generator = torch.Generator(device=device).manual_seed(config.seed + 1)
    fingerprint = _fingerprint(model, data, config)
    result = PretrainResult(steps=0, resumed_from_step=None, device=str(device))
    start = 0
    if checkpoint_dir is not None and (folder := latest_checkpoint(checkpoint_dir)) is not None:
        saved = load_checkpoint(folder)
        check_fingerprint(folder, saved.fingerprint, fingerprint)
        with torch.no_grad():
            for name, p in every:
                p.copy_(saved.weights[name])
            for (name, _), avg in zip(named, average, strict=True):
                avg.copy_(saved.weights[f"ema.{name}"])
        optimizer.load_state_dict(saved.optimizer)
        batch_generator.set_state(saved.extras["batch_generator"])
        noise_generator.set_state(saved.extras["noise_generator"])
        result.losses = [(int(s), float(v)) for s, v in saved.records.get("losses", [])]
        start = result.resumed_from_step = saved.step
    result.steps = start

    scheduler = model.scheduler
    scale = model.vae.config.scaling_factor
    latent_shape = (config.batch_objects * views, model.config.latent_channels, *(model.config.latent_size,) * 2)
    window: list[torch.Tensor] = []
    last = min(config.steps, start + stop_after) if stop_after is not None else config.steps

    def checkpoint(step: int) -> None:
        if checkpoint_dir is None:
            return
        weights = dict(every) | {f"ema.{name}": a for (name, _), a in zip(named, average, strict=True)}
        extras = {"batch_generator": batch_generator.get_state(), "noise_generator": noise_generator.get_state()}
        state = Checkpoint(step, fingerprint, weights, optimizer.state_dict(), extras, {"losses": result.losses})
        save_checkpoint(checkpoint_dir, state)

    for step in range(start, last):
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate(step)
        b = config.batch_objects
        index = torch.randint(data.num_objects, (b,), generator=batch_generator)
        which = (torch.rand(b, generator=batch_generator) * caption_counts[index]).long()
        dropped = torch.rand(b, generator=batch_generator) < config.caption_dropout
        flipped = (torch.rand(b, generator=batch_generator) < 0.5) & config.flip
        timesteps = torch.randint(scheduler.config.num_train_timesteps, (b,), generator=batch_generator)
        noise = torch.randn(latent_shape, generator=noise_generator, device=device)

        index, flipped, dropped = index.to(device), flipped.to(device), dropped.to(device)
        pixels = images[index].permute(0, 1, 4, 2, 3).float() / 127.5 - 1  # (B, V, S, S, 3) -> (B, V, 3, S, S)
        pixels = torch.where(flipped[:, None, None, None, None], pixels.flip(-1), pixels)
        pixels = pixels.reshape(b * views, 3, *pixels.shape[-2:])  # (B, V, 3, S, S) -> (B*V, 3, S, S)
        step_cameras = torch.where(flipped[:, None, None], mirrored, cameras)  # (B, V, 16)
        ids = caption_ids[index, which.to(device)]  # (B, L)
        ids = torch.where(dropped[:, None], empty_ids, ids)
        t = timesteps.to(device).repeat_interleave(views)  # (B,) -> (B*V,), one timestep per object
        with torch.no_grad():
            latents = model.vae.encode(pixels).latent_dist.mode() * scale
        noisy = scheduler.add_noise(latents, noise, t)
        target = diffusion_target(model, latents, noise, t)  # epsilon or v, as the scheduler says

        with autocast(device, config.mixed_precision):
            embeds = text_encoder(ids).last_hidden_state.repeat_interleave(views, dim=0)  # (B, L, D) -> (B*V, L, D)
            prediction = model.noise_prediction(noisy, t, embeds, step_cameras.reshape(b * views, -1))
        loss = F.mse_loss(prediction.float(), target.float())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        with torch.no_grad():  # the average warms up so that short runs are not dominated by the random init
            decay = min(config.ema_decay, (1 + step) / (10 + step))
            torch._foreach_lerp_(average, [p.detach() for p in params], 1 - decay)
        window.append(loss.detach())

        done = step + 1
        if time_limit_s is not None and time.perf_counter() - started > time_limit_s and done < last:
            result.stopped_early, last = True, done
        if done % config.log_every == 0 or done == last:
            mean = float(torch.stack(window).mean())
            window.clear()
            result.losses.append((done, mean))
            if progress is not None:
                progress(done, config.steps, mean)
        if done % config.checkpoint_every == 0 or done == last:
            checkpoint(done)
        result.steps = done
        if done == last:
            break

    if stop_after is None or last == config.steps or result.stopped_early:
        with torch.no_grad():
            for p, avg in zip(params, average, strict=True):
                p.copy_(avg)
    unet.eval().requires_grad_(False)
    text_encoder.eval().requires_grad_(False)
    result.seconds = time.perf_counter() - started
    return result
