"""The edit benchmark's objects and their split into a tuning, a test and a textured half.

The held-out parts-world objects with 2 or 3 parts, split once (SPLIT_SEED) and written down in SPLIT_FILE
(benchmarks/world_edit_split.json): never tune on the test half. `read_split` refuses to run when the objects
drawn now no longer match the written-down split.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SPLIT_FILE = Path(__file__).resolve().parent / "world_edit_split.json"
TUNING_OBJECTS, TEST_OBJECTS, SPLIT_SEED = 12, 32, 26
DEMO_SEED = 2026  # the demo object: drawn from the test half with this seed


def benchmark_objects() -> list[tuple[int, Any]]:
    """(id, object): the first TUNING + TEST held-out objects with 2 or 3 parts (id = index among held-out objects;
    ids below 64 are the world dataset's own held-out objects, e.g. 44 is `dreamedit3d world example --index 44`)."""
    from dreamedit3d_core.world import WorldDatasetConfig
    from dreamedit3d_core.world.objects import held_out_objects

    dataset = WorldDatasetConfig()
    objects = held_out_objects(400, dataset.objects, dataset.held_out, dataset.seed, dataset.world)
    chosen = [(index, obj) for index, obj in enumerate(objects) if 2 <= len(obj.parts) <= 3]
    return chosen[: TUNING_OBJECTS + TEST_OBJECTS]


TEXTURED_OBJECTS = 4


def textured_objects() -> list[tuple[int, Any]]:
    """(id, object): the next held-out objects with 2 or 3 parts after the benchmark's, with their last part
    striped (bands of its colour and white): a look no colour word says, never in the world model's training."""
    import dataclasses

    from dreamedit3d_core.world import WorldDatasetConfig
    from dreamedit3d_core.world.objects import held_out_objects

    dataset = WorldDatasetConfig()
    objects = held_out_objects(400, dataset.objects, dataset.held_out, dataset.seed, dataset.world)
    chosen = [(index, obj) for index, obj in enumerate(objects) if 2 <= len(obj.parts) <= 3]
    later = chosen[TUNING_OBJECTS + TEST_OBJECTS : TUNING_OBJECTS + TEST_OBJECTS + TEXTURED_OBJECTS]
    return [
        (index, dataclasses.replace(obj, parts=(*obj.parts[:-1], dataclasses.replace(obj.parts[-1], pattern="striped"))))
        for index, obj in later
    ]


def compute_split() -> dict[str, Any]:
    """The split, drawn once with SPLIT_SEED: which object ids tune and which test, with their captions."""
    from dreamedit3d_core.world import canonical_caption

    objects = benchmark_objects()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(objects))
    tuning = sorted(objects[i][0] for i in order[:TUNING_OBJECTS])
    test = sorted(objects[i][0] for i in order[TUNING_OBJECTS:])
    captions = {str(index): canonical_caption(obj) for index, obj in objects}
    demo = int(np.random.default_rng(DEMO_SEED).choice(test))
    textured = [index for index, _ in textured_objects()]
    captions.update({str(index): canonical_caption(obj) + " (the last part striped)" for index, obj in textured_objects()})
    return {"seed": SPLIT_SEED, "tuning": tuning, "test": test, "textured": textured, "demo": demo, "captions": captions}


def read_split() -> dict[str, Any]:
    """The written-down split; refuses to run when the objects no longer match it."""
    split = json.loads(SPLIT_FILE.read_text())
    if split != compute_split():
        raise SystemExit(f"{SPLIT_FILE} does not match the objects drawn now: the world or its held-out stream changed")
    return split
