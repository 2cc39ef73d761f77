"""Code versions that cannot silently drift.

A stage's `code_version` (tasks/catalog.py) is part of its artifact key: bumping it recomputes that stage
and everything after it. It stays explicit, so that nobody loses a night of GPU work to a comment change.
What keeps it honest is the record in tasks/code_versions.json: for every stage, its code version and a
digest of each source module its artifact depends on, i.e. its compute module and every project module
that module reaches through imports (stage plumbing such as tasks/stage.py is left out). Digests are taken
over the syntax tree without docstrings, so comments, docstrings and formatting never count.

`python -m tasks.code_versions` checks the record (tests/tasks/test_code_versions.py does the same) and fails
when a stage's source changed and its code version did not. Then either
- bump the stage's `code_version` in tasks/catalog.py and run `python -m tasks.code_versions --record`, or,
  when the change cannot alter the stage's artifact (a refactoring, a faster equivalent),
- run `python -m tasks.code_versions --outputs-unchanged STAGE [STAGE ...]`, which records the new source
  with the old version: the existing artifacts stay valid.
"""

from __future__ import annotations

import argparse
import ast
import functools
import hashlib
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RECORD = Path(__file__).with_name("code_versions.json")
PACKAGES = ("dreamedit3d_core", "tasks")
# How stages run, not what they compute: their changes never change an artifact.
PLUMBING = frozenset(
    {"tasks.stage", "tasks.running", "tasks.prefect_task", "tasks.catalog", "tasks.progress", "tasks.code_versions"}
)

ReadSource = Callable[[Path], str]


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@dataclass(frozen=True)
class Module:
    name: str  # dotted, e.g. "dreamedit3d_core.mvdiffusion.prompts"
    path: Path

    @property
    def relative(self) -> str:
        return self.path.relative_to(PROJECT_ROOT).as_posix()


def find_module(name: str) -> Module | None:
    """The project module (or package) of a dotted name; None for anything outside the project."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = PROJECT_ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return Module(name, path)
    return None


@functools.lru_cache(maxsize=None)
def _parse(text: str) -> ast.Module:
    """Parsed once per text (trees are never changed in place here)."""
    return ast.parse(text)


def _imported(module: Module, read: ReadSource) -> set[str]:
    """Dotted names a module's source uses from the project (functions' own imports included)."""
    tree = _parse(read(module.path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                names.add(full if find_module(full) is not None else _defining_module(node.module, alias.name, read))
    return {name for name in names if find_module(name) is not None}


def _defining_module(package: str, name: str, read: ReadSource) -> str:
    """Where `from package import name` really comes from: a package's __init__ re-exports from submodules."""
    module = find_module(package)
    if module is None or module.path.name != "__init__.py":
        return package
    for node in _parse(read(module.path)).body:
        if isinstance(node, ast.ImportFrom) and node.module and any(alias.name == name for alias in node.names):
            return _defining_module(node.module, name, read)
        exports = _lazy_exports(node)
        if name in exports:
            return _defining_module(f"{package}.{exports[name]}", name, read)
    return package


def _lazy_exports(node: ast.stmt) -> dict[str, str]:
    """Name -> submodule of a package's `... = lazy_exports(__name__, {"submodule": ("name", ...)})` (a literal)."""
    if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
        return {}
    call = node.value
    if not (isinstance(call.func, ast.Name) and call.func.id == "lazy_exports" and len(call.args) == 2):
        return {}
    mapping = ast.literal_eval(call.args[1])
    return {name: submodule for submodule, names in mapping.items() for name in names}


def _sibling_files(module: Module, read: ReadSource) -> set[Path]:
    """Python files of the same folder a module names in a string (a script it runs, e.g. blender_scene.py)."""
    found = set()
    for node in ast.walk(_parse(read(module.path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith(".py"):
            candidate = module.path.parent / node.value
            if candidate.is_file() and candidate != module.path:
                found.add(candidate)
    return found


def reached_sources(start: str, read: ReadSource = _read) -> list[Path]:
    """Every source file the artifact of a stage whose compute function lives in `start` depends on."""
    seen: set[str] = set()
    files: set[Path] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen or name in PLUMBING:
            continue
        seen.add(name)
        module = find_module(name)
        if module is None:
            continue
        if module.path.name == "__init__.py" and name != start:
            continue  # a package used as a re-export hub: `_defining_module` followed its names already
        files.add(module.path)
        files |= _sibling_files(module, read)
        todo.extend(_imported(module, read))
    return sorted(files)


def source_digest(path: Path, read: ReadSource = _read) -> str:
    """sha256 (16 hex) of a Python file's syntax tree without docstrings: comments and layout never count."""
    return _digest(read(path))


@functools.lru_cache(maxsize=None)
def _digest(text: str) -> str:
    tree = ast.parse(text)  # a fresh tree: docstrings are cut out of it below
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:16]


def stage_sources(compute_module: str, read: ReadSource = _read) -> dict[str, str]:
    """Relative path -> digest of every source a stage's artifact depends on."""
    return {path.relative_to(PROJECT_ROOT).as_posix(): source_digest(path, read) for path in reached_sources(compute_module, read)}


def current(read: ReadSource = _read) -> dict[str, dict]:
    """What the record should say now: per stage, its code version and its sources' digests."""
    from tasks.catalog import all_stages

    return {
        stage.name: {"code_version": stage.code_version, "sources": stage_sources(stage.compute_module, read)}
        for stage in all_stages()
    }


def recorded() -> dict[str, dict]:
    return json.loads(RECORD.read_text()) if RECORD.is_file() else {}


def problems(now: dict[str, dict], record: dict[str, dict]) -> list[str]:
    """One line per stage whose record is out of date, saying what changed and what to do."""
    lines = []
    for stage, entry in now.items():
        old = record.get(stage)
        if old is None:
            lines.append(f"stage {stage!r} is not recorded: run `python -m tasks.code_versions --record`")
            continue
        changed = sorted(
            path for path in set(entry["sources"]) | set(old["sources"]) if entry["sources"].get(path) != old["sources"].get(path)
        )
        if entry["code_version"] != old["code_version"]:
            lines.append(
                f"stage {stage!r}: code version {old['code_version']} -> {entry['code_version']} is not recorded: "
                "run `python -m tasks.code_versions --record`"
            )
        elif changed:
            lines.append(
                f"stage {stage!r}: its source changed ({', '.join(changed)}) but its code version did not: bump its "
                f"code_version in tasks/catalog.py and run `python -m tasks.code_versions --record`, or, if its "
                f"artifacts cannot change, run `python -m tasks.code_versions --outputs-unchanged {stage}`"
            )
    lines += [f"stage {stage!r} is recorded but no longer in the catalog: run --record" for stage in sorted(set(record) - set(now))]
    return lines


def update(now: dict[str, dict], record: dict[str, dict], outputs_unchanged: Iterable[str] = ()) -> dict[str, dict]:
    """The new record: stages with a new version (or new stages) as they are now; stages whose source changed
    with the same version only when named in `outputs_unchanged`. Raises ValueError for the others."""
    allowed = set(outputs_unchanged)
    unknown = allowed - set(now)
    if unknown:
        raise ValueError(f"unknown stage(s) {sorted(unknown)}; stages are {', '.join(now)}")
    refused = [
        stage
        for stage, entry in now.items()
        if stage in record
        and entry["code_version"] == record[stage]["code_version"]
        and entry["sources"] != record[stage]["sources"]
        and stage not in allowed
    ]
    if refused:
        raise ValueError(
            f"the source of {refused} changed but not the code version: bump it in tasks/catalog.py, or pass "
            f"--outputs-unchanged {' '.join(refused)} if their artifacts cannot change"
        )
    return now


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check or update tasks/code_versions.json.")
    parser.add_argument("--record", action="store_true", help="record stages whose code version was bumped, and new stages")
    parser.add_argument("--outputs-unchanged", nargs="+", default=[], metavar="STAGE", help="record these stages' new source with their old version")
    args = parser.parse_args(argv)
    now, record = current(), recorded()
    if args.record or args.outputs_unchanged:
        try:
            RECORD.write_text(json.dumps(update(now, record, args.outputs_unchanged), indent=1, sort_keys=True) + "\n")
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"recorded {len(now)} stages in {RECORD.relative_to(PROJECT_ROOT)}")
        return 0
    found = problems(now, record)
    for line in found:
        print(line, file=sys.stderr)
    if not found:
        print(f"{len(now)} stages: code versions match their sources")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
