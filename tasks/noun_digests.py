"""Noun digests for tasks/code_versions.py: the code that writes and reads each artifact noun.

A noun's record (`noun_entry`) digests its definition, i.e. its class and the class's bases with the helpers and
value types of their modules that this code uses, and the call that declares it (its `version` left out), each
without docstrings, beside the source digests of the project modules that code imports. What a stage imports
from tasks/artifacts.py that no noun owns (a helper such as `rows`) is digested per definition by
`artifacts_helpers`, for the stage's own sources.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tasks.source_digests import (
    NOUNS_MODULE,
    Module,
    ReadSource,
    defining_module,
    find_module,
    parse,
    reached_sources,
    read_text,
    relative,
    source_digest,
    tree_digest,
    without_docstrings,
)


def _top_level(module: Module, read: ReadSource) -> dict[str, ast.stmt]:
    """Name -> the top-level statement that defines it (a class, a function, an assignment)."""
    found: dict[str, ast.stmt] = {}
    for node in parse(read(module.path)).body:
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
            bound[alias.asname or alias.name] = full if find_module(full) is not None else defining_module(node.module, alias.name, read)
    return {name: module for name, module in bound.items() if find_module(module) is not None}


def _definitions(module: Module, start: Iterable[ast.AST], read: ReadSource) -> tuple[dict[str, ast.stmt], set[str]]:
    """The top-level definitions of `module` that the code `start` uses, and those they use in turn, and the
    project modules this code imports (at the module's top or inside functions)."""
    top = _top_level(module, read)
    imported: dict[str, str] = {}
    for node in parse(read(module.path)).body:
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
        for node in parse(read(module.path)).body:
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


def noun_entry(noun: Any, modules: Sequence[str] = (NOUNS_MODULE,), read: ReadSource = read_text) -> dict[str, Any]:
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
        parts += [without_docstrings(copy.deepcopy(used[key])) for key in sorted(used)]
        imported |= modules_used
    files = sorted({path for name in imported for path in reached_sources(name, read)})
    return {
        "version": noun.format_version,
        "declared_in": declared_in.relative,
        "digest": tree_digest(*parts),
        "sources": {relative(path): source_digest(path, read) for path in files},
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


def artifacts_helpers(files: Iterable[Path], read: ReadSource) -> tuple[dict[str, str], set[str]]:
    """What the modules `files` import from tasks/artifacts.py that no noun owns (a helper such as `rows`):
    "tasks/artifacts.py:NAME" -> the digest of its definition and what it uses there, and the project modules
    that code imports. A module that imports tasks/artifacts.py whole is taken to use every name in it."""
    module = find_module(NOUNS_MODULE)
    assert module is not None
    top = _top_level(module, read)
    wanted: set[str] = set()
    for path in files:
        for node in ast.walk(parse(read(path))):
            if isinstance(node, ast.ImportFrom) and node.module == NOUNS_MODULE and node.level == 0:
                wanted.update(alias.name for alias in node.names)
            elif isinstance(node, (ast.Import, ast.ImportFrom)) and NOUNS_MODULE in _import_targets(node, read).values():
                wanted.update(top)  # `from tasks import artifacts` / `import tasks.artifacts`
    owned = _owned_by_nouns(read)
    helpers: dict[str, str] = {}
    modules: set[str] = set()
    imported: dict[str, str] = {}
    for node in parse(read(module.path)).body:
        imported.update(_import_targets(node, read))
    for name in sorted(wanted - owned):
        if name in imported:  # a name tasks/artifacts.py imports itself: its own module counts
            modules.add(imported[name])
        elif name in top:
            used, modules_used = _definitions(module, [top[name]], read)
            used.setdefault(name, top[name])
            helpers[f"{module.relative}:{name}"] = tree_digest(*(without_docstrings(copy.deepcopy(used[k])) for k in sorted(used)))
            modules |= modules_used
    return helpers, modules - {NOUNS_MODULE}
