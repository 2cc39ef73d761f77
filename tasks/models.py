"""Which model a GPU stage loads, and the digest that stands for it in artifact keys.

Weights are identified by what they are, not where they are: the sha256 of every file of the weights folder.
The same checkpoint mounted at another path, copied with new modification times or unpacked on another
worker gives the same keys, so cached artifacts are reused there; changing one byte gives new keys. Hashing a
multi-GB folder takes seconds, so each file's digest is kept in a small cache beside the folder
(`.dreamedit3d-digests.json`, or in `~/.cache/dreamedit3d/digests/` when the folder is read-only) and
recomputed only when the file's size or modification time changed.

A worker process that runs many stages loads a base model once: `base_model` keeps it, keyed by its digest, on
the CPU, and hands each stage its own copy (a stage trains what it gets). The stages say in their ledger
details whether the model was loaded or reused.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from dreamedit3d_core.execution import key_settings
from dreamedit3d_core.mvdiffusion.settings import ModelConfig, model_folder
from storage import file_digest

if TYPE_CHECKING:  # torch and the model are imported when a model is loaded, not by the catalog that imports this
    from dreamedit3d_core.mvdiffusion.model import MultiViewDiffusion

DIGESTS_FILE = ".dreamedit3d-digests.json"
_KEPT: dict[str, MultiViewDiffusion] = {}  # base model digest -> the model as loaded, on the CPU; never handed out


def base_model(config: ModelConfig) -> tuple[MultiViewDiffusion, Literal["loaded", "reused"]]:
    """A copy of the base model for one stage, on the configured device with its performance options, and
    whether this process loaded it now or reused the one it loaded for an earlier stage. One model is kept at a
    time: a worker that moves on to another model lets the previous one go."""
    import torch

    from dreamedit3d_core.mvdiffusion.loading import load_base_weights, resolve_device

    digest = base_model_digest(config)
    how: Literal["loaded", "reused"] = "reused" if digest in _KEPT else "loaded"
    if how == "loaded":
        _KEPT.clear()
        _KEPT[digest] = load_base_weights(config, torch.device("cpu"))
    model = copy.deepcopy(_KEPT[digest]).to(resolve_device(config.device))
    return model.apply_performance(config.performance), how


def base_model_digest(config: ModelConfig) -> str:
    """sha256 standing for the base model: its settings (not how it runs, nor the folder's path) and the
    content digest of every file of its weights folder."""
    description: dict = key_settings(config)
    folder = model_folder(config)
    if folder is not None and folder.is_dir():
        description["path"] = None  # the files say which weights these are; their place does not matter
        description["files"] = sorted(weights_digests(folder).items())
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


def weights_digests(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under `folder` (the digest cache itself left out), reusing the
    cached digest of a file whose size and modification time are unchanged."""
    folder = folder.resolve()
    cache_file = _cache_file(folder)
    try:
        cached = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cached = {}
    fresh: dict[str, dict] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != DIGESTS_FILE):
        relative, stat = path.relative_to(folder).as_posix(), path.stat()
        entry = cached.get(relative) if isinstance(cached, dict) else None
        if not (isinstance(entry, dict) and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns):
            entry = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": file_digest(path)}
        fresh[relative] = entry
    if fresh != cached:
        _write_cache(cache_file, fresh)
    return {relative: entry["sha256"] for relative, entry in fresh.items()}


def _cache_file(folder: Path) -> Path:
    beside = folder / DIGESTS_FILE
    if os.access(folder, os.W_OK):
        return beside
    name = hashlib.sha256(str(folder).encode()).hexdigest()[:32] + ".json"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dreamedit3d" / "digests" / name


def _write_cache(cache_file: Path, digests: dict[str, dict]) -> None:
    """Best effort: a cache that cannot be written only costs the hashing again next time."""
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        staging = cache_file.with_name(f".{cache_file.name}.{os.getpid()}")
        staging.write_text(json.dumps(digests, indent=1, sort_keys=True))
        staging.replace(cache_file)
    except OSError:
        pass
