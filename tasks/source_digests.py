"""Source digests for tasks/code_versions.py: which project modules a stage's compute module reaches.

`find_module` maps a dotted name to its file in the project; `reached_sources` follows imports from a module
(through packages' re-exports and lazy exports, and to the sibling scripts it runs by name), leaving out stage
plumbing and the nouns' module; `source_digest` hashes a file's syntax tree without docstrings, so comments,
docstrings and formatting never count.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dreamedit3d_core", "tasks")
# How stages run, not what they compute: their changes never change an artifact.
PLUMBING = frozenset(
    {
        "tasks.stage",
        "tasks.running",
        "tasks.prefect_task",
        "tasks.catalog",
        "tasks.progress",
        "tasks.code_versions",
        "tasks.source_digests",
        "tasks.noun_digests",
    }
)
# The nouns' module: left out of every stage's closure; each noun has its own record (its format version).
NOUNS_MODULE = "tasks.artifacts"

ReadSource = Callable[[Path], str]


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@dataclass(frozen=True)
class Module:
    name: str  # dotted, e.g. "dreamedit3d_core.mvdiffusion.prompts"
    path: Path

    @property
    def relative(self) -> str:
        return relative(self.path)


def relative(path: Path) -> str:
    """A project file's path relative to the project root, as the record keys it."""
    return path.relative_to(PROJECT_ROOT).as_posix()


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
def parse(text: str) -> ast.Module:
    """Parsed once per text (trees are never changed in place here)."""
    return ast.parse(text)


def _imported(module: Module, read: ReadSource) -> set[str]:
    """Dotted names a module's source uses from the project (functions' own imports included)."""
    tree = parse(read(module.path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                names.add(full if find_module(full) is not None else defining_module(node.module, alias.name, read))
    return {name for name in names if find_module(name) is not None}


def defining_module(package: str, name: str, read: ReadSource) -> str:
    """Where `from package import name` really comes from: a package's __init__ re-exports from submodules."""
    module = find_module(package)
    if module is None or module.path.name != "__init__.py":
        return package
    for node in parse(read(module.path)).body:
        if isinstance(node, ast.ImportFrom) and node.module and any(alias.name == name for alias in node.names):
            return defining_module(node.module, name, read)
        exports = _lazy_exports(node)
        if name in exports:
            return defining_module(f"{package}.{exports[name]}", name, read)
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
    for node in ast.walk(parse(read(module.path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith(".py"):
            candidate = module.path.parent / node.value
            if candidate.is_file() and candidate != module.path:
                found.add(candidate)
    return found


def reached_sources(start: str, read: ReadSource = read_text) -> list[Path]:
    """Every source file the artifact of a stage whose compute function lives in `start` depends on."""
    seen: set[str] = set()
    files: set[Path] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen or name in PLUMBING or name == NOUNS_MODULE:
            continue
        seen.add(name)
        module = find_module(name)
        if module is None:
            continue
        if module.path.name == "__init__.py" and name != start:
            continue  # a package used as a re-export hub: `defining_module` followed its names already
        files.add(module.path)
        files |= _sibling_files(module, read)
        todo.extend(_imported(module, read))
    return sorted(files)


def source_digest(path: Path, read: ReadSource = read_text) -> str:
    """sha256 (16 hex) of a Python file's syntax tree without docstrings: comments and layout never count."""
    return _digest(read(path))


@functools.lru_cache(maxsize=None)
def _digest(text: str) -> str:
    return tree_digest(without_docstrings(ast.parse(text)))  # a fresh tree: its docstrings are cut out


def without_docstrings(tree: ast.AST) -> ast.AST:
    """The tree (changed in place: give a fresh one or a copy) without the docstrings of its module, classes and
    functions."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def tree_digest(*trees: ast.AST) -> str:
    """sha256 (16 hex) of syntax trees (their dumps, in order)."""
    return hashlib.sha256("\n".join(ast.dump(tree) for tree in trees).encode()).hexdigest()[:16]
