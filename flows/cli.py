"""The `dreamedit3d` command line: answers what it can before the heavy imports, then runs the command.

Importing the commands loads torch and diffusers (seconds), so mistakes that need none of that are answered
first, in well under a second: `--version`, an unknown `--preset`, a `--config` file that is missing or not a
YAML mapping, a `--store` that is a file. The commands themselves are in `flows/commands.py`.

Commands that run flows use one local Prefect server, started in the background by the first of them
(`flows/local_server.py`). Global options: `--debug` shows the traceback of an unexpected failure,
`--verbose` Prefect's own log lines.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


from flows.cli_common import PRESET_ENV, UserError, read_settings_file
from flows.config_keys import recorded_tree, unknown_setting
from flows.local_server import ServerError, client_environment, ensure_server, running

# commands that run no flow, so need no Prefect server
SERVERLESS = {"verify", "status", "ledger", "config", "example", "convert-mvdream", "server", "plan", "prune"}
PRESETS_DIR = Path(__file__).resolve().parents[1] / "dreamedit3d_core" / "presets"  # read, never imported


def preset_names() -> list[str]:
    return sorted(path.stem for path in PRESETS_DIR.glob("*.yaml"))


def _option(argv: list[str], name: str) -> str | None:
    """The value of `--name VALUE` or `--name=VALUE` (the last one given), or None."""
    found = None
    for index, argument in enumerate(argv):
        if argument == name and index + 1 < len(argv):
            found = argv[index + 1]
        elif argument.startswith(name + "="):
            found = argument.split("=", 1)[1]
    return found


def early_mistake(argv: list[str]) -> str | None:
    """The first mistake in the arguments that can be found without importing the commands, or None.
    (`world` commands take a config of their own, with `dataset:` and `pretrain:` sections, and
    `convert-mvdream --config` is MVDream's model file: those commands check them.)"""
    command = next((argument for argument in argv if not argument.startswith("-")), None)
    pipeline = command not in ("world", "convert-mvdream")
    preset = _option(argv, "--preset")
    if preset is not None and preset not in preset_names():
        return f"unknown preset {preset!r}; choose one of {', '.join(preset_names())}"
    named = os.environ.get(PRESET_ENV)
    if preset is None and named and named not in preset_names():
        return f"{PRESET_ENV}={named}: unknown preset {named!r}; choose one of {', '.join(preset_names())}"
    config = _option(argv, "--config") if command != "convert-mvdream" else None
    if config is not None:
        path = Path(config)
        try:
            settings = read_settings_file(path)
        except UserError as error:
            return str(error)
        named = (settings or {}).get("preset") if pipeline else None
        if named is not None and named not in preset_names():
            return f"{path}: unknown preset {named!r}; choose one of {', '.join(preset_names())}"
        unknown = unknown_setting(settings or {}, recorded_tree()) if pipeline else None
        if unknown is not None:
            return f"{path}: {unknown}"
    store = _option(argv, "--store") or os.environ.get("DREAMEDIT3D_STORE")
    if store is not None and "://" not in store:
        for folder in (Path(store), *Path(store).parents):
            if folder.exists():
                if not folder.is_dir():
                    return f"--store {store}: {folder} is a file, not a folder"
                break
    return None


def main() -> None:
    argv = sys.argv[1:]
    if argv and argv[0] == "--version":
        try:
            print(f"dreamedit3d {version('dreamedit3d')}")
        except PackageNotFoundError:
            print("dreamedit3d (not installed)")
        return
    mistake = early_mistake(argv)
    if mistake is not None:
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
    from flows.commands import run

    run(debug)


if __name__ == "__main__":
    main()
