"""Weights are identified by their content: keys travel between paths and machines, and change with the bytes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import tasks.models
from dreamedit3d_core.mvdiffusion.settings import ModelConfig
from tasks.models import DIGESTS_FILE, base_model_digest


def weights(folder: Path) -> Path:
    (folder / "unet").mkdir(parents=True)
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\x01" * 4096)
    (folder / "multiview_diffusion.json").write_text('{"num_views": 4}')
    return folder


def pretrained(folder: Path) -> ModelConfig:
    return ModelConfig(source="pretrained", path=str(folder))


def test_the_same_weights_at_another_path_with_other_times_give_the_same_key(tmp_path: Path) -> None:
    first = weights(tmp_path / "mounted" / "mvdream")
    second = tmp_path / "elsewhere" / "copy"
    shutil.copytree(first, second, ignore=shutil.ignore_patterns(DIGESTS_FILE))
    os.utime(second / "unet" / "diffusion_pytorch_model.safetensors", (1, 1))
    assert base_model_digest(pretrained(first)) == base_model_digest(pretrained(second))


def test_one_changed_byte_gives_another_key(tmp_path: Path) -> None:
    folder = weights(tmp_path / "mvdream")
    before = base_model_digest(pretrained(folder))
    blob = folder / "unet" / "diffusion_pytorch_model.safetensors"
    blob.write_bytes(b"\x01" * 4095 + b"\x02")
    assert base_model_digest(pretrained(folder)) != before


def test_each_file_is_hashed_once_until_it_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = weights(tmp_path / "mvdream")
    hashed: list[str] = []
    real = tasks.models.file_digest
    monkeypatch.setattr(tasks.models, "file_digest", lambda path: hashed.append(Path(path).name) or real(path))
    first = base_model_digest(pretrained(folder))
    assert sorted(hashed) == ["diffusion_pytorch_model.safetensors", "multiview_diffusion.json"]
    assert (folder / DIGESTS_FILE).is_file()  # the cache, beside the weights
    assert base_model_digest(pretrained(folder)) == first and len(hashed) == 2  # read from the cache
    (folder / "multiview_diffusion.json").write_text('{"num_views": 8}')
    assert base_model_digest(pretrained(folder)) != first
    assert hashed[2:] == ["multiview_diffusion.json"]  # only the changed file again
