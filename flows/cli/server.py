"""Serving commands: `server status|start|secret|stop` (the local Prefect server the commands share,
flows/local_server.py) and `batch` (a library's edits on it, in worker processes or on the gpu work pool).

The commands are plain functions; flows/cli/app.py puts them on the app, in the order `--help` lists them.
"""

from __future__ import annotations

import shlex
import sys
from typing import Annotated, Optional

import typer

from flows.cli.common import DEFAULT_STORE, ConfigOption, JsonOption, PresetOption, StoreOption, UserError, emit, server_note
from flows.cli.edit import (
    AllowNoEditOption,
    FailOnUnappliedOption,
    OutOption,
    SeedOption,
    check_prompts,
    checked_plan,
    exit_on_unapplied,
)
from flows.cli.settings import given, load_config

server_app = typer.Typer(name="server", help="The local Prefect server the commands share.", no_args_is_help=True)


@server_app.command("status")
def server_status(as_json: JsonOption = False) -> None:
    """Where the background server is (started by the first command that runs a flow), or that none runs."""
    from flows.local_server import public, running, server_text

    state = running()
    emit(as_json, {"running": state is not None, **public(state or {})}, server_text(state) if state else "not running")


@server_app.command("start")
def server_start(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on: 127.0.0.1 (this machine only) or 0.0.0.0 / this "
                          "machine's address for workers on other machines (then an API secret is required).")
    ] = "127.0.0.1",
    port: Annotated[Optional[int], typer.Option("--port", min=1, max=65535, help="Port (default: a free one).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Start the background server (commands start one on loopback by themselves; this one can listen wider)."""
    from flows.local_server import ServerError, public, server_text, start_server

    try:
        state = start_server(host, port)
    except ServerError as error:
        raise UserError(str(error)) from None
    emit(as_json, {"running": True, **public(state)}, server_text(state))


@server_app.command("secret")
def server_secret() -> None:
    """Print the running server's API secret: the UI's login, and PREFECT_API_AUTH_STRING on other machines."""
    from flows.local_server import running

    state = running()
    if state is None or not state.get("secret"):
        raise UserError("no server with a secret runs here (`dreamedit3d server start` starts one)")
    typer.echo(state["secret"])


@server_app.command("stop")
def server_stop(as_json: JsonOption = False) -> None:
    """Stop the background server; the next command that runs a flow starts it again."""
    from flows.local_server import stop

    state = stop()
    emit(as_json, {"stopped": state is not None}, f"stopped the server at {state['url']}" if state else "no server was running")


def batch(
    ctx: typer.Context,
    manifest: Annotated[
        str, typer.Argument(help="CSV, Parquet or YAML (a path or a URL such as s3://bucket/library/manifest.csv): per row an asset, its edits, overrides.")
    ],
    store: StoreOption = DEFAULT_STORE,
    preset: PresetOption = None,
    config: ConfigOption = None,
    max_concurrency: Annotated[int, typer.Option("--max-concurrency", min=1, help="Assets edited at once.")] = 2,
    distributed: Annotated[
        bool, typer.Option("--distributed", help="Run the GPU stages as deployments on the gpu work pool.")
    ] = False,
    seed: SeedOption = 0,
    out: OutOption = None,
    fail_on_unapplied: FailOnUnappliedOption = False,
    allow_no_edit: AllowNoEditOption = False,
    as_json: JsonOption = False,
) -> None:
    """Edit every asset of MANIFEST; committed stages are reused. Exit 1 when any asset failed (3 with
    --fail-on-unapplied when every asset ran but an edit did not land)."""
    from flows.edit_library import absolute_store, batch_summary, edit_library
    from flows.manifest import read_manifest
    from flows.remote_library import absolute_location

    base = load_config(given(ctx), preset, config)
    entries = read_manifest(manifest, base)  # every bad row named (exit 2) before a server starts or any work runs
    for entry in entries:  # every prompt: words next to a token, and a token the cached components have
        check_prompts(list(entry.edits), allow_no_edit, where=f"{manifest}: row {entry.row}: ")
        where = f"{manifest}: row {entry.row}: "
        checked_plan(entry.asset, entry.edits, absolute_store(store), entry.config(base), seed, {}, where, in_batch=True)
    from prefect.settings import get_current_settings

    if distributed and not get_current_settings().api.url:
        raise UserError("--distributed needs PREFECT_API_URL: a server with the deployments and a gpu worker")
    server_note()
    from prefect import tags

    from flows.edit_asset import run_tags

    with tags(*run_tags(base, absolute_store(store), absolute_location(manifest))):
        state = edit_library(
            manifest=absolute_location(manifest),
            store=absolute_store(store),
            preset=base.preset,
            overrides=base.model_dump(mode="json", exclude={"preset"}),
            max_concurrency=max_concurrency,
            distributed=distributed,
            seed=seed,
            command=shlex.join(["dreamedit3d", *sys.argv[1:]]),
            return_state=True,
        )
    summary = batch_summary(state)
    payload = summary.to_json()
    if out is not None:
        from flows.outputs import write_batch_outputs

        payload["out"] = write_batch_outputs(out, summary)
    emit(as_json, payload, summary.text() + (f"\nresults: {payload['out']['index']}" if out is not None else ""))
    if summary.failed:
        raise SystemExit(1)  # not typer.Exit: the app runs with standalone_mode=False, which swallows it
    exit_on_unapplied(fail_on_unapplied, [v for asset in summary.assets for v in asset.verdicts])
