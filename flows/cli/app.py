"""The `dreamedit3d` app: the commands of flows/cli/edit.py, store.py, server.py and world.py on one typer app,
and `run`, which runs it for `flows.cli.main` with what the early check read (flows/cli/settings.py).

Every command takes `--store` (default ./dreamedit3d-store, or $DREAMEDIT3D_STORE) and `--json` (one JSON
object on stdout; progress and messages go to stderr). User mistakes give a one-line error and exit 2;
`--debug` shows the traceback of unexpected failures, `--verbose` Prefect's own log lines.
"""

from __future__ import annotations

import sys
import traceback

import typer

from flows.cli import edit, server, store, world
from flows.cli.common import UserError
from flows.cli.settings import Given
from flows.text import one_line

app = typer.Typer(
    name="dreamedit3d",
    help="Text-guided editing of 3D assets: personalise a multi-view diffusion model to one asset, then edit it. "
    "Global options: --version (alone), and with any command --debug (the traceback of an unexpected failure), "
    "--verbose (Prefect's own log lines).",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# in the order `--help` lists them: commands, then groups of commands
app.command()(edit.edit)
for _name, _command in edit.stage_commands():
    app.command(name=_name)(_command)
app.command()(edit.plan)
app.command()(edit.components)
app.command()(edit.example)
app.command("convert-mvdream")(edit.convert_mvdream)
app.command()(server.batch)
app.command()(store.status)
app.command()(store.verify)
app.command()(store.prune)
app.add_typer(server.server_app, name="server")
app.add_typer(edit.config_app, name="config")
app.add_typer(world.world_app, name="world")
app.add_typer(store.ledger_app, name="ledger")

INTERRUPTED = "interrupted: committed stages are kept; run the same command again to resume"


def run(debug: bool, given: Given) -> None:
    """Run the command in sys.argv with `given` (the settings the early check read) as its context object;
    exit with 2 for a user's mistake, 130 when interrupted.

    Ctrl-C (or SIGTERM) is noted here before anything else sees it: Prefect's engine may turn the
    KeyboardInterrupt into another error or into a quiet return, and a script must never take an interrupted
    edit for a finished one. The first signal also stops the command's worker processes and Blender
    (`flows.stopping`): the command is gone within a few seconds, and a second Ctrl-C is never needed.
    """
    from flows import stopping

    interrupted: list[int] = []

    def on_interrupt(signum: int) -> None:
        from tasks import interruption

        interrupted.append(signum)
        interruption.request()  # stages check it too: the KeyboardInterrupt can be lost on its way out

    stopping.install(on_interrupt, farewell=_say_interrupted)  # SIGINT and SIGTERM: workers stopped too
    try:
        _dispatch(debug, given, interrupted)
    except SystemExit:
        if interrupted:
            _stop_interrupted()
        raise
    if interrupted:
        _stop_interrupted()


_said: list[bool] = []


def _say_interrupted() -> None:
    if not _said:  # once, whichever of the normal path and the stop's watchdog gets here first
        _said.append(True)
        typer.echo(INTERRUPTED, err=True)


def _stop_interrupted() -> None:
    from flows import stopping

    stopping.wait_until_stopped()  # the workers' last words come before this command's last line
    _say_interrupted()
    sys.exit(130)


def _dispatch(debug: bool, given: Given, interrupted: list[int]) -> None:
    try:
        app(standalone_mode=False, obj=given)
    except UserError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(2)
    except (typer.Exit, SystemExit) as stop:
        code = getattr(stop, "exit_code", getattr(stop, "code", 0))
        sys.exit(code)
    except (typer.Abort, KeyboardInterrupt):
        _stop_interrupted()
    except Exception as error:  # click's usage errors, bad input (ValueError) and crashes
        if interrupted:  # whatever the interruption became on its way out
            _stop_interrupted()
        # click's usage errors (typer >= 0.22 carries its own copy of click, so match by behaviour)
        if isinstance(getattr(error, "exit_code", None), int) and callable(getattr(error, "show", None)):
            error.show()
            sys.exit(error.exit_code)
        if type(error).__name__ == "Abort":  # click's Ctrl-C at a prompt, from typer's own copy of click
            _stop_interrupted()
        if debug:
            traceback.print_exc()
        if isinstance(error, ValueError):
            typer.echo(f"error: {one_line(error)}", err=True)
            sys.exit(2)
        typer.echo(f"error: {type(error).__name__}: {one_line(error)} (run with --debug for the traceback)", err=True)
        sys.exit(1)
