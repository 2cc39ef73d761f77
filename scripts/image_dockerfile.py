"""The worker image's plan read from docker/Dockerfile, without Docker: its instructions and stages, the simple
commands of its RUN lines, and for each variant the base image, apt packages and pip installs it ends up with.

Part of scripts/check_image.py (which imports it from its folder): the standard library only.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field

VARIANTS = ("cpu", "gpu")
GLIBC_OF_DEBIAN = {"bullseye": 31, "bookworm": 36, "trixie": 41}  # glibc 2.N of each release
LOCK = "requirements.lock"
DEPENDENCIES_FROM_PYPROJECT = "['project']['dependencies']"  # how the Dockerfile writes them to a file
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
