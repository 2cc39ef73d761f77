"""Pipeline overrides that make flow tests fast: the tiny preset cut to the bone, every stage still real."""

from __future__ import annotations

from typing import Any

FAST: dict[str, Any] = {
    "render": {"image_size": 64, "samples": 4},
    "invert": {"steps": 1, "probe": {"timesteps": [500]}},
    "finetune": {"steps": 1, "checkpoint_every": 1, "probe": {"timesteps": [500]}},
    "sample": {"steps": 2},
    "reconstruct": {"grid_resolution": 32, "target_faces": 500},
    "merge": {"texture": {"size": 64}, "grid_resolution": 32, "target_faces": 500},
    "evaluate": {"surface_samples": 500},
    "evaluation_views": {"views": 4},
}
