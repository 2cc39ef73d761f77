"""Constants the tests share (fixtures are in tests/conftest.py): the checkout's root, the command line and the
fast settings (tests/fast.yaml)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# `dreamedit3d` as the tests start it: this interpreter and the checkout's own flows/ (no installed entry point
# needed). The `cli` fixture runs it to the end; tests that signal a running command start it with Popen.
CLI = (sys.executable, "-m", "flows.cli")
# How long one command may take before the test fails; commands that train or run whole batches pass more.
CLI_TIMEOUT_S = 600
# The type of the `cli` fixture: cli(*args, check=True, timeout=CLI_TIMEOUT_S, env=None) -> the completed process
RunCli = Callable[..., subprocess.CompletedProcess[str]]

# The tests' fast settings, a --config file over the tiny preset: its path for the command line, and its settings
# less `preset:` as the overrides of `pipeline_config("tiny", FAST)` and `edit_library(preset="tiny", overrides=FAST)`.
FAST_CONFIG = PROJECT_ROOT / "tests" / "fast.yaml"


def fast_overrides() -> dict[str, Any]:
    """tests/fast.yaml's settings without its `preset: tiny`: overrides over the tiny preset."""
    settings = yaml.safe_load(FAST_CONFIG.read_text())
    assert settings.pop("preset") == "tiny", f"{FAST_CONFIG} is a set of overrides over the tiny preset"
    return settings


FAST: dict[str, Any] = fast_overrides()
