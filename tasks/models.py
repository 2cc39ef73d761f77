"""Which model a GPU stage loads, and the digest that stands for it in artifact keys."""

from __future__ import annotations

import hashlib
import json

from dreamedit3d_core.execution import key_settings
from dreamedit3d_core.mvdiffusion.settings import ModelConfig, model_folder
from storage import file_digest


def base_model_digest(config: ModelConfig) -> str:
    """sha256 standing for the base model: its settings (not how it runs), and for weights the folder's files.

    For real checkpoints the listing (relative path, size, modification time) is cheap to read for multi-GB
    folders; replacing a weight file changes it. The world model's files are hashed by content.
    """
    description: dict = key_settings(config)
    folder = model_folder(config)
    if folder is not None and folder.is_dir():
        files = sorted(file for file in folder.rglob("*") if file.is_file())
        if config.source == "world":  # small enough to hash, and the same in every clone of the repository
            description["files"] = [(str(f.relative_to(folder)), file_digest(f)) for f in files]
        else:
            description["files"] = [(str(f.relative_to(folder)), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()
