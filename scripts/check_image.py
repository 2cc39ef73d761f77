"""Check the worker image's dependency set without building the image (CI has no Docker daemon).

    .venv/bin/python scripts/check_image.py   # what scripts/test.sh runs, before pytest

1. docker/Dockerfile against the repository: its apt-get install list equals `runtime_packages` of
   scripts/install.sh, every `pip install` takes requirements.lock as constraints, and the image installs the
   project's [project.dependencies] (then the project itself), nothing else; its Python is pyproject's.
2. That set resolved against PyPI for the image's platform, downloading no wheel: `uv pip compile
   --only-binary=:all:` for CPython 3.11 on manylinux x86_64 up to the glibc of the base image's Debian, with
   requirements.lock as constraints. Success proves that every package the image installs exists as a wheel for
   that platform and that the set is consistent; then every resolved package must be pinned by the lock at the
   resolved version (pip, setuptools and wheel aside: `pip freeze` leaves them out of lock files).

Both variants are checked; they share one set when their stages install the same things. Prints a table and
writes it to benchmarks/results/image_dependencies.md; exit code 1 with the reason (the pin without a wheel,
the package the lock does not pin, the apt package only one side has) on any failure.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "image_dependencies.md"
PYPI = "https://pypi.org/simple"
VARIANTS = ("cpu", "gpu")
GLIBC_OF_DEBIAN = {"bullseye": 31, "bookworm": 36, "trixie": 41}  # glibc 2.N of each release
LOCK = "requirements.lock"
DEPENDENCIES_FROM_PYPROJECT = "['project']['dependencies']"  # how the Dockerfile writes them to a file
NOT_IN_LOCKS = {"pip", "setuptools", "wheel"}  # `pip freeze` omits them
# The resolver, `uv pip compile`, reads only the wheels' metadata (PEP 658 files, else a range request into each
# wheel); `pip install --dry-run` downloads every wheel it resolves (3.6 GB of temporary files here, more than a CI
# machine's disk held once). uv also evaluates environment markers for the target platform, not for its host.
KEPT_UV_SETTINGS = {"UV_HTTP_TIMEOUT", "UV_HTTP_RETRIES", "UV_CONCURRENT_DOWNLOADS", "UV_INSECURE_HOST"}
SHELL_OPERATORS = {"&&", "||", ";", "|", "&"}


class ImageCheckError(ValueError):
    """The image's dependency set is not what the repository says it is; the message says why."""


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, ...
    arguments: str
    line: int


@dataclass
class Stage:
    name: str
    parent: str  # a stage name or an image reference
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Command:
    words: list[str]
    writes: list[str]  # files its output is redirected to (`> FILE`)


@dataclass(frozen=True)
class PipInstall:
    line: int
    constraints: tuple[str, ...]
    requirement_files: tuple[str, ...]
    targets: tuple[str, ...]  # positional requirements: `.`, names
    no_deps: bool


@dataclass(frozen=True)
class ImagePlan:
    """What one variant installs: its base image, apt packages and pip installs."""

    base_image: str
    python: str  # "3.11"
    glibc_minor: int
    apt_packages: tuple[str, ...]
    pip_installs: tuple[PipInstall, ...]


@dataclass
class Resolution:
    packages: dict[str, str]  # normalised name -> version
    sizes: dict[str, int | None]  # normalised name -> its wheel's size in bytes
    unpinned: list[str]  # "name version" of the NOT_IN_LOCKS packages the lock leaves out
    seconds: float


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions with continuation lines joined and comment lines dropped (Docker's rules)."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue  # a comment, also inside a continued instruction, or a blank line between instructions
        if not pending:
            start = number
        continued = stripped.endswith("\\")
        pending.append(stripped[:-1] if continued else stripped)
        if not continued:
            keyword, _, arguments = " ".join(pending).strip().partition(" ")
            instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
            pending = []
    if pending:
        raise ImageCheckError(f"the instruction at line {start} ends with a line continuation")
    return instructions


def read_stages(instructions: list[Instruction]) -> tuple[dict[str, str], dict[str, Stage], str]:
    """(global ARG defaults, stages by name, the final stage's FROM argument)."""
    arguments: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for instruction in instructions:
        if instruction.keyword == "ARG" and current is None:
            name, _, default = instruction.arguments.partition("=")
            arguments[name.strip()] = default.strip()
        elif instruction.keyword == "FROM":
            words = [word for word in instruction.arguments.split() if not word.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else f"#{len(stages)}"
            current = stages[name] = Stage(name, words[0])
        elif current is not None:
            current.instructions.append(instruction)
        else:
            raise ImageCheckError(f"line {instruction.line}: {instruction.keyword} before the first FROM")
    if current is None:
        raise ImageCheckError("no FROM instruction")
    return arguments, stages, current.parent


def shell_commands(script: str) -> Iterator[Command]:
    """The simple commands of a RUN line (split at &&, ||, ;, |, quotes respected), with their `>` targets."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    command = Command([], [])
    tokens = iter(lexer)
    for token in tokens:
        if token in SHELL_OPERATORS:
            if command.words:
                yield command
            command = Command([], [])
        elif token in (">", ">>"):
            command.writes.append(os.path.normpath(next(tokens, "")))
        elif command.words or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", token):  # VAR=value before a command
            command.words.append(token)
    if command.words:
        yield command


def apt_packages(words: list[str]) -> list[str]:
    tool = next((i for i, word in enumerate(words) if word in ("apt-get", "apt")), None)
    if tool is None or "install" not in words[tool:]:
        return []
    after = words[words.index("install", tool) + 1 :]
    return [word.split("=")[0] for word in after if not word.startswith("-")]


def pip_install(words: list[str], line: int) -> PipInstall | None:
    names = [os.path.basename(word) for word in words]
    pip = next((i for i, name in enumerate(names) if re.fullmatch(r"pip(3(\.\d+)?)?", name)), None)
    if pip is None or pip + 1 >= len(words) or words[pip + 1] != "install":
        return None
    constraints: list[str] = []
    requirement_files: list[str] = []
    targets: list[str] = []
    no_deps = False
    options_with_value = {"-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--platform", "-t", "--target"}
    rest = iter(words[pip + 2 :])
    for word in rest:
        option, equals, value = word.partition("=")
        if option in ("-c", "--constraint", "-r", "--requirement"):
            value = value if equals else next(rest, "")
            (constraints if option in ("-c", "--constraint") else requirement_files).append(os.path.normpath(value))
        elif word.startswith("-c") and len(word) > 2:
            constraints.append(os.path.normpath(word[2:]))
        elif word.startswith("-r") and len(word) > 2:
            requirement_files.append(os.path.normpath(word[2:]))
        elif word == "--no-deps":
            no_deps = True
        elif option in options_with_value and not equals:
            next(rest, "")
        elif not word.startswith("-"):
            targets.append(word)
    return PipInstall(line, tuple(constraints), tuple(requirement_files), tuple(targets), no_deps)


def install_sh_packages(text: str) -> list[str]:
    match = re.search(r"^runtime_packages=\(([^)]*)\)", text, re.MULTILINE)
    if match is None:
        raise ImageCheckError("scripts/install.sh: no `runtime_packages=(...)` list of the runtime apt packages")
    return match.group(1).split()


def plan_variant(stages: dict[str, Stage], variant: str) -> ImagePlan:
    chain: list[Stage] = []
    name = variant
    while name in stages:
        chain.insert(0, stages[name])
        name = stages[name].parent
    if not chain:
        raise ImageCheckError(f"no stage named {variant!r} (`FROM ... AS {variant}`)")
    image = re.fullmatch(r"(?:docker\.io/)?(?:library/)?python:(\d+\.\d+)(?:\.\d+)?-slim-(\w+)(?:@sha256:\w+)?", name)
    if image is None:
        raise ImageCheckError(f"stage {variant!r}: base image {name!r} is not python:<3.x>-slim-<debian release>")
    if image.group(2) not in GLIBC_OF_DEBIAN:
        known = sorted(GLIBC_OF_DEBIAN)
        raise ImageCheckError(f"base image {name}: Debian {image.group(2)!r} is unknown to this check (it knows {known})")
    apt: list[str] = []
    installs: list[PipInstall] = []
    for stage in chain:
        for instruction in stage.instructions:
            if instruction.keyword != "RUN":
                continue
            commands = list(shell_commands(instruction.arguments))
            for command in commands:
                apt += apt_packages(command.words)
                install = pip_install(command.words, instruction.line)
                if install is None:
                    continue
                for file in install.requirement_files:
                    writers = [other for other in commands if file in other.writes]
                    if not any(DEPENDENCIES_FROM_PYPROJECT in " ".join(writer.words) for writer in writers):
                        raise ImageCheckError(
                            f"docker/Dockerfile line {install.line}: `-r {file}` is not written in the same RUN from "
                            f"pyproject.toml's {DEPENDENCIES_FROM_PYPROJECT}; the check cannot say what it installs"
                        )
                installs.append(install)
    return ImagePlan(name, image.group(1), GLIBC_OF_DEBIAN[image.group(2)], tuple(apt), tuple(installs))


def check_consistency(root: Path) -> dict[str, ImagePlan]:
    """Part 1: the Dockerfile against install.sh, requirements.lock and pyproject.toml; each variant's plan."""
    instructions = read_instructions((root / "docker" / "Dockerfile").read_text())
    arguments, stages, final = read_stages(instructions)
    if final != "${VARIANT}" or arguments.get("VARIANT") not in VARIANTS:
        raise ImageCheckError(f"docker/Dockerfile must end in `FROM ${{VARIANT}}`, after `ARG VARIANT=` one of {VARIANTS}")
    wanted = install_sh_packages((root / "scripts" / "install.sh").read_text())
    requires_python = tomllib.loads((root / "pyproject.toml").read_text())["project"]["requires-python"]
    problems: list[str] = []
    plans = {variant: plan_variant(stages, variant) for variant in VARIANTS}
    for variant, plan in plans.items():
        only_image = sorted(set(plan.apt_packages) - set(wanted))
        only_install_sh = sorted(set(wanted) - set(plan.apt_packages))
        if only_image or only_install_sh:
            problems.append(
                f"{variant}: apt packages differ from scripts/install.sh's runtime_packages: only in the image "
                f"{only_image or 'none'}, only in install.sh {only_install_sh or 'none'}"
            )
        if requires_python != f"=={plan.python}.*":
            problems.append(f"{variant}: {plan.base_image} has Python {plan.python}, pyproject.toml needs {requires_python}")
        if not plan.pip_installs:
            problems.append(f"{variant}: no `pip install` line")
        for install in plan.pip_installs:
            if LOCK not in install.constraints:
                problems.append(f"{variant}: docker/Dockerfile line {install.line}: `pip install` without `-c {LOCK}`")
            unknown = [target for target in install.targets if target != "."]
            if unknown:
                problems.append(
                    f"{variant}: docker/Dockerfile line {install.line}: installs {unknown}, which are not the project "
                    f"or its dependencies (add them to pyproject.toml's dependencies and to {LOCK})"
                )
        installs_dependencies = [i for i in plan.pip_installs if i.requirement_files or ("." in i.targets and not i.no_deps)]
        if not installs_dependencies:
            problems.append(f"{variant}: the project's dependencies are never installed (`pip install -c {LOCK} .`)")
        if not any("." in install.targets for install in plan.pip_installs):
            problems.append(f"{variant}: the project itself is never installed (`pip install ... .`)")
    if problems:
        raise ImageCheckError("docker/Dockerfile does not match the repository:\n  " + "\n  ".join(problems))
    return plans


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-url", default=PYPI, help=f"the package index to resolve against (default {PYPI})")
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT, help=argparse.SUPPRESS)  # for the tests
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the table is written")
    parser.add_argument("--find-links", help=argparse.SUPPRESS)  # the tests' local wheels, instead of an index
    args = parser.parse_args(argv)
    index = ["--no-index", f"--find-links={args.find_links}"] if args.find_links else [f"--index-url={args.index_url}"]
    where = args.find_links or args.index_url
    started = time.perf_counter()
    try:
        plans = check_consistency(args.root)
        uv = uv_command()
        version = subprocess.run([*uv, "--version"], check=False, capture_output=True, text=True).stdout.split()
        resolver = " ".join(version[:2]) or "uv"
        groups: dict[ImagePlan, list[str]] = {}
        for variant, plan in plans.items():
            groups.setdefault(plan, []).append(variant)
        rows = []
        for plan, variants in groups.items():
            resolution = resolve(args.root, plan, index, uv)
            size = total_download(resolution.sizes)
            rows.append((", ".join(variants), plan, len(resolution.packages), size, resolution.seconds, resolution.unpinned))
    except ImageCheckError as error:
        sys.stderr.write(f"check_image: FAILED: {error}\n")
        return 1
    seconds = time.perf_counter() - started
    lines = [
        "# The worker image's dependency set",
        "",
        f"Written by scripts/check_image.py: docker/Dockerfile checked against scripts/install.sh and {LOCK}, and its",
        f"dependency set resolved by {resolver} (`uv pip compile`, wheel metadata only) against {where},",
        f"downloading and installing no wheel ({seconds:.1f} s in all).",
        "",
        "| variant | base image | platform | packages resolved | download size | seconds to resolve |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for variants, plan, count, size, resolve_seconds, _ in rows:
        row = [variants, plan.base_image, platform_label(plan), str(count), size, f"{resolve_seconds:.1f}"]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    for variants, plan, _, _, _, unpinned in rows:
        lines.append(f"{variants}: apt packages {' '.join(plan.apt_packages)} (= scripts/install.sh's runtime_packages).")
        if unpinned:
            lines.append(f"{variants}: not pinned by {LOCK} (pip freeze leaves them out): {', '.join(unpinned)}.")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
