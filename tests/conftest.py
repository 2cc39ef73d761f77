"""Fixtures shared by every test package: the shared test assets, the example chair, the command line, and one
Prefect test server per session. Plain constants (the checkout's root) are in tests/helpers.py."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

import tasks  # noqa: F401  (Prefect's offline settings before prefect is imported)
from tests.helpers import CLI, CLI_TIMEOUT_S, PROJECT_ROOT, RunCli

# Commands run by tests never leave a background server behind: without the session server's URL they use
# Prefect's temporary one (tests/flows/test_local_server.py tests the background server on its own).
os.environ.setdefault("DREAMEDIT3D_SERVER", "temporary")
# The suite names its preset: commands that name none run the random tiny models (seconds per stage), not the
# command line's own default (`world`, tested in tests/flows/test_cli_checks.py).
os.environ["DREAMEDIT3D_PRESET"] = "tiny"

SHARED_ASSETS = PROJECT_ROOT.parent / "shared" / "assets"


@pytest.fixture(scope="session")
def shared_assets() -> Path:
    """../shared/assets beside the checkout; its absence is a broken set-up, not a reason to skip."""
    if not (SHARED_ASSETS / "good").is_dir():
        pytest.fail(f"test assets not found at {SHARED_ASSETS} (CI lays ../shared beside the checkout)")
    return SHARED_ASSETS


@pytest.fixture(scope="session")
def chair(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example chair (what `dreamedit3d example` writes: six named parts, three materials) as chair.glb,
    written once per session. Every test reads the same file, so none may change it: a test that needs it
    in a folder of its own (a library beside its manifest) copies it there. Stores are the tests' own."""
    from dreamedit3d_core.ingest import make_example_asset

    return make_example_asset(tmp_path_factory.mktemp("example") / "chair.glb")


def run_cli(
    *args: str, check: bool = True, timeout: float = CLI_TIMEOUT_S, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`dreamedit3d ARGS` in a subprocess run from the checkout's root, its output captured as text.

    env: the command's whole environment; by default this process's as it is now (the session's Prefect
    server and S3 endpoint included). check: a non-zero exit fails the test, showing both streams (a --json
    command reports what it found on stdout). timeout: seconds before the test fails (subprocess.TimeoutExpired).
    """
    result = subprocess.run(
        [*CLI, *args], capture_output=True, text=True, cwd=PROJECT_ROOT,
        env=dict(os.environ if env is None else env), timeout=timeout,
    )  # fmt: skip
    if check and result.returncode != 0:
        output = f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
        raise AssertionError(f"dreamedit3d {' '.join(args)} failed ({result.returncode}):\n{output}")
    return result


@pytest.fixture(scope="session")
def cli() -> RunCli:
    """Runs the command line as a user does: `cli("edit", path, "--json", check=False, timeout=900, env=...)`
    returns the completed process (see run_cli)."""
    return run_cli


@pytest.fixture(scope="session")
def prefect_api_url() -> Iterator[str]:
    """A throw-away Prefect server and database for the whole session (it takes ~25 s to start).

    Yields its API URL so that CLI subprocesses can use the same server instead of starting their own.
    """
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        url = PREFECT_API_URL.value()
        previous = os.environ.get("PREFECT_API_URL")
        os.environ["PREFECT_API_URL"] = url
        try:
            yield url
        finally:
            if previous is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = previous


S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible server (moto in server mode) on loopback for the whole session; its endpoint and
    test credentials are in the environment, so CLI subprocesses and fsspec's s3:// reach it too."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {**S3_ENV, "AWS_ENDPOINT_URL": endpoint}
    previous = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield endpoint
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A fresh, empty bucket on the session's S3 server (its name)."""
    import uuid

    import boto3

    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name
