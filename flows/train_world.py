"""`train_world_model`: render the procedural parts world, then train the `world` preset's model on it.

Plain Python wiring of the world pipeline's stages (tasks/catalog.py: `world_dataset`, `pretrain`) in the
store; a killed training run resumes from its last checkpoint when the same command is run again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from prefect import flow

from dreamedit3d_core.config import WorldTrainingConfig
from storage import ArtifactStore
from tasks.artifacts import WORLD_MODEL
from tasks.catalog import WORLD
from tasks.prefect_task import run_task
from tasks.stage import StageRef


@flow(name="train-world-model")
def train_world_model(store: str, config: WorldTrainingConfig, until: str | None = None) -> list[StageRef]:
    """The world pipeline's stages in order, up to `until` (`world_dataset` renders the dataset only)."""
    refs: dict[str, StageRef] = {}
    for stage, _ in WORLD.walk(config, until=until):
        refs[stage.name] = run_task(stage, WORLD.call(stage, store=store, config=config, upstream=refs))
    return list(refs.values())


def install_model(ref: StageRef, store: str, destination: Path) -> Path:
    """Copy the trained model folder to `destination` (replacing what is there), e.g. the shipped weights."""
    source = WORLD_MODEL.load(ArtifactStore(store).get(ref.key))
    staging = destination.with_name(destination.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    shutil.rmtree(destination, ignore_errors=True)
    staging.rename(destination)
    return destination
