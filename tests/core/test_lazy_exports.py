"""Stage packages export their names lazily: every name resolves, and configs and planning stay light."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = [
    "dreamedit3d_core.evaluate",
    "dreamedit3d_core.ingest",
    "dreamedit3d_core.masks",
    "dreamedit3d_core.merge",
    "dreamedit3d_core.mvdiffusion",
    "dreamedit3d_core.personalize",
    "dreamedit3d_core.pretrain",
    "dreamedit3d_core.reconstruct",
    "dreamedit3d_core.render",
    "dreamedit3d_core.world",
]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_resolves(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__all__, package
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"
        assert name in dir(module)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        module.not_a_name  # noqa: B018


def python_output(code: str) -> str:
    """What a fresh interpreter prints running `code` (imports are per process)."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return result.stdout.strip()


def test_config_catalog_and_cli_import_no_heavy_library() -> None:
    """What a cached edit, `plan` and every config check import: no torch, diffusers, trimesh or bpy."""
    code = (
        "import sys, flows.cli.app, flows.edit_asset, flows.planning, tasks.catalog, dreamedit3d_core.config\n"
        "heavy = sorted(m for m in ('torch', 'diffusers', 'transformers', 'trimesh', 'bpy', 'open3d') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    imported = python_output(code)
    assert imported == "", f"imported: {imported}"


def test_a_name_shared_with_its_submodule_is_the_function_not_the_module() -> None:
    """`from dreamedit3d_core.ingest import source_files` is the function, whatever was imported before."""
    code = (
        "import dreamedit3d_core.ingest.source_files\n"
        "from dreamedit3d_core.ingest import source_files\n"
        "print(callable(source_files) and source_files.__name__ == 'source_files')\n"
    )
    assert python_output(code) == "True"
