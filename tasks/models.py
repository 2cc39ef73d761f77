"""Which model a GPU stage loads, and the digest that stands for it in artifact keys."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from dreamedit3d_core.mvdiffusion.loading import ModelConfig

# How the model runs, not which weights it has: left out of artifact keys.
EXECUTION_SETTINGS = {"device", "performance"}


def base_model_digest(config: ModelConfig) -> str:
    """sha256 standing for the base model: its settings, and for real weights the folder's file listing.

    The listing (relative path, size, modification time) is cheap to read for multi-GB checkpoints;
    replacing a weight file changes it.
    """
    description: dict = config.model_dump(mode="json", exclude=EXECUTION_SETTINGS)
    if config.source == "pretrained" and config.path:
        folder = Path(config.path).expanduser()
        description["files"] = sorted(
            (str(file.relative_to(folder)), file.stat().st_size, file.stat().st_mtime_ns)
            for file in folder.rglob("*")
            if file.is_file()
        )
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()
