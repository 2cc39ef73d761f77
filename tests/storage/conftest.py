"""A fresh store per test, on a local folder and on memory://."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from storage import ArtifactStore


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactStore]:
    if request.param == "local":
        yield ArtifactStore(tmp_path / "store root", cache_dir=tmp_path / "cache")
        return
    root = f"memory://store-{uuid.uuid4().hex}"
    yield ArtifactStore(root, cache_dir=tmp_path / "cache")
    memory = fsspec.filesystem("memory")
    if memory.exists(root):
        memory.rm(root, recursive=True)
