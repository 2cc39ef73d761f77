"""A command's settings, by one path: read and checked once, before anything heavy is imported, then handed to
the command.

1. `check_arguments(argv)` runs before the commands are imported (well under a second; no torch, no config
   classes): `--preset` and $DREAMEDIT3D_PRESET name a preset; the `--config` file is read (`read_settings_file`)
   and, for the pipeline's commands, its `preset:` and the name of every setting checked against
   flows/config_keys.json (`flows.config_keys.unknown_setting`, the one did-you-mean); a local `--store` is not
   a file. A mistake is one line and exit code 2.
2. What it read (`Given`) is the command's context object (`ctx.obj`); `load_config` puts those settings on the
   preset and lets the config classes check their values.

`world` commands take a config of their own (`dataset:` and `pretrain:` sections): read here too, its sections
checked by flows/cli/world.py. `convert-mvdream --config` is MVDream's model file: not read here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from dreamedit3d_core.environment import is_set, setting
from flows.cli.common import STORE_ENV, UserError
from flows.config_keys import recorded_tree, unknown_name, unknown_setting
from flows.text import one_line, read_yaml_file

PRESET_ENV = "DREAMEDIT3D_PRESET"  # the preset of commands that name none
MVDREAM_ENV = "DREAMEDIT3D_MVDREAM"  # a converted MVDream folder: the default preset is then `mvdream`, with it
TINY_NOTE = "preset tiny: random untrained models, every edit comes out as noise (to try the pipeline in seconds; --preset world edits for real)"
PRESETS_DIR = Path(__file__).resolve().parents[2] / "dreamedit3d_core" / "presets"  # read, never imported
MAX_SETTINGS_BYTES = 1 << 20  # a --config file: settings, not data


def preset_names() -> list[str]:
    return sorted(path.stem for path in PRESETS_DIR.glob("*.yaml"))


def _unknown_preset(name: Any) -> str:
    return f"unknown preset {name!r}; choose one of {', '.join(preset_names())}"


def default_preset() -> str:
    """The preset of a command that names none: $DREAMEDIT3D_PRESET; else `mvdream` when $DREAMEDIT3D_MVDREAM
    names a converted MVDream folder; else `world` (the shipped small model: real edits of coloured parts)."""
    named = setting(PRESET_ENV)
    if named:
        return named
    return "mvdream" if setting(MVDREAM_ENV) else "world"


def preset_overrides(preset: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """`mvdream` without a model path takes $DREAMEDIT3D_MVDREAM's folder."""
    folder = setting(MVDREAM_ENV)
    named = overrides.get("preset", preset)
    if named == "mvdream" and folder and not (overrides.get("model") or {}).get("path"):
        return {**overrides, "model": {**(overrides.get("model") or {}), "path": folder}}
    return overrides


def read_settings_file(path: Path) -> dict[str, Any]:
    """A --config YAML file as a mapping of stage settings ({} for an empty file); UserError otherwise."""
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    if path.stat().st_size > MAX_SETTINGS_BYTES:
        raise UserError(f"{path}: {path.stat().st_size} bytes is not a settings file (at most {MAX_SETTINGS_BYTES})")
    settings = read_yaml_file(path, UserError)
    if settings is not None and not isinstance(settings, dict):
        raise UserError(f"{path}: expected a mapping of stage settings at the top level")
    return settings or {}


def read_checked(path: Path, pipeline: bool) -> dict[str, Any]:
    """The --config file's settings; for the pipeline's commands with its preset and every setting's name
    checked (the values are the config classes' to check)."""
    settings = read_settings_file(path)
    if pipeline:
        named = settings.get("preset")
        if named is not None and named not in preset_names():
            raise UserError(f"{path}: {_unknown_preset(named)}")
        unknown = unknown_setting(settings, recorded_tree())
        if unknown is not None:
            raise UserError(f"{path}: {unknown}")
    return settings


@dataclass(frozen=True)
class Given:
    """The --config file as `check_arguments` read and checked it (`path` None: none given): the commands'
    context object."""

    path: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def settings_of(self, config: Path | None, pipeline: bool = True) -> dict[str, Any]:
        """The settings of the command's --config: those read before, or ({} without one) a file the early
        check did not see (the app run without `flows.cli.main`) read and checked the same way now."""
        if config is None:
            return {}
        if self.path is not None and Path(self.path) == config:
            return self.settings
        return read_checked(config, pipeline)


def given(ctx: typer.Context) -> Given:
    """What the early check handed to the command (nothing when the app runs without it)."""
    return ctx.obj if isinstance(ctx.obj, Given) else Given()


def _option(argv: list[str], name: str) -> str | None:
    """The value of `--name VALUE` or `--name=VALUE` (the last one given), or None."""
    found = None
    for index, argument in enumerate(argv):
        if argument == name and index + 1 < len(argv):
            found = argv[index + 1]
        elif argument.startswith(name + "="):
            found = argument.split("=", 1)[1]
    return found


def check_arguments(argv: list[str]) -> Given:
    """The --config file read and checked, after the preset names; UserError for the first mistake that can be
    found without importing the commands. (`world` commands take a config of their own, with `dataset:` and
    `pretrain:` sections, and `convert-mvdream --config` is MVDream's model file: those commands check them.)"""
    command = next((argument for argument in argv if not argument.startswith("-")), None)
    pipeline = command not in ("world", "convert-mvdream")
    preset = _option(argv, "--preset")
    if preset is not None and preset not in preset_names():
        raise UserError(_unknown_preset(preset))
    named = setting(PRESET_ENV)
    if preset is None and named and named not in preset_names():
        raise UserError(f"{PRESET_ENV}={named}: {_unknown_preset(named)}")
    config = _option(argv, "--config") if command != "convert-mvdream" else None
    checked = Given() if config is None else Given(config, read_checked(Path(config), pipeline))
    store = _option(argv, "--store") or (setting(STORE_ENV) if is_set(STORE_ENV) else None)
    if store is not None and "://" not in store:
        for folder in (Path(store), *Path(store).parents):
            if folder.exists():
                if not folder.is_dir():
                    raise UserError(f"--store {store}: {folder} is a file, not a folder")
                break
    return checked


def early_mistake(argv: list[str]) -> str | None:
    """`check_arguments`' mistake as its line, or None."""
    try:
        check_arguments(argv)
    except UserError as error:
        return str(error)
    return None


def load_config(given: Given, preset: str | None, config_path: Path | None) -> Any:
    """The preset (or the default one) with the --config file's settings on top, validated; says so when it is
    `tiny`."""
    from pydantic import ValidationError

    from dreamedit3d_core.config import pipeline_config

    preset = preset or default_preset()
    overrides = given.settings_of(config_path)
    try:
        config = pipeline_config(preset, preset_overrides(preset, overrides))
    except ValidationError as error:
        raise UserError(config_error(error, config_path)) from None
    except ValueError as error:
        raise UserError(f"invalid configuration: {one_line(error)}") from None
    if config.preset == "tiny":
        typer.echo(TINY_NOTE, err=True)
    return config


def config_error(error: Any, config_path: Path | None) -> str:
    """A pydantic error as a person reads it: the file, each setting's dotted name and what is wrong. Unknown
    names were refused before, but for those the key tree does not reach (inside a mapping of prompts)."""
    from dreamedit3d_core.config import PipelineConfig

    where = f"{config_path}: " if config_path is not None else ""
    problems = []
    for item in error.errors():
        location = [str(part) for part in item["loc"]]
        name = ".".join(location)
        if item["type"] == "extra_forbidden":
            model: Any = PipelineConfig
            for part in location[:-1]:  # down to the config class holding the unknown key
                field_info = getattr(model, "model_fields", {}).get(part)
                model = getattr(field_info, "annotation", None) if field_info is not None else None
            prefix = "".join(f"{part}." for part in location[:-1])
            problems.append(unknown_name(location[-1], list(getattr(model, "model_fields", {})), prefix))
        else:
            message = item["msg"].removeprefix("Value error, ")
            problems.append(f"{name}: {message}" if name else message)
    return where + "; ".join(problems)
