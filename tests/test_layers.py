"""Layering (docs/contributing.md), checked by import-linter: flows -> tasks -> (storage, core), no cycles in a layer.

The contracts live in pyproject.toml ([tool.importlinter]); `lint-imports` reads the code, it imports nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import PROJECT_ROOT

LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")
PACKAGES = ("dreamedit3d_core", "storage", "tasks", "flows")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(root)}
    )


def test_every_layering_contract_is_kept() -> None:
    result = lint_imports(PROJECT_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


def test_a_core_module_importing_prefect_or_a_flow_importing_cycle_is_caught(tmp_path: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(PROJECT_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc", "weights"))
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path)
    with (tmp_path / "dreamedit3d_core" / "geometry" / "cameras.py").open("a") as source:
        source.write("\nimport prefect  # noqa\n")
    with (tmp_path / "flows" / "deployments.py").open("a") as source:
        source.write("\nimport flows.edit_asset  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1
    assert "core is pure computation" in result.stdout and "dreamedit3d_core.geometry.cameras -> prefect" in result.stdout
    assert "No cycles are allowed in flows" in result.stdout
