"""`train_world_model`: render the procedural parts world, then train the `world` preset's model on it.

Plain Python wiring of two cached stages (`world_dataset`, `pretrain`) in the store; a killed training run
resumes from its last checkpoint when the same command is run again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from prefect import flow

from dreamedit3d_core.pretrain import PretrainConfig
from dreamedit3d_core.world import WorldDatasetConfig
from flows.edit_asset import run_stage_task
from tasks.stage import StageRef, open_artifact
from tasks.world import pretrain_world_model, world_dataset


@flow(name="train-world-model")
def train_world_model(
    store: str,
    dataset: WorldDatasetConfig,
    training: PretrainConfig | None = None,
    seed: int = 0,
    device: str = "auto",
) -> list[StageRef]:
    """The dataset stage, then (unless `training` is None) the pretraining stage."""
    refs = [run_stage_task(world_dataset, store=store, config=dataset)]
    if training is not None:
        refs.append(
            run_stage_task(pretrain_world_model, store=store, dataset=refs[0], config=training, seed=seed, device=device)
        )
    return refs


def install_model(ref: StageRef, store: str, destination: Path) -> Path:
    """Copy the trained model folder to `destination` (replacing what is there), e.g. the shipped weights."""
    source = open_artifact(ref, store).local_path("model")
    staging = destination.with_name(destination.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    shutil.rmtree(destination, ignore_errors=True)
    staging.rename(destination)
    return destination
