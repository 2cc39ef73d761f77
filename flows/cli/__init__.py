"""The `dreamedit3d` command line: answers what it can before the heavy imports, then runs the command.

Importing the commands loads the config classes (pydantic) and the stage catalog, and running them torch and
diffusers (seconds), so mistakes that need none of that are answered first, in well under a second:
`--version`, an unknown `--preset`, a `--config` file that is missing, not a YAML mapping or names an unknown
setting, a `--store` that is a file. What that check read is what the command gets.

    settings.py  the one path of a command's settings: read and checked here, handed to the command
    app.py       the typer app: every command on it, and how a command's end becomes an exit code
    edit.py      edit, a command per stage, plan, components, config show, example, convert-mvdream
    store.py     status, verify, prune, ledger compact
    server.py    server status|start|secret|stop, batch
    world.py     world data|train|export-data|example
    common.py    what the command modules share: the user's error, the common options, printing a result

Commands that run flows use one local Prefect server, started in the background by the first of them
(`flows/local_server.py`). Global options: `--debug` shows the traceback of an unexpected failure,
`--verbose` Prefect's own log lines.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import PackageNotFoundError, version

from flows import exiting
from flows.cli.common import UserError
from flows.cli.settings import check_arguments
from flows.local_server import ServerError, client_environment, ensure_server, running

# commands that run no flow, so need no Prefect server
SERVERLESS = {"verify", "status", "ledger", "config", "example", "convert-mvdream", "server", "plan", "prune"}


def main() -> None:
    # the process ends without the interpreter's teardown (seconds once torch is loaded): `flows.exiting`;
    # registered before the libraries' own exit handlers, so that they all run first
    exiting.install()
    try:
        _main()
    except BaseException as stop:
        exiting.finish(stop)
        raise
    exiting.finish()


def _main() -> None:
    argv = sys.argv[1:]
    if argv and argv[0] == "--version":
        try:
            print(f"dreamedit3d {version('dreamedit3d')}")
        except PackageNotFoundError:
            print("dreamedit3d (not installed)")
        return
    try:
        given = check_arguments(argv)
    except UserError as mistake:
        sys.stderr.write(f"error: {mistake}\n")
        sys.exit(2)
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    # the terminal shows this command's own output; Prefect's logs still go to its server (and its UI)
    if not sys.stderr.isatty():  # no library's progress bars in a log file (ours write lines there)
        os.environ.setdefault("TQDM_DISABLE", "1")
    if "--verbose" in sys.argv:
        sys.argv.remove("--verbose")
    else:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    command = next((argument for argument in argv if not argument.startswith("-")), None)
    if command is not None and command not in SERVERLESS and not {"--help", "-h", "--dry-run"} & set(argv):
        try:
            url = ensure_server()  # before prefect is imported, so that its settings see the URL
        except ServerError as error:
            sys.stderr.write(f"error: {error}\n")
            sys.exit(1)
        state = running() if url is not None else None
        if state is not None:
            os.environ.update(client_environment(state))  # the API, its secret, the UI for run links
    from flows.cli.app import run

    run(debug, given)
