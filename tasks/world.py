"""Stages of the world model: `world_dataset` (render the procedural parts world) and `pretrain` (train the
small multi-view model on it). Both belong to the pseudo-asset "world" in the store, so they are cached,
resumable and listed by `dreamedit3d status` like any asset's stages."""

from __future__ import annotations

import torch

from dreamedit3d_core.mvdiffusion import MultiViewDiffusion
from dreamedit3d_core.mvdiffusion.architecture import MultiViewDiffusionConfig
from dreamedit3d_core.mvdiffusion.loading import resolve_device
from dreamedit3d_core.pretrain import PretrainData, pretrain
from dreamedit3d_core.world import tokenizer_words
from dreamedit3d_core.world.dataset import build_world_dataset, pretrain_data
from storage import Artifact
from tasks.artifacts import (
    PRETRAIN_LOSSES,
    WORLD_CAMERAS,
    WORLD_IMAGES,
    WORLD_MODEL,
    WORLD_OBJECTS,
    WORLD_PREVIEW,
    WorldImages,
)
from tasks.progress import progress
from tasks.running import StageInputs, StageOutputs


def world_dataset(inputs: StageInputs, outputs: StageOutputs) -> dict:
    """Training and held-out objects rendered by the pipeline's renderer: images, part ids, captions."""
    with progress("world_dataset render") as on_step:
        dataset = build_world_dataset(inputs.settings("dataset"), on_step)
    outputs.save(WORLD_IMAGES, WorldImages(dataset.rgb, dataset.part_id))
    outputs.save(WORLD_OBJECTS, dataset.objects)
    outputs.save(WORLD_CAMERAS, dataset.cameras)
    outputs.save(WORLD_PREVIEW, dataset.preview)
    splits = [row["split"] for row in dataset.objects]
    return {"train": splits.count("train"), "held_out": splits.count("held_out")}


def read_training_data(artifact: Artifact, split: str = "train") -> PretrainData:
    """One split of a committed world dataset as pretraining input."""
    return pretrain_data(WORLD_IMAGES.load(artifact).rgb, WORLD_OBJECTS.load(artifact), WORLD_CAMERAS.load(artifact), split)


def pretrain_world_model(inputs: StageInputs, outputs: StageOutputs) -> dict:
    """The world model trained from scratch on the dataset's training split; resumes from checkpoints."""
    data = read_training_data(inputs.artifact("world_dataset"))
    device = resolve_device(inputs.settings("device"))
    model = MultiViewDiffusion.build_random(
        MultiViewDiffusionConfig.world_small(), seed=inputs.settings("model_seed"), device=device, words=tokenizer_words()
    )
    with progress("pretrain") as on_step:
        result = pretrain(model, data, inputs.settings("pretrain"), checkpoint_dir=inputs.scratch_dir(), progress=on_step)
    outputs.save(WORLD_MODEL, lambda folder: model.save_pretrained(folder, dtype=torch.float16))
    outputs.save(PRETRAIN_LOSSES, {"step": [s for s, _ in result.losses], "loss": [v for _, v in result.losses]})
    return {
        "steps": result.steps,
        "resumed_from_step": result.resumed_from_step,
        "seconds": result.seconds,
        "device": result.device,
        "final_loss": result.losses[-1][1] if result.losses else None,
    }
