"""Which model a GPU stage loads, and the digest that stands for it in artifact keys.

Weights are identified by what they are, not where they are: the sha256 of every file of the weights folder.
The same checkpoint mounted at another path, copied with new modification times or unpacked on another
worker gives the same keys, so cached artifacts are reused there; changing one byte gives new keys. Hashing a
multi-GB folder takes seconds, so each file's digest is kept in a small cache beside the folder
(`.dreamedit3d-digests.json`, or in `~/.cache/dreamedit3d/digests/` when the folder is read-only) and
recomputed only when the file's size or modification time changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from dreamedit3d_core.execution import key_settings
from dreamedit3d_core.mvdiffusion.settings import ModelConfig, model_folder
from storage import file_digest

DIGESTS_FILE = ".dreamedit3d-digests.json"


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
