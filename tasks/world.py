"""Stages of the world model: `world_dataset` (render the procedural parts world) and `pretrain` (train the
small multi-view model on it). Both belong to the pseudo-asset "world" in the store, so they are cached,
resumable and listed by `dreamedit3d status` like any asset's stages."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import torch

from dreamedit3d_core.mvdiffusion import MultiViewDiffusion
from dreamedit3d_core.mvdiffusion.config import MultiViewDiffusionConfig
from dreamedit3d_core.mvdiffusion.loading import resolve_device
from dreamedit3d_core.pretrain import PretrainConfig, PretrainData, pretrain
from dreamedit3d_core.render import camera_table
from dreamedit3d_core.world import (
    WorldDatasetConfig,
    canonical_caption,
    caption,
    object_key,
    render_world,
    sample_split,
    tokenizer_words,
)
from storage import ArtifactStore, ArtifactWriter
from tasks.images import png_bytes
from tasks.prefect_task import stage_task
from tasks.progress import progress_lines
from tasks.stage import StagePlan, StageRef, open_artifact, run_stage, upstream_digests
from tasks.tables import columns

WORLD_ASSET_ID = "world"
WORLD_STAGES = ("world_dataset", "pretrain")  # what `dreamedit3d status` lists for it
DATASET_CODE_VERSION = "1"
PRETRAIN_CODE_VERSION = "1"
# How the renderer runs, not what it renders: left out of the artifact key.
RENDER_EXECUTION = {"device", "threads", "blender_executable", "timeout_s"}


def dataset_plan(store: str, config: WorldDatasetConfig) -> StagePlan:
    settings = config.model_dump(mode="json", exclude={"render": RENDER_EXECUTION})
    return StagePlan(store, WORLD_ASSET_ID, "world_dataset", DATASET_CODE_VERSION, settings, {})


@stage_task("world_dataset", dataset_plan)
def world_dataset(store: str, config: WorldDatasetConfig) -> StageRef:
    """Training and held-out objects rendered by the pipeline's renderer: images, part ids, captions."""
    stage_plan = dataset_plan(store, config)

    def compute(writer: ArtifactWriter) -> dict:
        train, held_out = sample_split(config.objects, config.held_out, config.seed, config.world)
        objects = train + held_out
        rng = np.random.default_rng(config.seed + 1)
        rgb = np.empty((len(objects), len(config.render.azimuths), config.render.image_size, config.render.image_size, 3), np.uint8)
        part_id = np.empty(rgb.shape[:-1], np.int8)
        with progress_lines("world_dataset render") as on_step:
            for i, (image, ids) in enumerate(render_world(objects, config.render, on_step, config.world)):
                rgb[i], part_id[i] = image, ids
        dims = ("object", "view", "y", "x")
        writer.array("images", "rgb", rgb, dims=(*dims, "channel"), chunks=(256, *rgb.shape[1:]))
        writer.array("images", "part_id", part_id, dims=dims, attrs={"background": -1}, chunks=(256, *part_id.shape[1:]))
        rows = [
            {
                "index": i,
                "split": "train" if i < len(train) else "held_out",
                "key": object_key(obj),
                "canonical_caption": canonical_caption(obj),
                "captions": [caption(obj, rng) for _ in range(config.captions_per_object)],
                "parts": json.dumps([dataclasses.asdict(p) for p in obj.parts]),
                "yaw_deg": obj.yaw_deg,
            }
            for i, obj in enumerate(objects)
        ]
        writer.table("objects", columns(rows))
        writer.table("cameras", camera_table(config.render.camera_set()))
        grid = rgb[len(train) : len(train) + 16, :].transpose(0, 2, 1, 3, 4)  # (16, V, S, S, 3) -> (16, S, V, S, 3)
        sheet = grid.reshape(-1, rgb.shape[1] * rgb.shape[3], 3)  # one row of V views per object
        writer.file("preview", png_bytes(sheet), filename="held_out.png")
        return {"train": len(train), "held_out": len(held_out)}

    return run_stage(
        stage_plan,
        compute,
        items={"world_images": "images", "world_objects": "objects", "world_cameras": "cameras", "world_preview": "preview"},
    )


def read_training_data(dataset: StageRef, store: str, split: str = "train") -> PretrainData:
    """The dataset's objects of one split as pretraining input."""
    artifact = open_artifact(dataset, store)
    table = artifact.table("objects").to_pydict()
    chosen = [i for i, s in enumerate(table["split"]) if s == split]
    images = artifact.array("images", "rgb")[chosen[0] : chosen[-1] + 1] if chosen else np.empty((0,), np.uint8)
    cameras = np.asarray(artifact.table("cameras").to_pydict()["mvdream_camera"], dtype=np.float32)
    return PretrainData(np.ascontiguousarray(images), [table["captions"][i] for i in chosen], cameras)


def pretrain_plan(store: str, dataset: StageRef, config: PretrainConfig, seed: int, device: str) -> StagePlan:
    settings = {**config.model_dump(mode="json", exclude={"log_every", "checkpoint_every"}), "model_seed": seed}
    settings["model"] = MultiViewDiffusionConfig.world_small().model_dump(mode="json")
    return StagePlan(store, WORLD_ASSET_ID, "pretrain", PRETRAIN_CODE_VERSION, settings, upstream_digests(dataset=dataset))


@stage_task("pretrain", pretrain_plan, retries=0)
def pretrain_world_model(store: str, dataset: StageRef, config: PretrainConfig, seed: int = 0, device: str = "auto") -> StageRef:
    """The world model trained from scratch on the dataset's training split; resumes from checkpoints."""
    stage_plan = pretrain_plan(store, dataset, config, seed, device)
    artifact_store = ArtifactStore(store)

    def compute(writer: ArtifactWriter) -> dict:
        data = read_training_data(dataset, store)
        model = MultiViewDiffusion.build_random(
            MultiViewDiffusionConfig.world_small(), seed=seed, device=resolve_device(device), words=tokenizer_words()
        )
        with progress_lines("pretrain", every=0.02) as on_step:
            result = pretrain(model, data, config, checkpoint_dir=artifact_store.scratch_dir(stage_plan.key), progress=on_step)
        model.save_pretrained(writer.new_directory("model"), dtype=torch.float16)
        writer.table("losses", {"step": [s for s, _ in result.losses], "loss": [v for _, v in result.losses]})
        return {
            "steps": result.steps,
            "resumed_from_step": result.resumed_from_step,
            "seconds": result.seconds,
            "device": result.device,
            "final_loss": result.losses[-1][1] if result.losses else None,
        }

    ref = run_stage(stage_plan, compute, items={"world_model": "model", "pretrain_losses": "losses"}, store=artifact_store)
    artifact_store.clear_scratch(stage_plan.key)
    return ref
