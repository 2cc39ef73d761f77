"""Text from other hands made safe to read and to show: YAML without aliases or deep nesting (settings files,
manifests), names shown without control characters, an error on one line. Only the standard library and
PyYAML: the command line reads settings with it before anything heavy is imported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_YAML_DEPTH = 64  # settings and manifests nest a few levels; no real file comes near


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors and aliases: a few kilobytes of nested aliases expand to gigabytes ("billion laughs");
    a manifest or a settings file never needs them."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases (&name, *name) are not allowed here", event.start_mark
            )
        # nesting is composed by recursion (and scanned ahead for each level): stop long before either costs
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_YAML_DEPTH} levels deep", event.start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_yaml(text: str) -> Any:
    """`yaml.safe_load`, refusing anchors and aliases, nesting deeper than MAX_YAML_DEPTH and values Python
    will not convert (an integer of thousands of digits): all as yaml.YAMLError."""
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader subclass)
    except (ValueError, RecursionError) as error:
        raise yaml.YAMLError(f"a value cannot be read ({type(error).__name__}: {one_line(error)})") from None


def read_yaml_file(path: Path, error: type[Exception]) -> Any:
    """A YAML file's document (`load_yaml`); `error`, naming the file, where it is not UTF-8 text or not YAML."""
    try:
        return load_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as problem:
        raise error(f"{path}: not UTF-8 text ({problem.reason} at byte {problem.start})") from None
    except yaml.YAMLError as problem:
        raise error(f"{path}: not valid YAML: {one_line(problem)}") from None


def printable(text: str) -> str:
    """Text for a terminal or Markdown: control characters (escape sequences, newlines) shown as escapes, so a
    name in a file cannot retitle the terminal, plant a hyperlink or write to the clipboard."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
