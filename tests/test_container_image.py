"""scripts/check_image.py, the CI check of the worker image (docker/Dockerfile) that no CI machine can build.

Offline: the resolution runs on wheels made here (uv's --find-links), not on PyPI; scripts/test.sh runs the
check itself against PyPI before pytest.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import PROJECT_ROOT

SPEC = importlib.util.spec_from_file_location("check_image", PROJECT_ROOT / "scripts" / "check_image.py")
assert SPEC is not None and SPEC.loader is not None
check_image = importlib.util.module_from_spec(SPEC)
sys.modules["check_image"] = check_image  # dataclasses look their module up while the class is made
SPEC.loader.exec_module(check_image)


def copy_repository(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for path in ("docker/Dockerfile", "scripts/install.sh", "pyproject.toml", "requirements.lock"):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROJECT_ROOT / path, root / path)
    return root


def make_wheel(folder: Path, name: str, version: str, requires: list[str]) -> None:
    """A pure-Python wheel with only its metadata, enough for a resolver."""
    dist_info = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {requirement}\n" for requirement in requires)
    files = {
        f"{name}/__init__.py": "",
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{dist_info}/RECORD"] = "".join(f"{path},,\n" for path in files) + f"{dist_info}/RECORD,,\n"
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)


def small_project(tmp_path: Path, lock: str) -> tuple[Path, Path]:
    """The real Dockerfile and install.sh around a project that needs `alpha`, which needs `beta`."""
    root = copy_repository(tmp_path)
    pyproject = root / "pyproject.toml"
    start = pyproject.read_text().index("dependencies = [")
    end = pyproject.read_text().index("]\n", start) + 2
    pyproject.write_text(pyproject.read_text()[:start] + 'dependencies = ["alpha>=1"]\n' + pyproject.read_text()[end:])
    (root / "requirements.lock").write_text(lock)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "alpha", "1.0", ["beta>=1"])
    make_wheel(wheels, "beta", "1.0", [])
    return root, wheels


def run_check(root: Path, wheels: Path, results: Path) -> int:
    return check_image.main(["--root", str(root), "--find-links", str(wheels), "--results", str(results)])


def test_the_image_installs_install_sh_libraries_and_the_locked_project() -> None:
    plans = check_image.check_consistency(PROJECT_ROOT)
    assert set(plans) == {"cpu", "gpu"}
    assert plans["cpu"] == plans["gpu"]  # one dependency set: the variants differ in their command only
    install_sh = check_image.install_sh_packages((PROJECT_ROOT / "scripts" / "install.sh").read_text())
    assert sorted(plans["cpu"].apt_packages) == sorted(install_sh)
    assert "libegl1" in install_sh  # open3d's libOpen3D.so links libEGL.so.1
    assert all(install.constraints == ("requirements.lock",) for install in plans["cpu"].pip_installs)
    assert (plans["cpu"].python, plans["cpu"].glibc_minor) == ("3.11", 36)


def test_a_dockerfile_that_drifts_from_install_sh_or_the_lock_is_refused(tmp_path: Path) -> None:
    root = copy_repository(tmp_path)
    dockerfile = root / "docker" / "Dockerfile"
    original = dockerfile.read_text()
    dockerfile.write_text(original.replace(" libegl1 ", " libegl1 curl ").replace(" libsm6 ", " "))
    with pytest.raises(check_image.ImageCheckError, match=r"only in the image \['curl'\], only in install.sh \['libsm6'\]"):
        check_image.check_consistency(root)
    dockerfile.write_text(original.replace("--no-deps -c requirements.lock .", "--no-deps ."))
    with pytest.raises(check_image.ImageCheckError, match=r"line \d+: `pip install` without `-c requirements.lock`"):
        check_image.check_consistency(root)
    dockerfile.write_text(original.replace("-r /tmp/dependencies.txt \\", "-r /tmp/dependencies.txt xformers \\"))
    with pytest.raises(check_image.ImageCheckError, match=r"installs \['xformers'\], which are not the project"):
        check_image.check_consistency(root)
    dockerfile.write_text(original.replace("python:3.11-slim-bookworm", "python:3.12-slim-bookworm"))
    with pytest.raises(check_image.ImageCheckError, match=r"has Python 3.12, pyproject.toml needs ==3.11"):
        check_image.check_consistency(root)


def test_the_resolved_set_is_printed_and_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, wheels = small_project(tmp_path, "alpha==1.0\nbeta==1.0\n")
    results = tmp_path / "results" / "image_dependencies.md"
    assert run_check(root, wheels, results) == 0
    table = capsys.readouterr().out
    assert "| cpu, gpu | python:3.11-slim-bookworm | cp311 manylinux_2_36_x86_64 | 2 |" in table
    assert results.read_text() == table


def test_a_pin_without_a_wheel_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, wheels = small_project(tmp_path, "alpha==1.0\nbeta==2.0\n")
    assert run_check(root, wheels, tmp_path / "results.md") == 1
    error = capsys.readouterr().err
    assert "requirements.lock pins beta==2.0: no wheel of it for cp311 manylinux_2_36_x86_64" in error
    assert "(newest with one: 1.0)" in error
    assert not (tmp_path / "results.md").exists()


def test_a_package_the_lock_does_not_pin_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, wheels = small_project(tmp_path, "alpha==1.0\n")
    assert run_check(root, wheels, tmp_path / "results.md") == 1
    assert "beta==1.0 is in the image but requirements.lock does not pin it" in capsys.readouterr().err
