"""The commands share one local Prefect server: the first starts it in the background, later ones reuse it,
`server stop` stops it. Every process started here is stopped here, also when the test fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "flows.cli"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if key not in ("PREFECT_API_URL", "DREAMEDIT3D_SERVER")}
    return {**environment, "PREFECT_HOME": str(tmp_path / "prefect-home")}


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=PROJECT_ROOT, env=env, timeout=600)


def test_the_first_command_starts_the_server_and_the_next_ones_reuse_it(
    env: dict[str, str], tmp_path: Path, shared_assets: Path
) -> None:
    asset, store = str(shared_assets / "good" / "two_objects.obj"), str(tmp_path / "store")
    try:
        first = cli(env, "ingest", asset, "--store", store, "--json")
        assert first.returncode == 0, first.stderr
        assert "starting a local Prefect server in the background" in first.stderr
        server = json.loads(cli(env, "server", "status", "--json").stdout)
        assert server["running"] and server["url"].startswith("http://127.0.0.1:")
        assert psutil.Process(server["pid"]).is_running()

        second = cli(env, "ingest", asset, "--store", store, "--json")
        assert second.returncode == 0, second.stderr
        assert "starting" not in second.stderr and json.loads(second.stdout)["status"] == "cached"
        assert json.loads(cli(env, "server", "status", "--json").stdout)["pid"] == server["pid"]  # the same one

        assert json.loads(cli(env, "server", "stop", "--json").stdout) == {"stopped": True}
        assert not psutil.pid_exists(server["pid"]) or psutil.Process(server["pid"]).status() == psutil.STATUS_ZOMBIE
        assert cli(env, "server", "status").stdout.strip() == "not running"
    finally:
        cli(env, "server", "stop")
