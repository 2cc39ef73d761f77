"""What the command modules share: the one-line user error, the common options and how a command prints its
result."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from dreamedit3d_core.environment import declaration

STORE_ENV = "DREAMEDIT3D_STORE"  # read by typer itself (`envvar`), by its declared name, for its declared default
DEFAULT_STORE: str = declaration(STORE_ENV).default
StoreOption = Annotated[
    str, typer.Option("--store", envvar=STORE_ENV, help="Artifact store: a folder or an fsspec URL.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
PresetOption = Annotated[
    Optional[str],
    typer.Option(
        "--preset",
        help="Configuration preset: world (our small model for objects of coloured parts; the default), mvdream "
        "(real MVDream weights from a local folder; the default when $DREAMEDIT3D_MVDREAM names one) or tiny "
        "(random tiny models: seconds per stage, every edit is noise). $DREAMEDIT3D_PRESET sets the default.",
        show_default=False,
    ),
]
ConfigOption = Annotated[
    Optional[Path], typer.Option("--config", help="YAML file overriding the preset's settings.", exists=False)
]


class UserError(Exception):
    """A mistake the user can fix: printed as one line, exit code 2."""


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
