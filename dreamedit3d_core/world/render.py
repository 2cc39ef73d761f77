"""Render parts-world objects in bulk, each exactly as the pipeline would see it after ingesting its GLB."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from dreamedit3d_core.render import RenderConfig, render_many
from dreamedit3d_core.world.assets import world_asset
from dreamedit3d_core.world.config import WorldConfig
from dreamedit3d_core.world.objects import WorldObject


def render_world(
    objects: Sequence[WorldObject],
    config: RenderConfig,
    progress: Callable[[int, int], None] | None = None,
    world_config: WorldConfig | None = None,
    chunk_size: int = 200,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(rgb_white (V, H, W, 3) uint8, part_id (V, H, W) int32) per object, in order, from the cameras of
    `config.camera_set()`; part id i is `objects[k].parts[i]`. One Blender process per `chunk_size`
    objects; only one chunk's asset folders exist on disk at a time."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    cameras = config.camera_set()
    for first in range(0, len(objects), chunk_size):
        chunk = objects[first : first + chunk_size]
        with tempfile.TemporaryDirectory(prefix="dreamedit3d-world-render-") as tmp:
            folders = [world_asset(obj, world_config).write(Path(tmp) / f"{i:05d}") for i, obj in enumerate(chunk)]

            def chunk_progress(done: int, _: int, first: int = first) -> None:
                if progress is not None:
                    progress(first + done, len(objects))

            for renders in render_many(folders, cameras, config, chunk_progress, chunk_size=len(folders)):
                yield renders.rgb_white, renders.part_id
