"""docs/configuration.md, the settings reference, written from the config classes themselves: every setting of
`PipelineConfig` with its type, its default, what each preset makes of it, whether it is execution-only or
per-asset, and what it does (the field's pydantic `description`, else the comment beside or directly above it in
its class's source); then every environment variable, from its declaration (dreamedit3d_core/environment.py).

    python -m flows.config_keys --record   # writes flows/config_keys.json and docs/configuration.md

`tests/flows/test_cli_checks.py` fails while the checked-in page differs from what this would write now.
"""

from __future__ import annotations

import ast
import inspect
import io
import json
import re
import textwrap
import tokenize
from functools import cache
from pathlib import Path
from typing import Any, get_origin

from pydantic import BaseModel, TypeAdapter
from pydantic_core import PydanticUndefined

from dreamedit3d_core.asset_settings import asset_paths
from dreamedit3d_core.config import PipelineConfig, preset_names, preset_settings
from dreamedit3d_core.environment import ENVIRONMENT, EnvironmentSetting
from dreamedit3d_core.execution import execution_paths

DOC_FILE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
LONG_VALUE = 80  # a preset's value longer than this (as JSON) is summarised, with the file that holds it
_MISSING = object()  # a default a field does not have, a setting a preset does not make

INTRO = """\
# Settings reference

Every setting of the edit pipeline (`PipelineConfig`, `dreamedit3d_core/config.py`), generated from the config
classes by `python -m flows.config_keys --record`; do not edit this page by hand (a test fails while it is stale).

A setting's value comes from these layers, each over the one before:

1. **the class default** (the *default* column): the paper's reference numbers;
2. **the preset** (the *presets* column, where a preset differs from the default): `--preset world|tiny|mvdream`,
   `preset:` in the config file, or `$DREAMEDIT3D_PRESET`; the command line's default is `world` (`mvdream` when
   `$DREAMEDIT3D_MVDREAM` names a converted model folder, which then is its `model.path`), and `PipelineConfig()`
   is `tiny`. What each preset is for: [presets.md](presets.md);
3. **`--config FILE.yaml`**: any setting, merged over the preset (mappings merge, everything else replaces);
4. **a manifest row's `overrides`** (`dreamedit3d batch`): only the *per-asset* settings, merged over the batch's
   config for that asset ([library.md](library.md#the-manifest));
5. **command-line flags** choose the preset (`--preset`) and the file (`--config`) but set no setting themselves;
   `--edit` and `--seed` belong to each edit, not to the configuration.

`dreamedit3d config show [--preset P] [--config F]` prints the result. *Execution-only* settings (devices, threads,
timeouts, limits) change how a stage runs, not what it makes: changing one recomputes nothing
([pipeline.md](pipeline.md#the-stage-catalog)). They are marked `execution_field(...)` on the config classes, and
the per-asset ones `asset_field(...)`. The `DREAMEDIT3D_*` environment variables are execution-only settings too:
[the last section](#environment-variables).
"""

HEADER = "| setting | type | default | presets | kind | description |\n| --- | --- | --- | --- | --- | --- |\n"

ENVIRONMENT_INTRO = """\
## Environment variables

What each process (a command, a flow, a worker) reads from its environment, declared once with its type and default
in `dreamedit3d_core/environment.py` and read through its `setting(name)`. Every one is *execution-only*: it says
where data lives and how a stage runs, never what it computes, so none is part of an artifact key. Unset or empty, a
variable takes its default; a value its type refuses is an error that names the variable.

| variable | type | default | kind | description |
| --- | --- | --- | --- | --- |
"""


def configuration_doc() -> str:
    """The page, from the config classes and the presets as they are now."""
    marks = _Marks(set(execution_paths(PipelineConfig)), set(asset_paths(PipelineConfig)))
    presets = {name: preset_settings(name) for name in preset_names()}
    top = [name for name, field in PipelineConfig.model_fields.items() if not _is_config(field.annotation)]
    rows = [_row(PipelineConfig, name, _field_default(PipelineConfig, name), "", marks, presets) for name in top]
    blocks = [INTRO, "## Top level\n\n" + HEADER + "".join(rows)]
    for name, field in PipelineConfig.model_fields.items():
        if _is_config(field.annotation):
            blocks += _tables(field.annotation, _field_default(PipelineConfig, name), f"{name}.", 2, marks, presets)
    blocks.append(ENVIRONMENT_INTRO + "".join(_environment_row(declared) for declared in ENVIRONMENT))
    return "\n".join(blocks)


def _environment_row(declared: EnvironmentSetting) -> str:
    """An environment variable's row: its default as one would write it in the environment, `unset` for none."""
    default = declared.default
    if default is None:
        shown = "unset"
    elif isinstance(default, bool):
        shown = _code("true" if default else "false")
    else:
        shown = _code(f"{default:g}" if isinstance(default, float) else str(default))
    description = declared.description + (f" At least {declared.minimum:g}." if declared.minimum is not None else "")
    kind = "execution-only" if declared.execution_only else ""
    cells = [_code(declared.name), _code(declared.type.__name__), shown, kind, _prose(description)]
    return "| " + " | ".join(cells) + " |\n"


class _Marks:
    def __init__(self, execution: set[str], asset: set[str]) -> None:
        self.execution, self.asset = execution, asset

    def kind(self, path: str) -> str:
        """'execution-only' or 'per-asset' for a marked setting, or one inside a marked one."""
        within = {path} | {path[: i] for i, char in enumerate(path) if char == "."}
        return "execution-only" if within & self.execution else "per-asset" if within & self.asset else ""


def _tables(model: type[BaseModel], default: BaseModel, prefix: str, depth: int, marks: _Marks, presets: dict) -> list[str]:
    """A heading and a table for `model` (its settings under `prefix`), then one for each config class in it."""
    path = prefix.rstrip(".")
    kind = marks.kind(path)
    doc = model.__dict__.get("__doc__")  # its own docstring, not one it inherits
    about = f"`{model.__module__}.{model.__name__}`" + (f" ({kind})." if kind else ".")
    about += f" {_prose(inspect.cleandoc(doc))}" if doc else ""
    rows = [_row(model, name, getattr(default, name), prefix, marks, presets) for name in model.model_fields]
    blocks = [f"{'#' * depth} {path}\n\n{about}\n\n{HEADER}{''.join(rows)}"]
    for name, field in model.model_fields.items():
        if _is_config(field.annotation):
            blocks += _tables(field.annotation, getattr(default, name), f"{prefix}{name}.", min(depth + 1, 4), marks, presets)
    return blocks


def _row(model: type[BaseModel], name: str, default: Any, prefix: str, marks: _Marks, presets: dict) -> str:
    field = model.model_fields[name]
    path = f"{prefix}{name}"
    if _is_config(field.annotation):
        shown_default, in_presets = f"[below](#{path.replace('.', '')})", ""
    else:
        default_json = _MISSING if default is PydanticUndefined else _json(field.annotation, default)
        shown_default = "required" if default_json is _MISSING else _code(_json_text(default_json))
        differ = {
            preset: value
            for preset, settings in presets.items()
            if (value := _preset_json(settings, path, field.annotation)) is not _MISSING and value != default_json
        }
        in_presets = "; ".join(f"{preset}: {_preset_value(preset, value)}" for preset, value in differ.items())
    description = field.description or _comment(model, name)
    cells = [_code(path), _code(_type_text(field.annotation)), shown_default, in_presets, marks.kind(path), _prose(description)]
    return "| " + " | ".join(cells) + " |\n"


def _field_default(model: type[BaseModel], name: str) -> Any:
    """The class default of a field (a fresh one from its default factory)."""
    return model.model_fields[name].get_default(call_default_factory=True)


def _is_config(annotation: Any) -> bool:
    return isinstance(annotation, type) and get_origin(annotation) is None and issubclass(annotation, BaseModel)


def _json(annotation: Any, value: Any) -> Any:
    return TypeAdapter(annotation).dump_python(value, mode="json")


def _preset_json(settings: dict, path: str, annotation: Any) -> Any:
    """What a preset sets at `path`, read as the field reads it, as JSON; _MISSING where it sets nothing."""
    value: Any = settings
    for part in path.split("."):
        value = value.get(part, _MISSING) if isinstance(value, dict) else _MISSING
    if value is _MISSING:
        return _MISSING
    return _json(annotation, TypeAdapter(annotation).validate_python(value))


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _preset_value(preset: str, value: Any) -> str:
    text = _json_text(value)
    if len(text) > LONG_VALUE:
        what = f"{len(value)} values" if isinstance(value, list) else "a long value"
        return f"{what} (`dreamedit3d_core/presets/{preset}.yaml`)"
    return _code(text)


def _type_text(annotation: Any) -> str:
    """`int`, `Literal['auto', 'cpu']`, `Path | None`: the annotation without module names."""
    if isinstance(annotation, type) and get_origin(annotation) is None:
        return annotation.__name__
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_])", "", repr(annotation))


def _code(text: str) -> str:
    """`text` as code in a table cell."""
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}".replace("|", "\\|")


def _prose(text: str) -> str:
    """Plain text in a markdown table cell: no line breaks, no `|` that ends the cell, no `<asset0>` taken for HTML."""
    return " ".join(text.split()).replace("|", "\\|").replace("<", "&lt;").replace("*", "\\*")


def _comment(model: type[BaseModel], name: str) -> str:
    """The comment beside a field in the class that declares it, else the comment lines directly above it."""
    for klass in model.__mro__[: model.__mro__.index(BaseModel)]:
        declared = _declared_comments(klass)
        if name in declared:
            return declared[name]
    return ""


@cache
def _declared_comments(klass: type) -> dict[str, str]:
    """{field declared in the class body: its comment, or ""}, read from the class's source."""
    source = textwrap.dedent(inspect.getsource(klass))
    lines = source.splitlines()
    comments = {}  # line number -> (text, alone on its line)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            row, column = token.start
            comments[row] = (token.string.lstrip("#").strip(), not lines[row - 1][:column].strip())
    found = {}
    body = ast.parse(source).body[0]
    assert isinstance(body, ast.ClassDef)
    for node in body.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            statement = range(node.lineno, (node.end_lineno or node.lineno) + 1)
            beside = [comments[row][0] for row in statement if row in comments and not comments[row][1]]
            above, row = [], node.lineno - 1
            while row in comments and comments[row][1]:
                above.insert(0, comments[row][0])
                row -= 1
            found[node.target.id] = " ".join(beside or above)
    return found


def recorded_doc() -> str:
    return DOC_FILE.read_text() if DOC_FILE.is_file() else ""
