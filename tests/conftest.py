"""Fixtures shared by every test package: the shared test assets and one Prefect test server per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import tasks  # noqa: F401  (Prefect's offline settings before prefect is imported)

# Commands run by tests never leave a background server behind: without the session server's URL they use
# Prefect's temporary one (tests/flows/test_local_server.py tests the background server on its own).
os.environ.setdefault("DREAMEDIT3D_SERVER", "temporary")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_ASSETS = PROJECT_ROOT.parent / "shared" / "assets"


@pytest.fixture(scope="session")
def shared_assets() -> Path:
    """../shared/assets beside the checkout; its absence is a broken set-up, not a reason to skip."""
    if not (SHARED_ASSETS / "good").is_dir():
        pytest.fail(f"test assets not found at {SHARED_ASSETS} (CI lays ../shared beside the checkout)")
    return SHARED_ASSETS


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
