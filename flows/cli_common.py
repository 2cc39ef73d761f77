"""What the main command line and its sub-command modules share: the one-line user error, the common options
and how a command prints its result (in a module of their own, so that `python -m flows.cli` and
`flows.world_cli` share one class)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

DEFAULT_STORE = "./dreamedit3d-store"
StoreOption = Annotated[
    str, typer.Option("--store", envvar="DREAMEDIT3D_STORE", help="Artifact store: a folder or an fsspec URL.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


PRESET_ENV = "DREAMEDIT3D_PRESET"  # the preset of commands that name none
MVDREAM_ENV = "DREAMEDIT3D_MVDREAM"  # a converted MVDream folder: the default preset is then `mvdream`, with it
TINY_NOTE = "preset tiny: random untrained models, every edit comes out as noise (to try the pipeline in seconds; --preset world edits for real)"


def default_preset() -> str:
    """The preset of a command that names none: $DREAMEDIT3D_PRESET; else `mvdream` when $DREAMEDIT3D_MVDREAM
    names a converted MVDream folder; else `world` (the shipped small model: real edits of coloured parts)."""
    named = os.environ.get(PRESET_ENV)
    if named:
        return named
    return "mvdream" if os.environ.get(MVDREAM_ENV) else "world"


def preset_overrides(preset: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """`mvdream` without a model path takes $DREAMEDIT3D_MVDREAM's folder."""
    folder = os.environ.get(MVDREAM_ENV)
    named = overrides.get("preset", preset)
    if named == "mvdream" and folder and not (overrides.get("model") or {}).get("path"):
        return {**overrides, "model": {**(overrides.get("model") or {}), "path": folder}}
    return overrides


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


MAX_YAML_DEPTH = 64  # settings and manifests nest a few levels; no real file comes near


def load_yaml(text: str) -> Any:
    """`yaml.safe_load`, refusing anchors and aliases, nesting deeper than MAX_YAML_DEPTH and values Python
    will not convert (an integer of thousands of digits): all as yaml.YAMLError."""
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader subclass)
    except (ValueError, RecursionError) as error:
        raise yaml.YAMLError(f"a value cannot be read ({type(error).__name__}: {one_line(error)})") from None


MAX_SETTINGS_BYTES = 1 << 20  # a --config file: settings, not data


class UserError(Exception):
    """A mistake the user can fix: printed as one line, exit code 2."""


def read_settings_file(path: Path) -> dict[str, Any]:
    """A --config YAML file as a mapping of stage settings ({} for an empty file); UserError otherwise."""
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    if path.stat().st_size > MAX_SETTINGS_BYTES:
        raise UserError(f"{path}: {path.stat().st_size} bytes is not a settings file (at most {MAX_SETTINGS_BYTES})")
    try:
        settings = load_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not valid YAML: {one_line(error)}") from None
    if settings is not None and not isinstance(settings, dict):
        raise UserError(f"{path}: expected a mapping of stage settings at the top level")
    return settings or {}


def printable(text: str) -> str:
    """Text for a terminal or Markdown: control characters (escape sequences, newlines) shown as escapes, so a
    name in a file cannot retitle the terminal, plant a hyperlink or write to the clipboard."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def emit(as_json: bool, payload: dict[str, Any], human: str) -> None:
    """A command's result: one JSON object on stdout with --json, else the human text."""
    if as_json:
        sys.stdout.write(json.dumps(payload, default=str) + "\n")
    else:
        typer.echo(human)


def server_note() -> None:
    """Say why the command is slow to start when it has to start a temporary Prefect server."""
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        typer.echo("starting a temporary local Prefect server (10-20 s; DREAMEDIT3D_SERVER=temporary)", err=True)
