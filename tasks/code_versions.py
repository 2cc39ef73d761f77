"""Code versions that cannot silently drift.

A stage's `code_version` (tasks/catalog.py) is part of its artifact key: bumping it recomputes that stage
and everything after it. It stays explicit, so that nobody loses a night of GPU work to a comment change.
What keeps it honest is the record in tasks/code_versions.json: for every stage, its code version and a
digest of each source module its artifact depends on, i.e. its compute module and every project module
that module reaches through imports (stage plumbing such as tasks/stage.py is left out). Digests are taken
over the syntax tree without docstrings, so comments, docstrings and formatting never count.

The nouns (tasks/artifacts.py) are versioned on their own, so that changing how one artifact is saved does not
touch every stage's record: a stage's closure leaves tasks/artifacts.py out, and the record's "nouns" section
holds, for every noun a catalog stage makes, its format `version` and
- "digest": its definition, i.e. the code of its class and the class's bases (with the helpers and value types
  of their module that this code uses, e.g. `columns` for tables, `EditViews` for the views) and the call that
  declares the noun (its `version` left out), each without docstrings;
- "sources": the digest of every project module that this code imports (`Renders`, `CameraSet`,
  `camera_table`), and of every module those reach, as for a stage.
A bumped format version enters the key of every stage that makes or loads the noun (tasks/stage.py). What a
stage imports from tasks/artifacts.py besides nouns and what they own (a helper such as `rows`) stays in the
stage's own sources, as "tasks/artifacts.py:NAME" with the digest of that definition and what it uses.

`python -m tasks.code_versions` checks the record (tests/tasks/test_code_versions.py does the same) and fails
when a stage's source changed and its code version did not, or a noun's code changed and its format version
did not. Then either
- bump the stage's `code_version` in tasks/catalog.py (a noun's `version` where it is declared, in
  tasks/artifacts.py) and run `python -m tasks.code_versions --record`, or,
  when the change cannot alter the stage's artifact (a refactoring, a faster equivalent) or what the noun
  saves and loads,
- run `python -m tasks.code_versions --outputs-unchanged NAME [NAME ...]` (stage and noun names), which records
  the new source with the old version: the existing artifacts stay valid.
`--record` also records stages and nouns that are new.
"""

from __future__ import annotations

import argparse
import ast
import copy
import functools
import hashlib
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RECORD = Path(__file__).with_name("code_versions.json")
PACKAGES = ("dreamedit3d_core", "tasks")
# How stages run, not what they compute: their changes never change an artifact.
PLUMBING = frozenset(
    {"tasks.stage", "tasks.running", "tasks.prefect_task", "tasks.catalog", "tasks.progress", "tasks.code_versions"}
)
# The nouns' module: left out of every stage's closure; each noun has its own record (its format version).
NOUNS_MODULE = "tasks.artifacts"
NOUNS = "nouns"  # the record's section of nouns, beside one entry per stage

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
        if name in seen or name in PLUMBING or name == NOUNS_MODULE:
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
    return _tree_digest(_without_docstrings(ast.parse(text)))  # a fresh tree: its docstrings are cut out


def _without_docstrings(tree: ast.AST) -> ast.AST:
    """The tree (changed in place: give a fresh one or a copy) without the docstrings of its module, classes and
    functions."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _tree_digest(*trees: ast.AST) -> str:
    return hashlib.sha256("\n".join(ast.dump(tree) for tree in trees).encode()).hexdigest()[:16]


def _relative(path: Path) -> str:
    return path.relative_to(PROJECT_ROOT).as_posix()


def stage_sources(compute_module: str, read: ReadSource = _read) -> dict[str, str]:
    """Relative path -> digest of every source a stage's artifact depends on; what its modules import from
    tasks/artifacts.py besides the nouns (and what the nouns own) as "tasks/artifacts.py:NAME"."""
    files = set(reached_sources(compute_module, read))
    helpers, modules = _artifacts_helpers(files, read)
    for name in modules:
        files.update(reached_sources(name, read))
    return {**{_relative(path): source_digest(path, read) for path in sorted(files)}, **helpers}


# -- a module's top-level definitions, and the nouns --------------------------------------------------------


def _top_level(module: Module, read: ReadSource) -> dict[str, ast.stmt]:
    """Name -> the top-level statement that defines it (a class, a function, an assignment)."""
    found: dict[str, ast.stmt] = {}
    for node in _parse(read(module.path)).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            found[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        found[name.id] = node
    return found


def _import_targets(node: ast.stmt, read: ReadSource) -> dict[str, str]:
    """Name an import statement binds -> the project module that defines it (names from outside left out)."""
    bound: dict[str, str] = {}
    if isinstance(node, ast.Import):
        for alias in node.names:
            target = alias.name if alias.asname else alias.name.split(".")[0]
            bound[alias.asname or target] = target
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        for alias in node.names:
            full = f"{node.module}.{alias.name}"
            bound[alias.asname or alias.name] = full if find_module(full) is not None else _defining_module(node.module, alias.name, read)
    return {name: module for name, module in bound.items() if find_module(module) is not None}


def _definitions(module: Module, start: Iterable[ast.AST], read: ReadSource) -> tuple[dict[str, ast.stmt], set[str]]:
    """The top-level definitions of `module` that the code `start` uses, and those they use in turn, and the
    project modules this code imports (at the module's top or inside functions)."""
    top = _top_level(module, read)
    imported: dict[str, str] = {}
    for node in _parse(read(module.path)).body:
        imported.update(_import_targets(node, read))
    used: dict[str, ast.stmt] = {}
    modules: set[str] = set()
    todo = list(start)
    while todo:
        code = todo.pop()
        for node in ast.walk(code):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules.update(_import_targets(node, read).values())
        for name in _global_names(code):
            if name in imported:
                modules.add(imported[name])
            elif name in top and name not in used:
                used[name] = top[name]
                todo.append(top[name])
    return used, modules


def _global_names(node: ast.AST, local: frozenset[str] = frozenset()) -> set[str]:
    """The names a piece of code reads from its module: those of a function's parameters and of what it assigns
    are its own in its body (`columns(rows)` reads its argument, not the module's `rows`)."""
    if isinstance(node, ast.Name):
        return {node.id} - local if isinstance(node.ctx, ast.Load) else set()
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        return set().union(*(_global_names(child, local) for child in ast.iter_child_nodes(node)))
    args = node.args
    parameters = [*args.posonlyargs, *args.args, *args.kwonlyargs, *filter(None, (args.vararg, args.kwarg))]
    outside = [*args.defaults, *filter(None, args.kw_defaults), *(a.annotation for a in parameters if a.annotation)]
    if not isinstance(node, ast.Lambda):
        outside += [*node.decorator_list, *filter(None, [node.returns])]
    body = node.body if isinstance(node.body, list) else [node.body]
    own = {a.arg for a in parameters} | {
        n.id for statement in body for n in ast.walk(statement) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }
    names = set().union(*(_global_names(child, local) for child in outside))
    return names.union(*(_global_names(statement, local | own) for statement in body))


def _declaration(noun: Any, modules: Iterable[str], read: ReadSource) -> tuple[Module, ast.Call]:
    """Where `NAME = SomeNoun("name", ...)` declares the noun (at the top of one of `modules`), and that call."""
    cls = type(noun).__name__
    for name in dict.fromkeys(modules):
        module = find_module(name)
        if module is None:
            continue
        for node in _parse(read(module.path)).body:
            call = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
            if not isinstance(call, ast.Call):
                continue
            called = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", None)
            named = [*call.args[:1], *(k.value for k in call.keywords if k.arg == "name")]
            if called == cls and any(isinstance(n, ast.Constant) and n.value == noun.name for n in named):
                return module, call
    raise LookupError(
        f"noun {noun.name!r}: no top-level `... = {cls}({noun.name!r}, ...)` in {', '.join(dict.fromkeys(modules))}; "
        "declare it there so that its format can be recorded"
    )


def noun_entry(noun: Any, modules: Sequence[str] = (NOUNS_MODULE,), read: ReadSource = _read) -> dict[str, Any]:
    """A noun's record: its format version, the digest of its definition (its class and bases with what they use
    from their modules, and its declaration without `version`) and the digests of the project sources that
    code imports. `modules`: where to look for its declaration (besides its class's module)."""
    cls = type(noun)
    declared_in, call = _declaration(noun, [cls.__module__, *modules], read)
    call = copy.deepcopy(call)
    call.keywords = [keyword for keyword in call.keywords if keyword.arg != "version"]
    classes: dict[str, dict[str, ast.stmt]] = {declared_in.name: {}}  # module -> class name -> its definition
    for base in cls.__mro__:
        module = find_module(base.__module__)
        if module is not None:
            node = _top_level(module, read).get(base.__name__)
            if not isinstance(node, ast.ClassDef):
                raise LookupError(f"noun {noun.name!r}: its class {base.__qualname__} is not defined at the top of {module.relative}")
            classes.setdefault(module.name, {})[base.__name__] = node
    parts: list[ast.AST] = [call]
    imported: set[str] = set()
    for name, defined in sorted(classes.items()):
        start = [*defined.values(), *([call] if name == declared_in.name else [])]
        used, modules_used = _definitions(find_module(name), start, read)  # type: ignore[arg-type]
        used.update(defined)
        parts += [_without_docstrings(copy.deepcopy(used[key])) for key in sorted(used)]
        imported |= modules_used
    files = sorted({path for name in imported for path in reached_sources(name, read)})
    return {
        "version": noun.format_version,
        "declared_in": declared_in.relative,
        "digest": _tree_digest(*parts),
        "sources": {_relative(path): source_digest(path, read) for path in files},
    }


def _owned_by_nouns(read: ReadSource) -> set[str]:
    """The names of tasks/artifacts.py that the nouns declared there own: the nouns, and every definition a
    noun's record covers (their classes, and what those use)."""
    import tasks.artifacts as artifacts

    module = find_module(NOUNS_MODULE)
    assert module is not None
    nouns = {name for name, value in vars(artifacts).items() if isinstance(value, artifacts.Noun)}
    classes = {type(getattr(artifacts, name)).__name__ for name in nouns}
    top = _top_level(module, read)
    start = [top[name] for name in sorted(nouns | classes) if name in top]
    return nouns | set(_definitions(module, start, read)[0])


def _artifacts_helpers(files: Iterable[Path], read: ReadSource) -> tuple[dict[str, str], set[str]]:
    """What the modules `files` import from tasks/artifacts.py that no noun owns (a helper such as `rows`):
    "tasks/artifacts.py:NAME" -> the digest of its definition and what it uses there, and the project modules
    that code imports. A module that imports tasks/artifacts.py whole is taken to use every name in it."""
    module = find_module(NOUNS_MODULE)
    assert module is not None
    top = _top_level(module, read)
    wanted: set[str] = set()
    for path in files:
        for node in ast.walk(_parse(read(path))):
            if isinstance(node, ast.ImportFrom) and node.module == NOUNS_MODULE and node.level == 0:
                wanted.update(alias.name for alias in node.names)
            elif isinstance(node, (ast.Import, ast.ImportFrom)) and NOUNS_MODULE in _import_targets(node, read).values():
                wanted.update(top)  # `from tasks import artifacts` / `import tasks.artifacts`
    owned = _owned_by_nouns(read)
    helpers: dict[str, str] = {}
    modules: set[str] = set()
    imported: dict[str, str] = {}
    for node in _parse(read(module.path)).body:
        imported.update(_import_targets(node, read))
    for name in sorted(wanted - owned):
        if name in imported:  # a name tasks/artifacts.py imports itself: its own module counts
            modules.add(imported[name])
        elif name in top:
            used, modules_used = _definitions(module, [top[name]], read)
            used.setdefault(name, top[name])
            helpers[f"{module.relative}:{name}"] = _tree_digest(*(_without_docstrings(copy.deepcopy(used[k])) for k in sorted(used)))
            modules |= modules_used
    return helpers, modules - {NOUNS_MODULE}


def current(read: ReadSource = _read) -> dict[str, dict]:
    """What the record should say now: per stage, its code version and its sources' digests; under "nouns", per
    noun a catalog stage makes, its format version, the digest of its definition and its sources' digests."""
    from tasks.catalog import all_stages

    stages = all_stages()
    if any(stage.name == NOUNS for stage in stages):
        raise ValueError(f"a stage may not be called {NOUNS!r}: the record keeps its nouns under that name")
    nouns: dict[str, Any] = {}
    makers: dict[str, list[str]] = {}
    for stage in stages:
        for noun in stage.makes:
            if nouns.setdefault(noun.name, noun) is not noun:
                raise ValueError(f"two different nouns are called {noun.name!r}")
            makers.setdefault(noun.name, []).append(stage.compute_module)
    record: dict[str, dict] = {
        stage.name: {"code_version": stage.code_version, "sources": stage_sources(stage.compute_module, read)} for stage in stages
    }
    record[NOUNS] = {name: noun_entry(noun, [NOUNS_MODULE, *makers[name]], read) for name, noun in sorted(nouns.items())}
    return record


def recorded() -> dict[str, dict]:
    return json.loads(RECORD.read_text()) if RECORD.is_file() else {}


def _stages(entries: dict[str, dict]) -> dict[str, dict]:
    return {name: entry for name, entry in entries.items() if name != NOUNS}


def _noun_changes(entry: dict[str, Any], old: dict[str, Any]) -> list[str]:
    """What changed in a noun's code: its definition, and the paths of its sources that changed."""
    sources, before = entry["sources"], old.get("sources", {})
    changed = sorted(path for path in set(sources) | set(before) if sources.get(path) != before.get(path))
    return (["its definition in " + entry["declared_in"]] if entry["digest"] != old.get("digest") else []) + changed


def problems(now: dict[str, dict], record: dict[str, dict]) -> list[str]:
    """One line per stage or noun whose record is out of date, saying what changed and what to do."""
    lines = []
    for stage, entry in _stages(now).items():
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
    lines += [f"stage {stage!r} is recorded but no longer in the catalog: run --record" for stage in sorted(set(_stages(record)) - set(now))]
    nouns, recorded_nouns = now.get(NOUNS, {}), record.get(NOUNS, {})
    for noun, entry in nouns.items():
        old = recorded_nouns.get(noun)
        if old is None:
            lines.append(f"noun {noun!r} is not recorded: run `python -m tasks.code_versions --record`")
        elif entry["version"] != old["version"]:
            lines.append(
                f"noun {noun!r}: format version {old['version']} -> {entry['version']} is not recorded: "
                "run `python -m tasks.code_versions --record`"
            )
        elif changes := _noun_changes(entry, old):
            lines.append(
                f"noun {noun!r}: its format code changed ({', '.join(changes)}) but its format version did not: bump "
                f"its `version` in {entry['declared_in']} and run `python -m tasks.code_versions --record`, or, if what "
                f"it saves and loads cannot change, run `python -m tasks.code_versions --outputs-unchanged {noun}`"
            )
    lines += [f"noun {noun!r} is recorded but no stage makes it any more: run --record" for noun in sorted(set(recorded_nouns) - set(nouns))]
    return lines


def update(now: dict[str, dict], record: dict[str, dict], outputs_unchanged: Iterable[str] = ()) -> dict[str, dict]:
    """The new record: stages and nouns with a new version (or new ones) as they are now; stages whose source
    changed with the same version, and nouns whose code changed with the same format version, only when named in
    `outputs_unchanged`. Raises ValueError for the others, and for a name that is neither a stage nor a noun."""
    allowed = set(outputs_unchanged)
    stages, nouns, recorded_nouns = _stages(now), now.get(NOUNS, {}), record.get(NOUNS, {})
    unknown = allowed - set(stages) - set(nouns)
    if unknown:
        raise ValueError(f"unknown stage(s) or noun(s) {sorted(unknown)}; stages are {', '.join(stages)}; nouns are {', '.join(nouns)}")
    refused = [
        stage
        for stage, entry in stages.items()
        if stage in record
        and entry["code_version"] == record[stage]["code_version"]
        and entry["sources"] != record[stage]["sources"]
        and stage not in allowed
    ]
    refused_nouns = [
        noun
        for noun, entry in nouns.items()
        if noun in recorded_nouns
        and entry["version"] == recorded_nouns[noun]["version"]
        and _noun_changes(entry, recorded_nouns[noun])
        and noun not in allowed
    ]
    errors = []
    if refused:
        errors.append(
            f"the source of {refused} changed but not the code version: bump it in tasks/catalog.py, or pass "
            f"--outputs-unchanged {' '.join(refused)} if their artifacts cannot change"
        )
    if refused_nouns:
        errors.append(
            f"the format code of the noun(s) {refused_nouns} changed but not the format version: bump their `version` "
            f"where they are declared (tasks/artifacts.py), or pass --outputs-unchanged {' '.join(refused_nouns)} if what "
            "they save and load cannot change"
        )
    if errors:
        raise ValueError("; ".join(errors))
    return now


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check or update tasks/code_versions.json.")
    parser.add_argument(
        "--record", action="store_true", help="record stages and nouns whose (format) version was bumped, and new ones"
    )
    parser.add_argument(
        "--outputs-unchanged",
        nargs="+",
        default=[],
        metavar="NAME",
        help="record these stages' or nouns' new source with their old (format) version",
    )
    args = parser.parse_args(argv)
    now, record = current(), recorded()
    if args.record or args.outputs_unchanged:
        try:
            RECORD.write_text(json.dumps(update(now, record, args.outputs_unchanged), indent=1, sort_keys=True) + "\n")
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"recorded {len(_stages(now))} stages and {len(now[NOUNS])} nouns in {RECORD.relative_to(PROJECT_ROOT)}")
        return 0
    found = problems(now, record)
    for line in found:
        print(line, file=sys.stderr)
    if not found:
        print(f"{len(_stages(now))} stages and {len(now[NOUNS])} nouns: code and format versions match their sources")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
