"""The world model's dataset: training and held-out objects rendered by the pipeline's renderer, with their
part ids, captions and a preview; and the training split of it as pretraining data."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dreamedit3d_core.geometry.cameras import CameraSet
from dreamedit3d_core.pretrain import PretrainData
from dreamedit3d_core.world.captions import canonical_caption, caption
from dreamedit3d_core.world.config import WorldDatasetConfig
from dreamedit3d_core.world.objects import object_key, sample_split
from dreamedit3d_core.world.render import render_world

PREVIEW_OBJECTS = 16  # held-out objects in the preview, one row of views each


@dataclass(frozen=True)
class WorldDataset:
    rgb: np.ndarray  # (N, V, S, S, 3) uint8, on white
    part_id: np.ndarray  # (N, V, S, S) int8, -1 on background; id i is the object's part i
    objects: list[dict[str, Any]]  # one row per object: index, split, key, captions, parts (JSON), yaw
    cameras: CameraSet
    preview: np.ndarray  # (16*S, V*S, 3) uint8: held-out objects, one row of views each


def build_world_dataset(config: WorldDatasetConfig, on_step: Callable[[int, int], None] | None = None) -> WorldDataset:
    """Render every training and held-out object of the configured world (Blender, in bulk)."""
    train, held_out = sample_split(config.objects, config.held_out, config.seed, config.world)
    objects = train + held_out
    rng = np.random.default_rng(config.seed + 1)
    size, views = config.render.image_size, len(config.render.azimuths)
    rgb = np.empty((len(objects), views, size, size, 3), np.uint8)
    part_id = np.empty(rgb.shape[:-1], np.int8)
    for i, (image, ids) in enumerate(render_world(objects, config.render, on_step, config.world)):
        rgb[i], part_id[i] = image, ids
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
    shown = rgb[len(train) : len(train) + PREVIEW_OBJECTS]  # (16, V, S, S, 3)
    preview = shown.transpose(0, 2, 1, 3, 4).reshape(-1, views * size, 3)  # (16, S, V, S, 3) -> (16*S, V*S, 3)
    return WorldDataset(rgb, part_id, rows, config.render.camera_set(), np.ascontiguousarray(preview))


def pretrain_data(
    rgb: np.ndarray, objects: Mapping[str, Sequence[Any]], cameras: CameraSet, split: str = "train"
) -> PretrainData:
    """The objects of one split (`objects` is the dataset's table as columns) as pretraining input."""
    chosen = [i for i, s in enumerate(objects["split"]) if s == split]
    images = rgb[chosen[0] : chosen[-1] + 1] if chosen else rgb[:0]  # a split is contiguous
    captions = [objects["captions"][i] for i in chosen]
    return PretrainData(np.ascontiguousarray(images), captions, cameras.mvdream_vectors().astype(np.float32))
