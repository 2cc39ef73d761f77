"""What the main command line and its sub-command modules share: the one-line user error and the common
options (in a module of their own, so that `python -m flows.cli` and `flows.world_cli` share one class)."""

from typing import Annotated

import typer

DEFAULT_STORE = "./dreamedit3d-store"
StoreOption = Annotated[
    str, typer.Option("--store", envvar="DREAMEDIT3D_STORE", help="Artifact store: a folder or an fsspec URL.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


class UserError(Exception):
    """A mistake the user can fix: printed as one line, exit code 2."""


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
