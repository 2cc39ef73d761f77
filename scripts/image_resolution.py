"""The worker image's dependency set resolved for its platform by uv (`uv pip compile`, wheel metadata only,
nothing installed) and checked against requirements.lock: the pins without a wheel, the packages the lock misses.

Part of scripts/check_image.py (which imports it from its folder): the standard library and the uv package only.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from image_dockerfile import LOCK, ImageCheckError, ImagePlan

NOT_IN_LOCKS = {"pip", "setuptools", "wheel"}  # `pip freeze` omits them
# The resolver, `uv pip compile`, reads only the wheels' metadata (PEP 658 files, else a range request into each
# wheel); `pip install --dry-run` downloads every wheel it resolves (3.6 GB of temporary files here, more than a CI
# machine's disk held once). uv also evaluates environment markers for the target platform, not for its host.
KEPT_UV_SETTINGS = {"UV_HTTP_TIMEOUT", "UV_HTTP_RETRIES", "UV_CONCURRENT_DOWNLOADS", "UV_INSECURE_HOST"}


@dataclass
class Resolution:
    packages: dict[str, str]  # normalised name -> version
    sizes: dict[str, int | None]  # normalised name -> its wheel's size in bytes
    unpinned: list[str]  # "name version" of the NOT_IN_LOCKS packages the lock leaves out
    seconds: float


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[normalise(name)] = version.strip()
    return pins


def platform_label(plan: ImagePlan) -> str:
    return f"cp{plan.python.replace('.', '')} manylinux_2_{plan.glibc_minor}_x86_64"


def uv_command() -> list[str]:
    """The resolver: uv from the test install (pinned in requirements.lock)."""
    try:
        from uv import find_uv_bin
    except ImportError as error:
        raise ImageCheckError(f"uv is not installed here; `bash scripts/install.sh --test` installs it ({error})") from None
    return [find_uv_bin()]


def uv_environment() -> dict[str, str]:
    """No uv configuration of this machine (indexes, find-links, constraints) may change the answer."""
    return {key: value for key, value in os.environ.items() if not key.startswith("UV_") or key in KEPT_UV_SETTINGS}


def image_python(plan: ImagePlan) -> str:
    """The image's Python for environment markers: `python:3.11-...` tags follow 3.11's newest patch release, so at
    least this host's 3.11.N (the one the lock was frozen on); uv would take a bare 3.11 as 3.11.0, where markers
    such as redis's `async-timeout; python_full_version < "3.11.3"` add packages the image never installs."""
    host = sys.version_info
    return f"{plan.python}.{host.micro}" if f"{host.major}.{host.minor}" == plan.python else plan.python


def run_uv(uv: list[str], plan: ImagePlan, arguments: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """`uv pip compile` for the image's platform: its interpreter, manylinux up to its glibc, wheels only."""
    platform_options = [f"--python-version={image_python(plan)}", f"--python-platform=x86_64-manylinux_2_{plan.glibc_minor}"]
    command = [*uv, "pip", "compile", "--quiet", "--no-config", "--no-cache", "--native-tls", "--only-binary=:all:"]
    command += [*platform_options, *arguments]
    try:
        return subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout, env=uv_environment())
    except subprocess.TimeoutExpired:
        raise ImageCheckError(f"uv did not resolve within {timeout:.0f} s: {shlex.join(command)}") from None


def missing_pins(uv: list[str], output: str, pins: dict[str, str], plan: ImagePlan, index: list[str]) -> list[str]:
    """The pins uv's error names, each tried alone (no dependencies): which of them has no wheel here."""
    named = re.findall(r"(?<![\w.-])([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:==|>=|<=|~=|!=|<|>)", output)
    found: list[str] = []
    with tempfile.TemporaryDirectory(prefix="check-image-") as folder:
        for name in sorted({normalise(name) for name in named} & set(pins)):
            requirement = Path(folder) / "one.txt"
            requirement.write_text(f"{name}=={pins[name]}\n")
            if run_uv(uv, plan, [*index, "--no-deps", str(requirement)], 120).returncode == 0:
                continue
            requirement.write_text(f"{name}\n")
            newest = run_uv(uv, plan, [*index, "--no-deps", "--no-header", "--no-annotate", str(requirement)], 120)
            has_one = newest.stdout.strip().partition("==")[2] if newest.returncode == 0 else ""
            found.append(
                f"{LOCK} pins {name}=={pins[name]}: no wheel of it for {platform_label(plan)} "
                f"(newest with one: {has_one or 'none'})"
            )
    return found


def wheel_size(wheel: dict[str, object]) -> int | None:
    """A pylock.toml wheel's size: as the index recorded it, else (a --find-links wheel, a file:// URL) the file's."""
    url = str(wheel.get("url", ""))
    if isinstance(wheel.get("size"), int):
        return int(wheel["size"])  # type: ignore[arg-type]
    if url.startswith("file://"):
        return Path(urllib.request.url2pathname(url[len("file://") :])).stat().st_size
    return None


def resolve(root: Path, plan: ImagePlan, index: list[str], uv: list[str], timeout: float = 600) -> Resolution:
    """Part 2: the image's dependency set resolved for its platform, without installing; pins checked."""
    dependencies = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = read_lock(root / LOCK)
    with tempfile.TemporaryDirectory(prefix="check-image-") as folder:
        requirements = Path(folder) / "dependencies.txt"
        requirements.write_text("\n".join(dependencies) + "\n")
        lock = Path(folder) / "pylock.toml"  # PEP 751: each package with the one wheel this platform installs
        started = time.perf_counter()
        result = run_uv(uv, plan, [*index, "-c", str(root / LOCK), "-o", str(lock), str(requirements)], timeout)
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            errors = [line.strip(" ×╰─▶") for line in result.stderr.splitlines() if line.strip(" ×╰─▶")]
            missing = missing_pins(uv, result.stderr, pins, plan, index)
            raise ImageCheckError(
                f"the image's dependency set does not resolve for {platform_label(plan)}:\n  "
                + "\n  ".join(missing + ["uv said:"] + errors[:20])
            )
        resolved = tomllib.loads(lock.read_text()).get("packages", [])
    packages = {normalise(item["name"]): item["version"] for item in resolved}
    sizes = {normalise(item["name"]): wheel_size(item["wheels"][0]) if item.get("wheels") else None for item in resolved}
    problems = [
        f"{name}=={version} is in the image but {LOCK} does not pin it" if name not in pins
        else f"{name}: the image gets {version}, {LOCK} pins {pins[name]}"
        for name, version in sorted(packages.items())
        if pins.get(name) != version and (name in pins or name not in NOT_IN_LOCKS)
    ]
    if problems:
        raise ImageCheckError("the image's dependency set and requirements.lock differ:\n  " + "\n  ".join(problems))
    unpinned = sorted(f"{name} {version}" for name, version in packages.items() if name not in pins)
    return Resolution(packages, sizes, unpinned, seconds)


def total_download(sizes: dict[str, int | None]) -> str:
    known = sum(size for size in sizes.values() if size is not None)
    unknown = sum(size is None for size in sizes.values())
    return f"{known / 1e9:.2f} GB" + (f" ({unknown} sizes unknown)" if unknown else "")
