"""One local Prefect server shared by every command, so that only the first command pays for starting it.

Prefect runs flows against an API server. Without `PREFECT_API_URL`, Prefect would start a temporary server
for each command (10-20 s on 2 cores) and stop it at the end. Instead the first command that runs a flow
starts Prefect's server in the background (`flows/prefect_app.py`: what `prefect server start` runs, trying a
write that lost SQLite's lock again itself), on loopback, and records where it is in
`$PREFECT_HOME/dreamedit3d-server.json` (readable by this user only: it holds the server's API secret); later
commands find it there (after checking it answers) and use it. `dreamedit3d server status` says where it
is, `dreamedit3d server secret` prints the secret its UI asks for, `dreamedit3d server stop` stops it.

`PREFECT_API_URL` (a server you run yourself) always wins; `DREAMEDIT3D_SERVER=temporary` asks for Prefect's
temporary server per command instead. Only the standard library is used here: this runs before the
pipeline is imported.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from dreamedit3d_core.environment import setting

STARTUP_TIMEOUT_S = 180.0
SERVER_MODULE = "flows.prefect_app"  # Prefect's server app, trying a write that lost SQLite's lock again itself


class ServerError(RuntimeError):
    """The background server could not be started (its log says why)."""


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect")).expanduser()


def state_file() -> Path:
    return prefect_home() / "dreamedit3d-server.json"


def answers(url: str) -> bool:
    """Whether a Prefect API answers its health check at `url` (".../api"; the health check needs no secret)."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:  # noqa: S310 (loopback URL we made)
            return response.status == 200
    except (OSError, ValueError):
        return False


def running() -> dict | None:
    """The recorded server ({"url", "pid", "log"}) when it is alive and answers, else None."""
    try:
        state = json.loads(state_file().read_text())
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if answers(state["url"]) else None


def public(state: dict) -> dict:
    """The server's record without its secret (`server secret` alone prints that)."""
    return {key: value for key, value in state.items() if key != "secret"}


def server_text(state: dict) -> str:
    """The recorded server as `dreamedit3d server status` says it: where, its UI and how other machines reach it."""
    lines = [f"running at {state['url']} (pid {state['pid']}, log {state['log']})"]
    if state.get("ui"):
        lines.append(f"UI: {state['ui']} (flow runs are named after the asset and its first edit)")
    if state.get("secret"):
        lines.append("the UI's login and other machines' PREFECT_API_AUTH_STRING: `dreamedit3d server secret` "
                     "(this user only)")  # fmt: skip
        if state.get("host", "127.0.0.1") != "127.0.0.1":
            lines.append(f"other machines: PREFECT_API_URL={state['ui']}/api")
    return "\n".join(lines)


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One command at a time decides whether to start the server (two first commands start one server)."""
    prefect_home().mkdir(parents=True, exist_ok=True)
    with open(prefect_home() / "dreamedit3d-server.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


LOOPBACK = "127.0.0.1"


def ensure_server() -> str | None:
    """The API URL commands should use, starting the background server when none is running; None when
    `PREFECT_API_URL` is set or the temporary per-command server was asked for."""
    if os.environ.get("PREFECT_API_URL") or setting("DREAMEDIT3D_SERVER") == "temporary":
        return None
    return start_server()["url"]


def start_server(host: str | None = None, port: int | None = None) -> dict:
    """The running server's record (whatever it listens on, when no `host` is asked for), starting one on
    `host`:`port` (loopback and a free port by default) when none runs; ServerError when the one running
    listens elsewhere than asked."""
    with _locked():
        state = running()
        if state is None:
            return _start(host or LOOPBACK, port or _free_port())
        elsewhere = port is not None and not state["url"].endswith(f":{port}/api")
        if host is not None and (state.get("host", LOOPBACK) != host or elsewhere):
            raise ServerError(f"a server already runs at {state['url']}: `dreamedit3d server stop` it first")
        return state


def _start(host: str, port: int) -> dict:
    """Start the background server on `host`:`port` and record it (with the lock held and none running).

    Its UI is told its own API address (else it looks for port 4200). Every server is the starting user's
    alone, on loopback too (other local users, and any web page open in a browser, reach loopback):
    - it requires an API secret, a random one recorded in the state file (mode 0600, this user only), which
      the commands here pass on, other machines set as PREFECT_API_AUTH_STRING and the UI asks for once;
    - CORS grants only the UI's own origin, so no other site's page can read its answers;
    - CSRF protection is on: a state-changing request needs a token the server hands to authenticated
      clients (Prefect's client and UI fetch it by themselves)."""
    public = host if host not in ("0.0.0.0", "::") else socket.getfqdn()  # what another machine's browser uses
    secret = f"dreamedit3d:{secrets.token_urlsafe(24)}"  # user:password, as the UI's login form takes it
    url = f"http://{public}:{port}/api"
    log = prefect_home() / "dreamedit3d-server.log"
    sys.stderr.write(
        "starting a local Prefect server in the background (once, about 5 s; later commands reuse it; "
        "`dreamedit3d server stop` stops it)\n"
    )
    env = {
        **os.environ,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_API_HOST": host,
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_UI_API_URL": url,
        "PREFECT_SERVER_API_AUTH_STRING": secret,
        "PREFECT_SERVER_CORS_ALLOWED_ORIGINS": ",".join(dict.fromkeys([url[: -len("/api")], f"http://{LOOPBACK}:{port}"])),
        "PREFECT_SERVER_CSRF_PROTECTION_ENABLED": "true",
    }
    env.pop("PREFECT_API_URL", None)
    with open(log, "ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", SERVER_MODULE, "--host", host, "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not stopped by this command's Ctrl-C or exit
            env=env,
        )
    local_url = f"http://{LOOPBACK if host in ('0.0.0.0', LOOPBACK) else host}:{port}/api"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not answers(local_url):
        if process.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            raise ServerError(f"the local Prefect server did not start; see {log}")
        time.sleep(0.5)
    state = {"url": local_url, "ui": url[: -len("/api")], "pid": process.pid, "log": str(log), "host": host,
             "started": _start_time(process.pid), "secret": secret}  # fmt: skip
    descriptor = os.open(state_file(), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(json.dumps(state))
    return state


def _start_time(pid: int) -> float | None:
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:  # noqa: BLE001 (gone already: then the command line alone is checked)
        return None


def is_our_server(state: dict) -> bool:
    """Whether the recorded pid is still the server this record names (a stale record's pid may belong to
    another process by now): its command line runs the server and it started when recorded."""
    try:
        import psutil

        process = psutil.Process(int(state["pid"]))
        command = " ".join(process.cmdline())
        if SERVER_MODULE not in command and not ("prefect" in command and "server start" in command):
            return False  # (`prefect server start`: how earlier versions started it)
        return state.get("started") is None or abs(process.create_time() - float(state["started"])) < 1.0
    except Exception:  # noqa: BLE001 (gone, or not ours to inspect)
        return False


def client_environment(state: dict) -> dict[str, str]:
    """What a command needs to reach the recorded server: its API URL, its UI's address (for run links) and
    its secret where it has one."""
    env = {"PREFECT_API_URL": state["url"], "PREFECT_UI_URL": state.get("ui", state["url"][: -len("/api")])}
    if state.get("secret"):
        env["PREFECT_API_AUTH_STRING"] = state["secret"]
    return env


def stop() -> dict | None:
    """Stop the recorded server (its whole process group); returns what was stopped, or None."""
    with _locked():
        try:
            state = json.loads(state_file().read_text())
        except (OSError, ValueError):
            return None
        state_file().unlink(missing_ok=True)
        if not is_our_server(state):
            return None  # a stale record: its pid is gone or belongs to another process now, which is left alone
        try:
            os.killpg(int(state["pid"]), signal.SIGTERM)
        except (ProcessLookupError, PermissionError, ValueError, KeyError):
            return None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.killpg(int(state["pid"]), 0)
            except ProcessLookupError:
                return state
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(state["pid"]), signal.SIGKILL)
        return state
