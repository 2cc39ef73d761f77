"""The environment variables DreamEdit3D reads, each declared once here (name, type, default, what it does) and
read only through `setting(name)`, which parses it as its type. The settings reference (docs/configuration.md,
"Environment variables") lists them from here (flows/config_docs.py).

Every one is an execution setting, like the config fields marked `execution_field` (execution.py): it says where
data lives, which server and worker run a stage, how long a lock or a lease lasts and how often something is
logged or uploaded, never what a stage computes, so none is ever part of an artifact key.

Pure Python, with nothing else of this package imported: the command line reads these before it imports anything
heavy, and `storage` (which imports nothing else of `dreamedit3d_core`) reads its own here too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

TRUE, FALSE = ("1", "true", "yes"), ("0", "false", "no")  # how a bool is written (any case)


class EnvironmentSettingError(ValueError):
    """An environment variable set to a value its type refuses."""


@dataclass(frozen=True)
class EnvironmentSetting:
    name: str
    type: type  # str, int, float or bool
    default: Any  # what the variable unset (or empty) means; None: nothing, the code that reads it says what then
    description: str
    minimum: float | None = None  # the smallest number it takes
    execution_only: bool = True  # never part of an artifact key: every environment variable is

    def parse(self, text: str) -> Any:
        """`text` (the variable's value) as this setting's type; EnvironmentSettingError naming the variable."""
        if self.type is str:
            return text
        value: Any
        if self.type is bool:
            word = text.strip().lower()
            if word not in TRUE + FALSE:
                raise EnvironmentSettingError(f"{self.name}={text!r}: expected one of {', '.join(TRUE + FALSE)}")
            return word in TRUE
        try:
            value = self.type(text.strip())
        except ValueError:
            what = "a whole number" if self.type is int else "a number"
            raise EnvironmentSettingError(f"{self.name}={text!r}: expected {what}") from None
        if self.minimum is not None and value < self.minimum:
            raise EnvironmentSettingError(f"{self.name}={text!r}: must be at least {self.minimum:g}")
        return value


ENVIRONMENT: tuple[EnvironmentSetting, ...] = (
    EnvironmentSetting(
        "DREAMEDIT3D_STORE", str, "./dreamedit3d-store",
        "The artifact store of a command without `--store`: a folder or an fsspec URL such as `s3://bucket/prefix`.",
    ),
    EnvironmentSetting(
        "DREAMEDIT3D_PRESET", str, None,
        "The preset of a command that names none (`--preset`, `preset:` in its config file); unset: `world`, or "
        "`mvdream` when `DREAMEDIT3D_MVDREAM` is set.",
    ),
    EnvironmentSetting(
        "DREAMEDIT3D_MVDREAM", str, None,
        "A converted MVDream model folder: the default preset is then `mvdream`, and this folder its `model.path` "
        "where the config gives none.",
    ),
    EnvironmentSetting(
        "DREAMEDIT3D_CACHE", str, "~/.cache/dreamedit3d",
        "This machine's cache for remote data: downloads of remote artifacts and library sources, staging of "
        "uploads, in-stage checkpoints.",
    ),
    EnvironmentSetting(
        "DREAMEDIT3D_SERVER", str, None,
        "`temporary`: each command that runs a flow starts Prefect's temporary server; unset: they share one local "
        "server, started in the background. `PREFECT_API_URL` (a server you run) wins over both.",
    ),
    EnvironmentSetting(
        "DREAMEDIT3D_WORKER", str, "-",
        "A label for this worker, logged with host and PID by every GPU-stage run and every batch, so the UI shows "
        "who ran it.",
    ),
    EnvironmentSetting(
        "DREAMEDIT3D_REMOTE_ATTEMPTS", int, 3,
        "How many runs a GPU stage gets in a distributed batch when its worker is lost (a crashed run is started "
        "again); below 1 counts as 1.",
    ),
    EnvironmentSetting(
        "DREAMEDIT3D_LOCK_LEASE_S", float, 60.0,
        "Seconds a compute lock on an `s3://` store outlives its holder's last heartbeat; then a waiter takes it over.",
        minimum=2,
    ),
    EnvironmentSetting(
        "DREAMEDIT3D_WRITE_LEASE_S", float, 3600.0,
        "Seconds an uncommitted write on a remote store counts as another machine's upload in progress after its "
        "newest file (`verify` and `prune` leave it alone until then).",
    ),
    EnvironmentSetting(
        "DREAMEDIT3D_CHECKPOINT_SYNC_S", float, 10.0,
        "Seconds between two uploads of a stage's new in-stage checkpoints to a shared store's `scratch/`.",
    ),
    EnvironmentSetting(
        "DREAMEDIT3D_PROGRESS_EVERY_S", float, 10.0,
        "Seconds between two progress lines of a long loop (training or sampling steps) in a log.",
    ),
    EnvironmentSetting(
        "DREAMEDIT3D_ALLOW_HTTP_SOURCES", bool, False,
        "Whether a remote library may be read over http(s) (`1`, `true` or `yes`); chained URLs never are.",
    ),
)  # fmt: skip
_BY_NAME = {declared.name: declared for declared in ENVIRONMENT}


def declaration(name: str) -> EnvironmentSetting:
    """The declaration of the environment variable `name`; KeyError for one not declared here."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"{name} is not a declared environment variable (dreamedit3d_core/environment.py)") from None


def setting(name: str) -> Any:
    """The environment variable `name` parsed as its declared type, or its default when it is unset or empty;
    EnvironmentSettingError for a value its type refuses, KeyError for a name not declared here."""
    declared = declaration(name)
    return declared.parse(os.environ[name]) if is_set(name) else declared.default


def is_set(name: str) -> bool:
    """Whether the environment variable `name` (one declared here) is set, to something other than ""."""
    return bool(os.environ.get(declaration(name).name))
