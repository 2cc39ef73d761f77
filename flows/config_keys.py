"""The names of every setting, as a tree, kept in `config_keys.json` so that the command line can refuse an
unknown setting before it imports the config classes (which load torch: seconds).

    python -m flows.config_keys --record   # after adding, removing or renaming a setting, or changing one

It also writes the settings reference, docs/configuration.md (flows/config_docs.py): every setting with its type,
default, presets, marks and comment. `tests/flows/test_cli_checks.py` fails while either file and the config
classes disagree.
"""

from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path
from typing import Any

KEYS_FILE = Path(__file__).with_name("config_keys.json")


def key_tree(model: Any) -> dict[str, Any]:
    """{setting: its own tree for a nested config class, or None for a value} of a pydantic config class."""
    from pydantic import BaseModel

    tree: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        nested = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        tree[name] = key_tree(annotation) if nested else None
    return tree


def recorded_tree() -> dict[str, Any]:
    return json.loads(KEYS_FILE.read_text())


def unknown_setting(settings: dict[str, Any], tree: dict[str, Any], prefix: str = "") -> str | None:
    """The first setting in `settings` the tree does not have, with the closest valid name, or None."""
    for name, value in settings.items():
        dotted = f"{prefix}{name}"
        if name not in tree:
            return unknown_name(name, list(tree), prefix)
        if isinstance(tree[name], dict) and isinstance(value, dict):
            found = unknown_setting(value, tree[name], dotted + ".")
            if found:
                return found
    return None


def unknown_name(name: Any, known: list[str], prefix: str = "") -> str:
    """`unknown setting 'PREFIX.NAME'` with the closest of the names valid there, else those names: the command
    line's one did-you-mean, for `unknown_setting` and for the config classes' own refusals (flows/cli/settings.py)."""
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f"; did you mean {prefix + close[0]!r}?" if close else f" (valid here: {', '.join(known)})" if known else ""
    dotted = f"{prefix}{name}"
    return f"unknown setting {dotted!r}{hint}"


def main(argv: list[str]) -> int:
    from dreamedit3d_core.config import PipelineConfig
    from flows.config_docs import DOC_FILE, configuration_doc, recorded_doc

    tree = key_tree(PipelineConfig)
    doc = configuration_doc()
    if argv == ["--record"]:
        KEYS_FILE.write_text(json.dumps(tree, indent=1, sort_keys=True) + "\n")
        DOC_FILE.write_text(doc)
        print(f"recorded the settings in {KEYS_FILE} and {DOC_FILE}")
        return 0
    stale = [str(file) for file, same in ((KEYS_FILE, tree == recorded_tree()), (DOC_FILE, doc == recorded_doc())) if not same]
    if stale:
        print(f"{' and '.join(stale)} out of date: run `python -m flows.config_keys --record`")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
