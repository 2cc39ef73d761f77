"""Constants the tests share (fixtures are in tests/conftest.py): the checkout's root and the command line."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# `dreamedit3d` as the tests start it: this interpreter and the checkout's own flows/ (no installed entry point
# needed). The `cli` fixture runs it to the end; tests that signal a running command start it with Popen.
CLI = (sys.executable, "-m", "flows.cli")
# How long one command may take before the test fails; commands that train or run whole batches pass more.
CLI_TIMEOUT_S = 600
# The type of the `cli` fixture: cli(*args, check=True, timeout=CLI_TIMEOUT_S, env=None) -> the completed process
RunCli = Callable[..., subprocess.CompletedProcess[str]]
