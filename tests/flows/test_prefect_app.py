"""The local server's app tries a write that lost SQLite's lock again itself, instead of the client's 2 s back-off.

The app below behaves as Prefect's does on such a race: it answers 503, then raises the error again (Starlette
does, for the server's log), and its routing writes into the request's scope."""

from __future__ import annotations

import asyncio
from typing import Any

from flows.prefect_app import RetryLockedWrites


class LockedDatabase:
    """An ASGI app whose first `losses` requests lose the race for the write lock."""

    def __init__(self, losses: int) -> None:
        self.losses = losses
        self.seen: list[tuple[str, bytes]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        message = await receive()
        scope["root_path"] = scope.get("root_path", "") + "/api"  # a mount writes into the scope it is given
        route = scope["path"].removeprefix(scope["root_path"])
        self.seen.append((route, message["body"]))
        if route != "/flow_runs/":
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"not found"})
            return
        if len(self.seen) <= self.losses:
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b'{"exception_message":"Service Unavailable"}'})
            raise RuntimeError("database is locked")
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"created"})


def request(app: Any, method: str, body: bytes = b'{"name": "chair"}') -> tuple[list[int], list[bytes], str]:
    """One request whose body comes in two parts: the statuses and bodies the client receives, and the error
    the app raised to the server (its log's), if any."""
    parts = [{"type": "http.request", "body": body[:5], "more_body": True},
             {"type": "http.request", "body": body[5:], "more_body": False}]  # fmt: skip
    answer: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return parts.pop(0) if parts else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        answer.append(message)

    scope = {"type": "http", "method": method, "path": "/api/flow_runs/", "headers": []}
    try:
        asyncio.run(app(scope, receive, send))
        error = ""
    except RuntimeError as raised:
        error = str(raised)
    statuses = [m["status"] for m in answer if m["type"] == "http.response.start"]
    return statuses, [m["body"] for m in answer if m["type"] == "http.response.body"], error


def test_a_write_that_lost_the_lock_twice_is_answered_by_its_third_try() -> None:
    database = LockedDatabase(losses=2)
    statuses, bodies, error = request(RetryLockedWrites(database, pauses=(0.0, 0.0, 0.0)), "POST")
    assert (statuses, bodies, error) == ([201], [b"created"], "")  # one answer, no 503, nothing for the log
    assert database.seen == [("/flow_runs/", b'{"name": "chair"}')] * 3  # the whole body, each try the same request


def test_a_write_that_loses_every_try_gets_the_503_for_the_clients_own_back_off() -> None:
    database = LockedDatabase(losses=10)
    statuses, bodies, error = request(RetryLockedWrites(database, pauses=(0.0, 0.0)), "POST")
    assert len(database.seen) == 3  # the first try and one after each pause
    assert statuses == [503] and bodies == [b'{"exception_message":"Service Unavailable"}']
    assert error == "database is locked"  # raised again for the server's log, as without the retries


def test_a_read_is_passed_through_once() -> None:
    database = LockedDatabase(losses=10)
    statuses, _, error = request(RetryLockedWrites(database, pauses=(0.0, 0.0)), "GET")
    assert (len(database.seen), statuses, error) == (1, [503], "database is locked")
