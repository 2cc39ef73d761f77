"""The commands share one local Prefect server: the first starts it in the background, later ones reuse it,
`server stop` stops it. Every process started here is stopped here, also when the test fails."""

from __future__ import annotations

import json
import os
import subprocess
from functools import partial
from pathlib import Path

import psutil
import pytest

from tests.helpers import FAST_CONFIG, RunCli


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if key not in ("PREFECT_API_URL", "DREAMEDIT3D_SERVER")}
    return {**environment, "PREFECT_HOME": str(tmp_path / "prefect-home")}


def runs_page(ui: str, secret: str, run_name: str, screenshot: Path) -> dict:
    """Log in to the UI with the server's secret and open its runs page in Chromium; how many runs of that name
    it lists, with the preset's tag."""
    from playwright.sync_api import sync_playwright

    from tests.flows.browser import CHROMIUM_ARGS, chromium

    api_errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            def failed(request) -> None:  # noqa: ANN001 (Playwright's types)
                # requests cut short by leaving a page (the login's redirect) are not the API failing to answer
                if "/api/" in request.url and "ERR_ABORTED" not in (request.failure or ""):
                    api_errors.append(f"{request.url}: {request.failure}")

            page.on("requestfailed", failed)
            page.goto(f"{ui}/runs", wait_until="networkidle")
            page.get_by_placeholder("admin:pass").fill(secret)  # the UI asks for the secret first
            page.get_by_role("button", name="Login").click()
            page.goto(f"{ui}/runs", wait_until="networkidle")
            page.get_by_text(run_name).first.wait_for(timeout=60_000)
            page.screenshot(path=str(screenshot))
            return {"runs": page.get_by_text(run_name).count(), "tags": page.get_by_text("preset:tiny").count(),
                    "api_errors": api_errors}  # fmt: skip
        finally:
            browser.close()


def test_the_first_command_starts_the_server_and_the_next_ones_reuse_it(
    cli: RunCli, env: dict[str, str], tmp_path: Path, shared_assets: Path
) -> None:
    run = partial(cli, env=env, check=False)  # every command in this test's own Prefect home, no session server
    asset, store = str(shared_assets / "good" / "two_objects.obj"), str(tmp_path / "store")
    try:
        first = run("ingest", asset, "--store", store, "--json")
        assert first.returncode == 0, first.stderr
        assert "starting a local Prefect server in the background" in first.stderr
        server = json.loads(run("server", "status", "--json").stdout)
        assert server["running"] and server["url"].startswith("http://127.0.0.1:")
        assert psutil.Process(server["pid"]).is_running()

        second = run("ingest", asset, "--store", store, "--json")
        assert second.returncode == 0, second.stderr
        assert "starting" not in second.stderr and json.loads(second.stdout)["status"] == "cached"
        assert json.loads(run("server", "status", "--json").stdout)["pid"] == server["pid"]  # the same one

        # Prefect's UI works at the server's own address and lists an edit's run by its asset and edit
        edit = run("edit", asset, "--edit", "a photo of <asset0> in red", "--preset", "tiny",
                   "--config", str(FAST_CONFIG), "--store", store, "--verbose")  # fmt: skip
        assert edit.returncode == 0, edit.stderr
        assert f"View at {server['ui']}/runs/flow-run/" in edit.stderr  # --verbose: the run's UI link
        assert "UI: " + server["ui"] in run("server", "status").stdout
        secret = run("server", "secret").stdout.strip()
        found = runs_page(server["ui"], secret, "two_objects.obj: a photo of <asset0> in red", tmp_path / "runs.png")
        assert found["api_errors"] == [], found  # the UI reached its own API (not port 4200)
        assert found["tags"] >= 1 and found["runs"] >= 1, found

        assert_only_its_user_and_its_ui_get_answers(server["url"], secret, prefect_home=Path(env["PREFECT_HOME"]))

        assert json.loads(run("server", "stop", "--json").stdout) == {"stopped": True}
        assert not psutil.pid_exists(server["pid"]) or psutil.Process(server["pid"]).status() == psutil.STATUS_ZOMBIE
        assert run("server", "status").stdout.strip() == "not running"
    finally:
        run("server", "stop")


def curl(*args: str) -> tuple[int, dict[str, str]]:
    """The status code and the (lower-cased) headers of one request made with curl."""
    result = subprocess.run(["curl", "-s", "-o", "/dev/null", "-D", "-", *args], capture_output=True, text=True, timeout=60)
    lines = result.stdout.strip().splitlines()
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers


def assert_only_its_user_and_its_ui_get_answers(url: str, secret: str, prefect_home: Path) -> None:
    """The shared server answers nobody without its secret (other local users, web pages), grants CORS to its
    own UI's origin only, and refuses state-changing requests without a CSRF token."""
    assert (prefect_home / "dreamedit3d-server.json").stat().st_mode & 0o077 == 0  # the secret: this user only
    runs = [f"{url}/flow_runs/filter", "-X", "POST", "-H", "content-type: application/json", "-d", "{}"]
    assert curl(f"{url}/health")[0] == 200  # the health check alone is open
    assert curl(f"{url}/csrf-token?client=test")[0] == 401
    assert curl(*runs, "-H", "Origin: https://evil.example")[0] in (401, 403)  # refused: no secret (nor CSRF token)
    assert curl(*runs, "-u", secret)[0] == 403  # the secret without a CSRF token
    token_result = subprocess.run(["curl", "-s", "-u", secret, f"{url}/csrf-token?client=test"], capture_output=True,
                                  text=True, timeout=60)  # fmt: skip
    csrf = ["-H", f"Prefect-Csrf-Token: {json.loads(token_result.stdout)['token']}", "-H", "Prefect-Csrf-Client: test"]
    assert curl(*runs, "-u", secret, *csrf)[0] == 200
    preflight = [f"{url}/flow_runs/filter", "-X", "OPTIONS", "-H", "Access-Control-Request-Method: POST"]
    status, headers = curl(*preflight, "-H", "Origin: https://evil.example")
    assert status >= 400 and "access-control-allow-origin" not in headers, headers
    status, headers = curl(*runs, "-u", secret, *csrf, "-H", "Origin: https://evil.example")
    assert status == 200 and "access-control-allow-origin" not in headers, headers  # a page there cannot read it
    origin = url[: -len("/api")]
    status, headers = curl(*preflight, "-H", f"Origin: {origin}")
    assert status == 200 and headers.get("access-control-allow-origin") == origin, headers

